"""The retargeter's restart for a finger stuck in a local minimum (``optimizer.restart_miss_m``).

The warm start from the previous frame keeps a finger at its joint limits once it is
there (GRAB teapot_pour_1: Shadow's little finger, ~900 frames); a frame that leaves a
fingertip far from its target is also solved from the open pose.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from _retarget_helpers import load_config
from conftest import realdata_path

from hand_ik.frames import to_hand_root
from hand_ik.keypoints import KEYPOINT_NAMES
from hand_ik.retarget import load_retargeting_config
from hand_ik.retarget.config import OptimizerConfig
from hand_ik.retarget.fidelity import RAMP_FRAMES, preset_sequence

#: Shadow's little finger as GRAB left it (docs/fidelity.md): base spread and
#: hyperextended to their limits, LFJ5 (palm cup) at its upper limit, the rest straight.
_STUCK = {"LFJ5": "upper", "LFJ4": "lower", "LFJ3": "lower", "LFJ2": "lower", "LFJ1": "lower"}


def _build(name: str, restart_miss_m: float):
    config = load_config(name)
    optimizer = dataclasses.replace(config.optimizer, restart_miss_m=restart_miss_m)
    return dataclasses.replace(config, optimizer=optimizer).build()


def _tip_miss(retargeter, command, keypoints, tip: str) -> float:
    """Distance (m) of a robot palm->tip vector from its target."""
    k = list(retargeter.config.fingertips).index(tip)
    q = retargeter.robot.free_joint_values(command.positions)
    vecs = retargeter.optimizer.vectors_at(q)[0]
    return float(np.linalg.norm(vecs[k] - retargeter.targets(keypoints)[k]))


def _stuck_little(retargeter) -> np.ndarray:
    """The open pose with the little finger at the limits of ``_STUCK``."""
    robot, q = retargeter.robot, retargeter.open_free.copy()
    for name, side in _STUCK.items():
        j = robot.free_names.index(name)
        q[j] = robot.free_upper[j] if side == "upper" else robot.free_lower[j]
    return q


@pytest.mark.parametrize("value", [-0.01, float("nan"), "0.03", True])
def test_restart_miss_m_is_validated(value):
    with pytest.raises(ValueError, match="restart_miss_m"):
        OptimizerConfig(restart_miss_m=value)


def test_restart_frees_a_little_finger_stuck_at_its_limits():
    """Half-curled human little finger, the robot's warm start stuck at its limits: with
    the restart the tip reaches what a run from the flat hand reaches; without, it stays."""
    keypoints = preset_sequence("curl_little")[0][RAMP_FRAMES // 2]
    reference = _build("hand_pose_ros_hand", 0.03)
    for frame in preset_sequence("curl_little")[0][: RAMP_FRAMES // 2 + 1]:
        command = reference.retarget(frame)
    reached = _tip_miss(reference, command, keypoints, "little_tip")
    assert reached < 0.02 and reference.restarts_tried == 0  # a smooth ramp never triggers

    misses = {}
    for restart in (0.03, 0.0):
        retargeter = _build("hand_pose_ros_hand", restart)
        retargeter.retarget(preset_sequence("flat")[0][-1])
        retargeter._q_prev = _stuck_little(retargeter)  # a warm start in the bad minimum
        for _ in range(10):
            command = retargeter.retarget(keypoints)
        misses[restart] = _tip_miss(retargeter, command, keypoints, "little_tip")
        assert retargeter.restarts_taken == retargeter.restarts_tried == (restart > 0)
    assert misses[0.03] < reached + 0.002, misses
    assert misses[0.0] > 0.03, misses  # still stuck: over the restart threshold


def test_an_unreachable_target_costs_one_restart_not_one_a_frame():
    """A little-finger target 10 cm past the straight finger: the restart cannot help, is
    refused once, and later frames do not retry it (the command is the no-restart one)."""
    keypoints = preset_sequence("flat")[0][-1].copy()
    tip, mcp = KEYPOINT_NAMES.index("little_tip"), KEYPOINT_NAMES.index("little_mcp")
    direction = keypoints[tip] - keypoints[mcp]
    keypoints[tip] += 0.1 * direction / np.linalg.norm(direction)
    commands = {}
    for restart in (0.03, 0.0):
        retargeter = _build("hand_pose_ros_hand", restart)
        retargeter.retarget(preset_sequence("flat")[0][-1])
        for _ in range(20):
            commands[restart] = retargeter.retarget(keypoints)
        assert _tip_miss(retargeter, commands[restart], keypoints, "little_tip") > 0.05
        assert retargeter.restarts_tried == (restart > 0) and retargeter.restarts_taken == 0
    np.testing.assert_array_equal(commands[0.03].positions, commands[0.0].positions)


def test_restart_frees_shadows_little_finger_on_grab():
    """GRAB teapot_pour_1, frames 0-300: without the restart Shadow's little finger stays at
    its limits (mean miss ~77 mm); with it the tip follows its target."""
    with np.load(realdata_path("grab_dev", "teapot_pour_1.npz")) as data:
        joints = data["joints_wristlocal_aligned"][:300].astype(np.float64)
    frames = to_hand_root(torch.from_numpy(joints)).numpy()
    config = load_retargeting_config("shadow", urdf=realdata_path("robots"))
    assert config.optimizer.restart_miss_m > 0  # the shipped config restarts
    mean_miss = {}
    for restart in (config.optimizer.restart_miss_m, 0.0):
        retargeter = _build("shadow", restart)
        misses = [_tip_miss(retargeter, retargeter.retarget(f), f, "little_tip") for f in frames]
        mean_miss[restart] = float(np.mean(misses))
        assert retargeter.restarts_taken <= 2
    assert mean_miss[0.0] > 0.06, mean_miss
    assert mean_miss[config.optimizer.restart_miss_m] < 0.01, mean_miss


def test_bench_retarget_counts_the_restarts():
    """``bench retarget`` rows say how often the retargeter restarted (Shadow on GRAB:
    teapot_pour_1's stuck little finger within its first 130 frames)."""
    import argparse

    from hand_pose_ros.benchmarks import retarget as bench_retarget

    parser = argparse.ArgumentParser()
    bench_retarget.add_arguments(parser)
    args = parser.parse_args(["--robot=shadow", f"--data={realdata_path('grab_dev')}",
                              "--max-frames=130", "--input=mocap"])  # fmt: skip
    row = bench_retarget.run(args)["rows"][0]
    assert 1 <= row["restarts_taken"] <= row["restarts_tried"] < 0.05 * row["frames"]
