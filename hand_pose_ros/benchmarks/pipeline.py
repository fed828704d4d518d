"""Per-stage and end-to-end latency and rate of the teleop pipeline on this machine."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from hand_pose_ros.benchmarks.utils import machine_info
from hand_pose_ros.pipeline.defaults import DEFAULT_ROBOT
from hand_pose_ros.pipeline.estimators import (
    ESTIMATOR_CONVENTIONS,
    ESTIMATOR_NAMES,
    create_estimator,
)

#: Estimators the bench can time (``auto`` is ``handtrack``).
BENCH_ESTIMATORS = tuple(n for n in ESTIMATOR_NAMES if n != "auto")

DEFAULT_VIDEO = (Path(__file__).resolve().parents[3] / "shared" / "realdata" / "hand_video"
                 / "human_hand_video.mp4")  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=int, default=60, help="frames per stage measurement")
    parser.add_argument("--robot", default=DEFAULT_ROBOT)
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO,
                        help="real video for the estimator stage (default: ../shared hand video)")
    parser.add_argument("--graph-frames", type=int, default=150,
                        help="frames through the real ROS graph for end-to-end latency (0: skip)")
    parser.add_argument("--estimators", nargs="+", default=["handtrack", "mediapipe"],
                        choices=BENCH_ESTIMATORS,
                        help="image estimators to time (stage rows, whole-frame rows, and "
                             "end to end on the video)")


def _stats(name: str, times_ms, **extra) -> dict:
    import numpy as np

    t = np.asarray(times_ms, dtype=float)
    return {"name": name, "frames": int(t.size), "ms_per_frame_median": float(np.median(t)),
            "ms_per_frame_p90": float(np.percentile(t, 90)),
            "ms_per_frame_mean": float(t.mean()), **extra}  # fmt: skip


def _stage_rows(args: argparse.Namespace) -> list[dict]:
    import time

    from hand_pose_ros.pipeline.demo import DemoHand
    from hand_pose_ros.pipeline.stages import IKStage, IKStageConfig, RobotStage, RobotStageConfig

    demo = DemoHand()
    ik_net = IKStage(IKStageConfig(post_opt_enabled=False))
    ik_full = IKStage(IKStageConfig(post_opt_enabled=True))
    robot = RobotStage(RobotStageConfig(robot=args.robot))
    times: dict[str, list[float]] = {k: [] for k in ("source", "ik_net", "ik_post_opt",
                                                      "retarget", "filter")}  # fmt: skip
    frames = []
    for i in range(args.frames + 3):
        start = time.perf_counter()
        frame = demo.frame_at(i * 2)
        times["source"].append((time.perf_counter() - start) * 1e3)
        frames.append(frame)
        start = time.perf_counter()
        ik_net.solve(frame.joints_cam)
        times["ik_net"].append((time.perf_counter() - start) * 1e3)
        start = time.perf_counter()
        state = ik_full.solve(frame.joints_cam)
        times["ik_post_opt"].append((time.perf_counter() - start) * 1e3)
        keypoints = robot.human_keypoints(state.betas[0], state.bio[0])
        start = time.perf_counter()
        command = robot.retargeter.retarget(keypoints, state.bio[0]).positions
        times["retarget"].append((time.perf_counter() - start) * 1e3)
        start = time.perf_counter()
        robot.filter.update(i / 30.0, command)
        times["filter"].append((time.perf_counter() - start) * 1e3)
    rows = [_stats(f"stage_{k}", v[3:]) for k, v in times.items()]
    rows[0]["what"] = "scripted synthetic hand: pose + software render 640x480"
    rows[1]["what"] = "IK net (bone features -> betas + 23 DoF) + Kabsch global pose"
    rows[2]["what"] = "IK net + Levenberg-Marquardt post-optimization (3 steps)"
    images, source = _estimator_images(args, frames)
    for name in args.estimators:
        rows.append(_estimator_row(name, images, source))
    for name in args.estimators:
        rows.append(_frame_row(name, images, source, args.robot))
    return rows


def _estimator_images(args: argparse.Namespace, frames) -> tuple[list, str]:
    """(image, K) pairs: the real video's first frames when it exists, else the demo's."""
    if not args.video.is_file():
        return [(f.image, f.K) for f in frames], "demo_render"
    from hand_pose_ros.pipeline.video_source import VideoSource

    video = VideoSource(f"video:{args.video}")
    images = []
    for _ in range(args.frames + 3):
        rgb = video.read()
        if rgb is None:
            break
        images.append((rgb, video.K))
    video.close()
    return images, args.video.name


def _estimator_row(name: str, images: list, source: str) -> dict:
    """One image estimator over ``images`` as a stream (tracking on), per frame."""
    import time

    try:
        estimator = create_estimator(name, max_hands=2)
    except ImportError as exc:
        return {"name": f"stage_estimator_{name}", "skipped": str(exc)}
    # The handtrack graph reports its stages' times per frame; the others do not.
    stages = {"palm_ms": [], "landmark_ms": []} if hasattr(estimator, "times") else {}
    est_times, found = [], 0
    for rgb, K in images:
        start = time.perf_counter()
        found += bool(estimator(rgb, K))
        est_times.append((time.perf_counter() - start) * 1e3)
        for key, values in stages.items():
            values.append(getattr(estimator.times, key))
    extra = {f"{k}_mean": float(sum(v[3:]) / max(len(v) - 3, 1)) for k, v in stages.items()}
    if hasattr(estimator, "close"):
        estimator.close()
    return _stats(f"stage_estimator_{name}", est_times[3:], input=source,
                  image_size=f"{images[0][0].shape[1]}x{images[0][0].shape[0]}",
                  frames_with_hand=round(found / len(images), 3), **extra)  # fmt: skip


def _frame_row(name: str, images: list, source: str, robot_name: str) -> dict:
    """The graph's whole per-frame work in one process, one thread per network: the
    estimator as a stream (the palm detector only on re-detect when it tracks), then for
    its best hand the IK node's solve (its keypoint convention, the 2D term with K, the
    estimator's mesh in the post-opt when it gives one, the fitted mesh posed for the
    markers) and the retarget node's step (retargeting + command filter). No transport."""
    import time

    import numpy as np

    from hand_pose_ros.pipeline.stages import IKStage, IKStageConfig, RobotStage, RobotStageConfig

    try:
        estimator = create_estimator(name, max_hands=1)
    except ImportError as exc:
        return {"name": f"frame_{name}", "skipped": str(exc)}
    ik = IKStage(IKStageConfig(keypoint_convention=ESTIMATOR_CONVENTIONS[name]))
    robot = RobotStage(RobotStageConfig(robot=robot_name))
    parts: dict[str, list[float]] = {"estimator_ms": [], "ik_ms": [], "retarget_ms": []}
    totals, solved = [], 0
    for i, (rgb, K) in enumerate(images):
        t0 = time.perf_counter()
        hands = estimator(rgb, K)
        t1 = time.perf_counter()
        state = None
        if hands:
            hand = max(hands, key=lambda h: h.score)
            state = ik.solve(hand.camera_points, hand.handedness, hand.track_id,
                             image_points=hand.image_points, confidence=hand.confidence, K=K,
                             vertices=hand.vertices)  # fmt: skip
        t2 = time.perf_counter()
        if state is not None and bool(state.valid[0]):
            solved += 1
            robot.step(i / 30.0, state.betas[0], state.bio[0])
        else:
            robot.step(i / 30.0)
        t3 = time.perf_counter()
        for key, (a, b) in zip(parts, ((t0, t1), (t1, t2), (t2, t3)), strict=True):
            parts[key].append((b - a) * 1e3)
        totals.append((t3 - t0) * 1e3)
    if hasattr(estimator, "close"):
        estimator.close()
    medians = {f"{k}_median": float(np.median(v[3:])) for k, v in parts.items()}
    return _stats(f"frame_{name}", totals[3:], input=source, robot=robot_name,
                  keypoint_convention=ESTIMATOR_CONVENTIONS[name], threads_per_network=1,
                  frames_solved=round(solved / len(images), 3), **medians)  # fmt: skip


