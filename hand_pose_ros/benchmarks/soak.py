"""``hand-teleop bench soak --minutes N``: the multi-process demo graph, watched for N minutes.

Each node runs in its own process (``python -m hand_pose_ros.nodes.<node>`` with
``config/teleop.yaml``), as under ``ros2 launch``, on an isolated ROS domain. This
process listens to ``/hand/joint_states`` and ``/hand/state`` and samples every node's
resident memory (``/proc/<pid>/status``). Rows: one per minute (command rate, image ->
hand state latency p50 / p99 from the states' header stamps, which carry the image's
stamp; the retargeting after it takes under a millisecond), frames published by the
source that gave no hand state, hand tracks first seen that minute, RSS per process),
then a summary row (RSS slope per process in MB/h by a least-squares line over the
samples after the first minute, the command rate's largest minute-to-minute change, node deaths).
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from hand_pose_ros.benchmarks.utils import machine_info
from hand_pose_ros.params import DEFAULT_PARAMS

#: The demo source's frame rate unless ``--fps`` says otherwise (the demo's default), Hz.
DEFAULT_SOAK_FPS = 30.0

#: The demo graph through the image path: (node module, extra parameters).
SOAK_NODES: tuple[tuple[str, dict], ...] = (
    ("demo_source", {"publish_keypoints": False}),
    ("estimator_node", {}),
    ("ik_node", {}),
    ("retarget_node", {}),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--minutes", type=float, default=1.0, help="how long to watch")
    parser.add_argument("--sample-s", type=float, default=5.0,
                        help="seconds between memory samples")
    parser.add_argument("--warmup-s", type=float, default=20.0,
                        help="seconds allowed for the graph's first command")
    parser.add_argument("--fps", type=float, default=DEFAULT_SOAK_FPS,
                        help="the demo camera's frame rate (Hz)")


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process in MB (None once it has exited)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def rss_slope_mb_per_h(times_s: list[float], rss: list[float]) -> float | None:
    """Least-squares slope of RSS over time, MB per hour (None with fewer than 3 samples)."""
    if len(times_s) < 3:
        return None
    slope = np.polyfit(np.asarray(times_s, float), np.asarray(rss, float), 1)[0]
    return float(slope * 3600.0)


def start_node_process(name: str, params: dict, env: dict,
                       source_dir: Path | None = None) -> subprocess.Popen:  # fmt: skip
    """Node ``name`` as the installed executable runs it (``nodes.spin.run_node``: exit 0 on
    SIGINT / SIGTERM, stacks on SIGUSR1), with config/teleop.yaml and ``params`` on top
    (stdout discarded, stderr kept for the error message). ``source_dir``: run the node
    from that checkout (its code and its config/teleop.yaml; e.g. an older commit for a
    before / after comparison) instead of this one, as ``python -m`` (older checkouts may
    predate ``run_node``)."""
    module = f"hand_pose_ros.nodes.{name}"
    if source_dir is None:
        params_file = DEFAULT_PARAMS
        cmd = [sys.executable, "-c",
               f"from hand_pose_ros.nodes.spin import run_node; run_node({module!r})"]  # fmt: skip
    else:
        params_file = source_dir / "config" / "teleop.yaml"
        cmd = [sys.executable, "-m", module]
    cmd += ["--ros-args", "--params-file", str(params_file)]
    for key, value in params.items():
        cmd += ["-p", f"{key}:={str(value).lower() if isinstance(value, bool) else value}"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, cwd=source_dir)  # fmt: skip


def _start_nodes(env: dict, fps: float) -> dict[str, subprocess.Popen]:
    """The soak graph's processes; the demo camera publishes at ``fps`` (Hz)."""
    return {name: start_node_process(name, {**extra, "fps": fps} if name == "demo_source"
                                     else extra, env)
            for name, extra in SOAK_NODES}  # fmt: skip


def stop_node_processes(procs: dict[str, subprocess.Popen],
                        timeout_s: float = 15.0) -> dict[str, int | None]:  # fmt: skip
    """SIGINT every process still running and wait; exit codes by name. A process still
    running after ``timeout_s`` is killed after :func:`dump_stacks` (printed to stderr)."""
    import signal

    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    codes = {}
    deadline = time.monotonic() + timeout_s
    for name, proc in procs.items():
        try:
            codes[name] = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"{name} did not stop within {timeout_s:.0f} s of SIGINT:\n"
                  f"{dump_stacks(proc)}", file=sys.stderr, flush=True)  # fmt: skip
            codes[name] = proc.returncode
    return codes


def dump_stacks(proc: subprocess.Popen, settle_s: float = 2.0) -> str:
    """A hung node's every thread's Python stack (SIGUSR1, see ``nodes.spin``), then kill it.
    Returns the end of what it wrote to the pipes it has (stdout and / or stderr)."""
    import signal

    if proc.poll() is None:
        proc.send_signal(signal.SIGUSR1)
        time.sleep(settle_s)
        proc.kill()
    out, err = proc.communicate()
    text = "\n".join(part for part in (out, err) if part)
    return text[-6000:]


