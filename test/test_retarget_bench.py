"""``hand-teleop bench retarget``: row keys, skipping without data, CLI wiring."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from conftest import realdata_path

from hand_pose_ros.benchmarks import retarget as bench_retarget
from hand_pose_ros.cli.bench import BENCHMARKS
from hand_pose_ros.cli.main import build_parser

KEYS = {
    "name",
    "input",
    "ms_per_frame_mean",
    "ms_per_frame_median",
    "ms_per_frame_p95",
    "vector_residual_mm",
    "tip_motion_residual_mm",
    "jitter_rad_per_frame",
}


def _args(**kwargs) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench_retarget.add_arguments(parser)
    return parser.parse_args([f"--{k.replace('_', '-')}={v}" for k, v in kwargs.items()])


def test_registered_and_parses():
    assert BENCHMARKS["retarget"] == "hand_pose_ros.benchmarks.retarget"
    args = build_parser().parse_args(
        ["bench", "retarget", "--robot", "shadow", "--urdf", "x.urdf", "--json"]
    )
    assert args.robot == "shadow" and str(args.urdf) == "x.urdf" and args.json


def test_skips_with_a_reason_without_data(tmp_path):
    result = bench_retarget.run(_args(robot="hand_pose_ros_hand", data=tmp_path))
    assert result["bench"] == "retarget"
    assert result["rows"] == [
        {"name": "hand_pose_ros_hand", "skipped": f"no .npz sequences in {tmp_path}"}
    ]


@pytest.mark.parametrize("mode", ["mocap", "ik"])
def test_rows_on_real_motion(mode):
    data = realdata_path("grab_dev")
    result = bench_retarget.run(
        _args(robot="hand_pose_ros_hand", data=data, max_frames=40, input=mode)
    )
    row = result["rows"][0]
    assert KEYS <= set(row)
    expected = "mocap_keypoints" if mode == "mocap" else "mocap_keypoints_through_ik"
    assert row["input"] == expected and row["frames"] == 40 * row["sequences"]
    if mode == "ik":  # the IK is timed separately from the retargeter
        assert 0 < row["ik_ms_per_frame_median"] <= row["ik_ms_per_frame_p95"]
    assert 0 < row["ms_per_frame_median"] <= row["ms_per_frame_p95"]
    assert 0 <= row["vector_residual_mm"] < 50 and 0 <= row["jitter_rad_per_frame"] < 0.1
    assert 0 <= row["tip_motion_residual_mm"] < 50
    reference = result["rows"][-1]
    assert (
        reference["name"] == "dexretargeting_shadow_stored"
        and reference["jitter_rad_per_frame"] > 0
    )


def test_tip_motion_residual_ignores_a_constant_offset():
    """A robot whose tips follow the scaled human motion at a fixed offset scores 0 mm;
    motion it does not follow counts (mean distance, mm)."""
    rng = np.random.default_rng(0)
    offset = rng.normal(0.0, 0.03, (1, 5, 3))  # where the robot's fingers sit: not an error
    assert bench_retarget.tip_motion_residual_mm(np.repeat(offset, 50, axis=0)) < 1e-9
    wobble = np.zeros((2, 5, 3))
    wobble[0, :, 0], wobble[1, :, 0] = 0.002, -0.002  # +-2 mm about the mean
    assert bench_retarget.tip_motion_residual_mm(offset + wobble) == pytest.approx(2.0)


def test_unknown_robot_is_a_user_error(tmp_path):
    (tmp_path / "a.npz").write_bytes(b"")
    with pytest.raises(ValueError, match="unknown robot config"):
        bench_retarget.run(_args(robot="nope", data=tmp_path))
