"""The operator's flexion calibration: the map, its fit, the profile YAML, the robot stage,
the retarget node's live parameter and ``hand-teleop calibrate --source`` on the demo."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from rclpy.parameter import Parameter

from hand_ik.bio_dofs import BIO_DOF_INDEX, BIO_DOF_NAMES, BIO_LOWER, BIO_UPPER
from hand_ik.hand_model import load_hand_model
from hand_ik.ik.calibration import (
    ShapeCalibration,
    load_flexion_calibration,
    load_operator_profile,
    save_flexion_calibration,
    save_operator_profile,
)
from hand_ik.ik.flexion_calibration import (
    MIN_SPAN_RAD,
    FlexionCalibration,
    fit_flexion_calibration,
)
from hand_ik.pose_sampler import keyframe
from hand_pose_ros.pipeline.stages import RobotStage, RobotStageConfig

FLAT, FIST = keyframe("flat"), keyframe("fist")


def _estimated_poses() -> tuple[np.ndarray, np.ndarray]:
    """An estimator's view of a flat hand and a fist: fingers bent on the open hand, a fist
    half closed, one distal joint that hardly moves, abduction off by a little."""
    open_, fist = FLAT.copy(), FIST.copy()
    for finger in ("index", "middle", "ring", "little"):
        open_[BIO_DOF_INDEX[f"{finger}_pip_flex"]] = 0.5
        fist[BIO_DOF_INDEX[f"{finger}_pip_flex"]] = 1.2
        open_[BIO_DOF_INDEX[f"{finger}_mcp_flex"]] = -0.1
        fist[BIO_DOF_INDEX[f"{finger}_mcp_flex"]] = 0.9
    open_[BIO_DOF_INDEX["index_dip_flex"]] = 0.8  # bent, and barely moves to the fist
    fist[BIO_DOF_INDEX["index_dip_flex"]] = 0.85
    open_[BIO_DOF_INDEX["index_mcp_abd"]] = 0.05
    return open_, fist


def test_open_maps_to_flat_and_fist_to_the_model_fist():
    open_, fist = _estimated_poses()
    cal = FlexionCalibration(open_, fist)
    pip = BIO_DOF_INDEX["middle_pip_flex"]
    dip = BIO_DOF_INDEX["index_dip_flex"]
    abd = BIO_DOF_INDEX["index_mcp_abd"]
    assert cal.calibrated[pip] and not cal.calibrated[dip] and cal.shifted[dip]
    assert not cal.calibrated[abd] and not cal.shifted[abd]
    both = cal.calibrated
    np.testing.assert_allclose(cal.apply(open_)[both], FLAT[both], atol=1e-12)
    np.testing.assert_allclose(cal.apply(fist)[both], np.clip(FIST, BIO_LOWER, BIO_UPPER)[both],
                               atol=1e-12)  # fmt: skip
    # The shifted distal joint: flat on the open hand, moved by the same constant elsewhere.
    assert cal.apply(open_)[dip] == pytest.approx(0.0)
    assert cal.apply(fist)[dip] == pytest.approx(0.05)
    # Abduction and the uncalibrated thumb pass unchanged; a batch maps row by row.
    batch = np.stack([open_, fist, (open_ + fist) / 2])
    out = cal.apply(batch)
    np.testing.assert_array_equal(out[:, abd], batch[:, abd])
    np.testing.assert_allclose(out[1], cal.apply(fist))
    # Linear in between, clipped to the DoF's limits, NaN passes through.
    assert out[2, pip] == pytest.approx((FLAT[pip] + FIST[pip]) / 2)
    far = open_.copy()
    far[pip] = 10.0
    assert cal.apply(far)[pip] == pytest.approx(BIO_UPPER[pip])
    nan = open_.copy()
    nan[pip] = np.nan
    assert np.isnan(cal.apply(nan)[pip])


def test_fit_takes_medians_drops_bad_rows_and_refuses_missing_poses():
    open_, fist = _estimated_poses()
    rng = np.random.default_rng(0)
    opens = open_ + rng.normal(0, 0.01, (9, 23))
    fists = fist + rng.normal(0, 0.01, (7, 23))
    opens[0] = np.nan  # a frame without a hand
    cal = fit_flexion_calibration(opens, fists)
    np.testing.assert_allclose(cal.open, np.median(opens[1:], axis=0))
    np.testing.assert_allclose(cal.fist, np.median(fists, axis=0))
    with pytest.raises(ValueError, match="open hand: 3 usable frames"):
        fit_flexion_calibration(opens[:4], fists)
    with pytest.raises(ValueError, match="no finger closes"):
        fit_flexion_calibration(opens, opens + MIN_SPAN_RAD / 2)
    with pytest.raises(ValueError, match=r"\(23,\)"):
        FlexionCalibration(np.zeros(22), np.zeros(23))


def test_profile_holds_shape_and_flexion_each_optional(tmp_path):
    model = load_hand_model("open")
    path = tmp_path / "operator.yaml"
    cal = FlexionCalibration(*_estimated_poses())
    save_flexion_calibration(path, cal, "ada", {"source": "demo"})
    assert load_operator_profile(path, model) is None  # no shape: estimated per frame
    loaded = load_flexion_calibration(path)
    np.testing.assert_allclose(loaded.open, cal.open, atol=1e-6)
    np.testing.assert_allclose(loaded.fist, cal.fist, atol=1e-6)
    # Writing the shape keeps the flexion, and the other way round.
    betas = np.linspace(-1, 1, 10)
    save_operator_profile(path, ShapeCalibration(betas, 30, 1.5), model, "ada")
    np.testing.assert_allclose(load_operator_profile(path, model), betas, atol=1e-6)
    assert load_flexion_calibration(path) is not None
    save_flexion_calibration(path, cal, "ada")
    np.testing.assert_allclose(load_operator_profile(path, model), betas, atol=1e-6)
    data = yaml.safe_load(path.read_text())
    assert data["operator"] == "ada" and set(data["flexion"]["open"]) == set(BIO_DOF_NAMES)
    # A shape-only profile has no flexion calibration.
    shape_only = tmp_path / "shape.yaml"
    save_operator_profile(shape_only, ShapeCalibration(betas, 30, 1.5), model, "bo")
    assert load_flexion_calibration(shape_only) is None
    # Bad files fail with the file's name and what is wrong.
    del data["flexion"]["fist"]["index_pip_flex"]
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match=r"operator.yaml.*missing \['index_pip_flex'\]"):
        load_flexion_calibration(path)
    path.write_text("flexion: [1, 2]\n")
    with pytest.raises(ValueError, match="'flexion' must be a mapping"):
        load_flexion_calibration(path)
    path.write_text("- just a list\n")
    with pytest.raises(ValueError, match="YAML mapping"):
        load_flexion_calibration(path)
    with pytest.raises(FileNotFoundError, match="hand-teleop calibrate"):
        load_flexion_calibration(tmp_path / "missing.yaml")


def test_robot_stage_drives_the_flat_hand_and_the_fist_from_the_operators_estimates(tmp_path):
    open_, fist = _estimated_poses()
    path = tmp_path / "operator.yaml"
    save_flexion_calibration(path, FlexionCalibration(open_, fist), "ada")
    calibrated = RobotStage(RobotStageConfig(operator_profile=str(path)))
    plain = RobotStage(RobotStageConfig())
    betas = np.zeros(10)
    lower, upper = plain.retargeter.robot.lower, plain.retargeter.robot.upper

    def flexion(stage: RobotStage, bio: np.ndarray) -> float:
        stage.retargeter.reset()
        # step() goes through the command filter: take the retargeter's own answer.
        if stage.flexion is not None:
            bio = stage.flexion.apply(bio)
        q = stage.retargeter.retarget(stage.human_keypoints(betas, bio), bio).positions
        return float(((q - lower) / np.maximum(upper - lower, 1e-9)).mean())

    assert calibrated.flexion is not None and plain.flexion is None
    # The operator's open hand, as estimated, now drives the robot like a flat hand.
    assert flexion(calibrated, open_) == pytest.approx(flexion(plain, FLAT), abs=0.02)
    assert flexion(plain, open_) > flexion(plain, FLAT) + 0.05
    # Their half-closed fist closes the robot further than before.
    assert flexion(calibrated, fist) > flexion(plain, fist) + 0.05
    # step() applies it: held long enough, the filtered command settles on the
    # calibrated retarget.
    for k in range(150):
        q_step = calibrated.step(k / 30.0, betas, open_)
    calibrated.retargeter.reset()
    bio = calibrated.flexion.apply(open_)
    q_direct = calibrated.retargeter.retarget(calibrated.human_keypoints(betas, bio), bio)
    np.testing.assert_allclose(q_step, q_direct.positions, atol=1e-3)


def test_retarget_node_loads_the_profile_live_and_refuses_a_bad_one(rclpy_context, tmp_path):
    from hand_pose_ros.nodes.retarget_node import RetargetNode

    path = tmp_path / "operator.yaml"
    save_flexion_calibration(path, FlexionCalibration(*_estimated_poses()), "ada")
    node = RetargetNode(context=rclpy_context)
    try:
        assert node.stage.flexion is None
        ok = node.set_parameters([Parameter("operator_profile", value=str(path))])[0]
        assert ok.successful and node.stage.flexion is not None
        bad = node.set_parameters([Parameter("operator_profile",
                                             value=str(tmp_path / "missing.yaml"))])[0]
        assert not bad.successful and "operator_profile" in bad.reason
        assert node.stage.flexion is not None  # the loaded one stays
        # Recalibrated into the same file: setting the same path reads it again.
        before = node.stage.flexion.open.copy()
        open_, fist = _estimated_poses()
        save_flexion_calibration(path, FlexionCalibration(open_ + 0.1, fist), "ada")
        assert node.set_parameters([Parameter("operator_profile", value=str(path))])[0].successful
        np.testing.assert_allclose(node.stage.flexion.open, before + 0.1, atol=1e-6)
        assert node.set_parameters([Parameter("operator_profile", value="")])[0].successful
        assert node.stage.flexion is None
    finally:
        node.destroy_node()


def test_graph_plan_gives_the_profile_to_the_ik_and_every_robot_node(tmp_path):
    from hand_pose_ros.graph_plan import plan_graph

    plan = plan_graph({"operator_profile": "op.yaml", "robot_left": "hand_pose_ros_hand_left"})
    got = {n.name: n.overrides.get("operator_profile") for n in plan.nodes}
    assert got["ik_node"] == got["retarget_node"] == got["retarget_left_node"] == "op.yaml"


def test_calibrate_cli_on_the_demo_writes_a_profile_the_robot_uses(tmp_path, capsys):
    from hand_pose_ros.cli.main import main

    out = tmp_path / "operator.yaml"
    assert main(["calibrate", "--source", "demo", "--out", str(out), "--name", "ada"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["frames_used"]["open"] >= 5 and report["frames_used"]["fist"] >= 5
    assert "middle_pip_flex" in report["calibrated_dofs"]
    cal = load_flexion_calibration(out)
    # The demo's hand is flat in its open hold, yet estimated with bent fingers: the
    # calibration maps that back to flat.
    pip = BIO_DOF_INDEX["middle_pip_flex"]
    assert cal.open[pip] > 0.2 and cal.apply(cal.open)[pip] == pytest.approx(0.0)
    assert RobotStage(RobotStageConfig(operator_profile=str(out))).flexion is not None
    data = yaml.safe_load(out.read_text())
    assert data["flexion"]["source"] == "demo" and data["flexion"]["frames"]["open"]
    # Clear one-line errors (exit status 2).
    for argv, message in (
        (["--source", "video:x.mp4"], "--open-frames START:STOP is required"),
        (["--source", "demo", "--open-frames", "0:20", "--fist-frames", "10:30"], "overlap"),
        (["--source", "demo", "--open-frames", "5"], "START:STOP"),
    ):
        assert main(["calibrate", "--out", str(out), *argv]) == 2
        assert message in capsys.readouterr().err


def test_live_operator_prompts_come_before_each_pose():
    from hand_pose_ros.pipeline.flexion_capture import WEBCAM_RANGES, operator_prompts

    prompts = operator_prompts(WEBCAM_RANGES)
    assert sorted(prompts) == [0, 90, 209]
    assert "OPEN" in prompts[0] and "30-89" in prompts[0]
    assert "FIST" in prompts[90] and "150-209" in prompts[90]
    swapped = operator_prompts({"open": (100, 120), "fist": (10, 40)})
    assert "FIST" in swapped[0] and "OPEN" in swapped[40] and 119 in swapped
