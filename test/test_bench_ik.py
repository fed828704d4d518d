"""bench ik's stage rows: the IK node's whole per-frame solve, timed per keypoint convention."""

from __future__ import annotations

import pytest

from hand_ik.hand_model import load_hand_model
from hand_ik.ik.weights import DEFAULT_WEIGHTS
from hand_pose_ros.benchmarks.ik import ik_stage_rows
from hand_pose_ros.cli.main import build_parser


@pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="shipped IK weights not built yet")
def test_stage_rows_time_a_valid_solve_per_convention():
    rows = ik_stage_rows(load_hand_model("open"), "open", frames=30)
    assert [r["keypoint_convention"] for r in rows] == ["ours", "mediapipe"]
    for row in rows:
        assert row["name"] == "ik_stage" and row["frames"] == 30
        assert row["valid_rate"] == 1.0  # in front of the camera: the gate lets them pass
        assert 0 < row["ms_per_frame_median"] <= row["ms_per_frame_p90"]
        parts = [row[f"{p}_ms_median"] for p in ("align", "net", "global_pose", "post_opt",
                                                 "output")]  # fmt: skip
        assert all(p > 0 for p in parts)


def test_stage_is_a_default_set():
    args = build_parser().parse_args(["bench", "ik"])
    assert "stage" in args.sets