def run(args: argparse.Namespace) -> dict:
    if args.minutes <= 0 or args.sample_s <= 0 or not args.fps > 0:
        raise ValueError("--minutes, --sample-s and --fps must be positive")
    env = dict(os.environ)
    env.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(150, 200)))
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.update({k: env[k] for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE")})
    procs = _start_nodes(env, args.fps)
    try:
        rows = _watch(procs, args)
    finally:
        codes = stop_node_processes(procs)
    rows[-1]["exit_codes"] = codes
    return {"bench": "soak", "machine": machine_info(), "domain_id": env["ROS_DOMAIN_ID"],
            "fps": args.fps, "rows": rows}  # fmt: skip


def _watch(procs: dict[str, subprocess.Popen], args: argparse.Namespace) -> list[dict]:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.time import Time
    from sensor_msgs.msg import Image, JointState

    from hand_pose_ros.msg import HandState
    from hand_pose_ros.nodes.qos import COMMAND_QOS, IMAGE_QOS, RESULT_SUB_QOS

    context = rclpy.context.Context()
    rclpy.init(context=context)
    node = Node("soak_monitor", context=context)
    commands: list[float] = []  # monotonic s
    states: list[tuple[float, float]] = []  # (monotonic s, image -> state latency ms)
    track_ids: list[tuple[float, int]] = []  # (monotonic s, track id) of each hand state
    images: list[float] = []

    def on_state(msg: HandState) -> None:
        latency = (node.get_clock().now() - Time.from_msg(msg.header.stamp)).nanoseconds
        states.append((time.monotonic(), latency * 1e-6))
        track_ids.append((time.monotonic(), int(msg.track_id)))

    node.create_subscription(JointState, "/hand/joint_states",
                             lambda _: commands.append(time.monotonic()), COMMAND_QOS)
    node.create_subscription(HandState, "/hand/state", on_state, RESULT_SUB_QOS)
    node.create_subscription(Image, "/camera/image_raw", lambda _: images.append(
        time.monotonic()), IMAGE_QOS)  # fmt: skip
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        deadline = time.monotonic() + args.warmup_s
        while not states and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        if not states:
            errors = {n: p.stderr.read()[-300:] if p.poll() is not None else "running"
                      for n, p in procs.items()}  # fmt: skip
            raise RuntimeError(f"no hand state within {args.warmup_s} s: {errors}")
        start = time.monotonic()
        samples: dict[str, list[tuple[float, float]]] = {n: [] for n in procs}
        next_sample, end = start, start + 60.0 * args.minutes
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
            if time.monotonic() >= next_sample:
                for name, proc in procs.items():
                    mb = rss_mb(proc.pid)
                    if mb is not None:
                        samples[name].append((time.monotonic() - start, mb))
                next_sample += args.sample_s
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
    return _rows(start, end, commands, states, images, samples, procs, track_ids)


def _rows(start, end, commands, states, images, samples, procs, track_ids=()) -> list[dict]:
    rows = []
    minutes = int(np.ceil((end - start) / 60.0 - 1e-9))
    t_cmd = np.asarray(commands)
    t_state = np.array([t for t, _ in states])
    lat = np.array([ms for _, ms in states])
    t_img = np.asarray(images)
    rates = []
    for m in range(minutes):
        lo, hi = start + 60.0 * m, min(start + 60.0 * (m + 1), end)
        rate = float(((t_cmd >= lo) & (t_cmd < hi)).sum() / (hi - lo))
        sel = (t_state >= lo) & (t_state < hi)
        n_img = int(((t_img >= lo) & (t_img < hi)).sum())
        rates.append(rate)
        row = {"name": f"minute_{m + 1}", "seconds": round(hi - lo, 1),
               "command_rate_hz": round(rate, 2), "images": n_img,
               "hand_states": int(sel.sum()),
               "images_without_state": max(n_img - int(sel.sum()), 0),
               "new_tracks": len({i for t, i in track_ids if lo <= t < hi}
                                 - {i for t, i in track_ids if t < lo})}  # fmt: skip
        if sel.any():
            row["latency_image_to_state_ms_p50"] = round(float(np.percentile(lat[sel], 50)), 1)
            row["latency_image_to_state_ms_p99"] = round(float(np.percentile(lat[sel], 99)), 1)
        for name, s in samples.items():
            in_minute = [mb for t, mb in s if 60.0 * m <= t < 60.0 * (m + 1)]
            if in_minute:
                row[f"rss_mb_{name}"] = round(in_minute[-1], 1)
        rows.append(row)
    summary = {"name": "summary", "minutes": round((end - start) / 60.0, 2),
               "node_deaths": sum(p.poll() is not None for p in procs.values())}  # fmt: skip
    for name, s in samples.items():
        later = [(t, mb) for t, mb in s if t >= 60.0] or s
        summary[f"rss_slope_mb_per_h_{name}"] = rss_slope_mb_per_h([t for t, _ in later],
                                                                   [mb for _, mb in later])
    if len(rates) > 1:
        changes = np.abs(np.diff(rates)) / np.maximum(rates[:-1], 1e-9)
        summary["command_rate_max_minute_change"] = round(float(changes.max()), 3)
    rows.append(summary)
    return rows
