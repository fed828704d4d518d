"""The real `ros2 launch` of launch/teleop.launch.py, via launch_testing's `launch_test`.

Each test runs one launch test file of test/launch_tests/ in a subprocess with its own
ROS_DOMAIN_ID (100-140) and localhost-only discovery. They need `launch_test`, built into
the venv by `HAND_POSE_ROS_ROS2_LAUNCH=auto scripts/setup.sh` from
../shared/vendor/ros2-jazzy-launch (CI), or a ROS 2 install; without it they skip.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from conftest import REPO_ROOT

LAUNCH_TESTS = REPO_ROOT / "test" / "launch_tests"
VENV_BIN = Path(sys.prefix) / "bin"


def _launch_test() -> str:
    exe = shutil.which("launch_test", path=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if exe is None:
        pytest.skip("launch_test not installed: run HAND_POSE_ROS_ROS2_LAUNCH=auto "
                    "scripts/setup.sh with ../shared/vendor/ros2-jazzy-launch present, "
                    "or source a ROS 2 install")  # fmt: skip
    return exe


def ros_env(domain_id: int) -> dict[str, str]:
    """Environment of an isolated test graph: its own domain, localhost discovery."""
    assert 100 <= domain_id <= 140  # the launch tests' range (other suites use others)
    env = dict(os.environ)
    env.update(ROS_DOMAIN_ID=str(domain_id), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               PYTHONUNBUFFERED="1")  # fmt: skip
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    prefixes = [p for p in env.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    env["AMENT_PREFIX_PATH"] = os.pathsep.join([sys.prefix, *prefixes])
    return env


#: Output lines that say why a node did not stop: nodes/spin.py's stop watchdog,
#: faulthandler's backstop (its stack dump follows), ros2 launch's escalation.
STOP_MARKERS = ("still running", "Timeout (", "Fatal Python error", "failed to terminate",
                "process has died")  # fmt: skip


def why_not_stopped(output: str, lines_after: int = 40) -> str:
    """The lines of a launch's output at each ``STOP_MARKERS`` line and the stack dumps
    after it ("" if none): a failure message's tail alone can miss a node that hung
    several graphs earlier in the same launch test."""
    lines = output.splitlines()
    keep: list[str] = []
    for i, line in enumerate(lines):
        if any(marker in line for marker in STOP_MARKERS):
            keep += [*lines[i:i + lines_after], "..."]
    return "\n".join(keep)[-8000:] + "\n--- the output's end ---\n" if keep else ""


def run_launch_test(name: str, domain_id: int, tmp_path: Path, *args: str,
                    timeout_s: float = 120.0) -> dict:  # fmt: skip
    """Run test/launch_tests/<name>.py; assert it passed; return the values it recorded."""
    exe = _launch_test()
    results = tmp_path / "results.json"
    env = ros_env(domain_id)
    env["HAND_POSE_ROS_LAUNCH_RESULTS"] = str(results)
    try:
        proc = subprocess.run([exe, str(LAUNCH_TESTS / f"{name}.py"), *args], env=env,
                              capture_output=True, text=True, timeout=timeout_s)  # fmt: skip
    finally:
        subprocess.run(["ros2", "daemon", "stop"], env=env, capture_output=True, timeout=30)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, why_not_stopped(output) + output[-6000:]
    data = json.loads(results.read_text()) if results.exists() else {}
    print(name, json.dumps(data))
    return data


def test_demo_graph(tmp_path):
    data = run_launch_test("launch_demo_graph", 101, tmp_path)
    assert data["command_rate_hz"] > 0


def test_real_video_with_the_default_estimator(tmp_path, monkeypatch):
    from conftest import realdata_path

    video = realdata_path("hand_video", "human_hand_video.mp4")
    monkeypatch.setenv("HAND_POSE_ROS_VIDEO", str(video))
    data = run_launch_test("launch_video_graph", 102, tmp_path)
    assert data["video_estimator_ms_median"] > 0


@pytest.mark.parametrize("side", ["right", "left"])
def test_every_robot_config(tmp_path, side, monkeypatch):
    from conftest import realdata_path

    monkeypatch.setenv("HAND_POSE_ROS_ROBOTS_DIR", str(realdata_path("robots")))
    monkeypatch.setenv("HAND_POSE_ROS_ROBOT_SIDE", side)
    run_launch_test("launch_robots", 103, tmp_path, timeout_s=240.0)


def test_ik_node_killed_then_respawned(tmp_path):
    data = run_launch_test("launch_ik_respawn", 104, tmp_path)
    assert data["hand_state_gap_s"] > 0


def _launch_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("teleop_launch",
                                                  REPO_ROOT / "launch" / "teleop.launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_launch_argument_table_matches_the_launch_file():
    readme = (REPO_ROOT / "README.md").read_text()
    block = readme.split("<!-- launch-arguments: begin -->")[1].split(
        "<!-- launch-arguments: end -->")[0]  # fmt: skip
    rows = {}
    for line in block.strip().splitlines()[2:]:  # after the header and |---|
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        name, default, description = cells
        rows[name.strip("`")] = ("" if default == "(empty)" else default.strip("`"), description)
    arguments = _launch_module().ARGUMENTS
    assert list(rows) == list(arguments)
    for name, (default, description) in arguments.items():
        assert description, f"launch argument {name} has no description"
        assert rows[name] == (default, description), name


def _ros2_launch(domain_id: int, *args: str) -> subprocess.CompletedProcess:
    ros2 = shutil.which("ros2", path=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if ros2 is None:
        _launch_test()  # skips with the reason
    env = ros_env(domain_id)
    return subprocess.run(["timeout", "-s", "INT", "--foreground", "60", ros2, "launch",
                           "hand_pose_ros", "teleop.launch.py", *args], env=env,
                          capture_output=True, text=True, timeout=90)  # fmt: skip


@pytest.mark.parametrize("args, message", [
    (("robot:=allegro",), "robot config 'allegro' has no URDF: pass urdf=PATH"),
    (("use_rviz:=true",), "use_rviz:=true but rviz2 (rviz2) is not installed"),
    (("source:=video:/x.mp4", "estimator:=truth"), "estimator truth needs source demo"),
], ids=["robot_without_urdf", "rviz_required", "truth_without_demo"])  # fmt: skip
def test_launch_refuses_a_bad_configuration_clearly_before_starting(args, message):
    if args == ("use_rviz:=true",) and shutil.which("rviz2"):
        pytest.skip("rviz2 is installed here")
    proc = _ros2_launch(110, *args)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert message in out
    assert "Traceback" not in out
    assert "process started" not in out  # nothing was started, so nothing is orphaned


@pytest.mark.parametrize("respawn", ["false", "true"])
def test_a_node_failing_at_start_shuts_the_launch_down(respawn):
    """No orphans: the other nodes are stopped (cleanly) and `ros2 launch` exits 1."""
    proc = _ros2_launch(111, "source:=video:/nonexistent/clip.mp4", "use_rviz:=false",
                        f"respawn:={respawn}", "respawn_delay:=0.2")  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]
    assert "CameraSource cannot start: FileNotFoundError: cannot open video" in out
    assert "camera_source-1 exited with code 1" in out
    if respawn == "true":
        assert "(after 5 restarts)" in out
    assert "Traceback" not in out
    started = set(re.findall(r"\[INFO\] \[(\S+)\]: process started", out))
    finished = set(re.findall(r"\[INFO\] \[(\S+)\]: process has finished cleanly", out))
    assert started - finished == {"camera_source-1"}, out[-3000:]


def _output_after_stop(name: str, proc: subprocess.Popen, timeout_s: float = 30.0) -> str:
    """The output of a node told to stop; a node still running after ``timeout_s`` fails the
    test with its threads' stacks (SIGUSR1, then killed)."""
    from hand_pose_ros.benchmarks.soak import dump_stacks

    try:
        return proc.communicate(timeout=timeout_s)[0]
    except subprocess.TimeoutExpired:
        pytest.fail(f"{name} still running {timeout_s:.0f} s after SIGTERM; its stacks:\n"
                    f"{dump_stacks(proc)}")  # fmt: skip