def _graph_row(args: argparse.Namespace, source: str, estimator: str | None = None) -> dict:
    """End to end through real topics: ``hand-teleop run`` in a subprocess."""
    name = f"end_to_end_{'demo' if source == 'demo' else 'video'}_{estimator or 'truth'}"
    with tempfile.TemporaryDirectory() as tmp:
        summary = Path(tmp) / "summary.json"
        cmd = [sys.executable, "-m", "hand_pose_ros.cli.main", "run", "--source", source,
               "--frames", str(args.graph_frames), "--robot", args.robot,
               "--estimator", estimator or "truth",
               "--summary", str(summary)]  # fmt: skip
        result = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ),
                                timeout=900)  # fmt: skip
        if result.returncode != 0:
            return {"name": name, "error": result.stderr[-500:]}
        data = json.loads(summary.read_text())
    frames = data["frames_in"]
    return {"name": name, "source": source, "estimator": estimator or "truth",
            "frames": frames, "seconds": data["seconds"],
            "source_fps": round(frames / data["seconds"], 2) if data["seconds"] else None,
            "frames_estimated": data.get("estimator_images"),
            "frames_to_command_share": data["frames_solved_by_ik"],
            "command_rate_hz": data["command_rate_hz"],
            "latency_image_to_command_ms_median": data["latency_image_to_command_ms_median"],
            "latency_image_to_command_ms_p90": data["latency_image_to_command_ms_p90"]}


def run(args: argparse.Namespace) -> dict:
    import torch

    torch.set_num_threads(1)
    rows = _stage_rows(args)
    if args.graph_frames:
        rows.append(_graph_row(args, "demo"))
        rows.append(_graph_row(args, "demo", "handtrack"))
        if args.video.is_file():
            for estimator in args.estimators:
                rows.append(_graph_row(args, f"video:{args.video}", estimator))
    return {"bench": "pipeline", "machine": machine_info(), "rows": rows}