def test_nodes_exit_0_on_sigterm_while_publishing_and_while_starting(tmp_path):
    """SIGTERM (what `ros2 launch` escalates to, what systemd/docker send): the demo graph's
    nodes exit 0 without a traceback, mid-stream and during their imports."""
    import time

    _launch_test()  # the same skip: this drives the graph with `ros2 topic`
    env = ros_env(112)
    lib = Path(sys.prefix) / "lib" / "hand_pose_ros"
    names = ("demo_source", "ik_node", "retarget_node")
    procs = [subprocess.Popen([str(lib / n)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for n in names]  # fmt: skip
    try:
        echo = subprocess.run(["ros2", "topic", "echo", "--no-daemon", "--once", "--timeout",
                               "60", "/hand/state", "hand_pose_ros/msg/HandState", "--field",
                               "score"], env=env, capture_output=True, text=True,
                              timeout=90)  # fmt: skip
        assert echo.returncode == 0, echo.stderr  # hand states flow: the IK is publishing
        for p in procs:
            p.send_signal(15)
        outs = [_output_after_stop(n, p) for n, p in zip(names, procs, strict=True)]
        # And while starting: SIGTERM half a second in (imports still running).
        early = subprocess.Popen([str(lib / "ik_node")], env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)  # fmt: skip
        time.sleep(0.5)
        early.send_signal(15)
        outs.append(_output_after_stop("ik_node (starting)", early))
        procs.append(early)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
        subprocess.run(["ros2", "daemon", "stop"], env=env, capture_output=True, timeout=30)
    for name, p, out in zip([*names, "ik_node (starting)"], procs, outs, strict=True):
        assert p.returncode == 0, f"{name}: {out[-2000:]}"
        assert "Traceback" not in out, f"{name}: {out[-2000:]}"
        if "still running" in out:  # the stop watchdog ended it (nodes/spin.py): say where
            warnings.warn(f"{name} needed the stop watchdog: {out[-4000:]}", stacklevel=1)
