"""Teleop fidelity (issue 24) on every shipped robot config: open is open, a fist is a fist,
a pinch touches where the kinematics allow, fingers move independently; the calibration
that gets there; ``hand-teleop bench fidelity``."""

from __future__ import annotations

import argparse
import json
import shutil

import numpy as np
import pytest
import yaml
from _retarget_helpers import ALL_CONFIGS, load_config

from hand_ik.keypoints import FINGER_NAMES
from hand_ik.pose_presets import BIO_PRESET_NAMES, PINCH_TIP_GAP_M
from hand_ik.retarget import load_retargeting_config
from hand_ik.retarget.calibrate import (
    CLOSED_BLENDS,
    calibrate,
    fit_open_pose,
    reference_pose,
    write_calibration,
)
from hand_ik.retarget.config import ROBOT_CONFIG_DIR
from hand_ik.retarget.fidelity import (
    CURL_MIN,
    FIST_MIN,
    FLAT_MAX,
    INDEPENDENCE_MAX,
    PINCH_MAX_M,
    FlexionGauge,
    evaluate_presets,
    pinch_reach,
    preset_sequence,
)
from hand_pose_ros.benchmarks import fidelity as bench_fidelity
from hand_pose_ros.cli.bench import BENCHMARKS
from hand_pose_ros.cli.main import build_parser

#: Pinches the robots' joint spaces cannot close to 10 mm (tip link origins, by optimisation).
UNREACHABLE = {
    "inspire": ("pinch_middle", "pinch_ring", "pinch_little"),
    "inspire_left": ("pinch_middle", "pinch_ring", "pinch_little"),
}


@pytest.fixture(scope="module")
def preset_results():
    """Config name -> (retargeter, preset results), computed once per config."""
    cache = {}

    def get(name):
        if name not in cache:
            retargeter = load_config(name).build()
            poses = ["flat", "fist", *(f"curl_{f}" for f in retargeter.config.flexion)]
            poses += [
                f"pinch_{f}" for f in FINGER_NAMES[1:] if f"{f}_tip" in retargeter.config.fingertips
            ]
            cache[name] = (retargeter, evaluate_presets(retargeter, poses))
        return cache[name]

    return get


def test_flexion_gauge_is_0_open_and_1_closed():
    retargeter = load_config("hand_pose_ros_hand").build()
    robot, flexion = retargeter.robot, retargeter.config.flexion
    gauge = FlexionGauge(robot, flexion)
    q = np.clip(0.0, robot.lower, robot.upper)
    assert all(v == 0.0 for v in gauge(q).values())
    for joints in flexion.values():
        for joint, sense in joints.items():
            i = robot.joint_index[joint]
            q[i] = robot.upper[i] if sense > 0 else robot.lower[i]
    assert gauge(q) == pytest.approx(dict.fromkeys(flexion, 1.0))
    with pytest.raises(ValueError, match=r"flexion\.index: unknown joints"):
        FlexionGauge(robot, {"index": {"nope": 1}})
    with pytest.raises(ValueError, match=r"flexion.index.FFJ3 must be \+1 or -1"):
        load_retargeting_config("hand_pose_ros_hand", flexion={"index": {"FFJ3": 2}})


def test_pinch_presets_touch_on_the_human_hand():
    assert len(BIO_PRESET_NAMES) == len(set(BIO_PRESET_NAMES))
    for finger, tip in (("index", 8), ("middle", 12), ("ring", 16), ("little", 20)):
        keypoints = preset_sequence(f"pinch_{finger}")[0][-1]
        gap = np.linalg.norm(keypoints[4] - keypoints[tip])
        assert gap == pytest.approx(PINCH_TIP_GAP_M, abs=0.002), finger


@pytest.mark.parametrize("name", ALL_CONFIGS)
def test_every_config_has_flexion_for_its_fingers(name):
    config = load_config(name)
    fingers = {kp.removesuffix("_tip") for kp in config.fingertips}
    assert set(config.flexion) == fingers


@pytest.mark.parametrize("name", ALL_CONFIGS)
def test_flat_is_open_and_fist_is_closed(name, preset_results):
    _, result = preset_results(name)
    assert max(result.flex["flat"].values()) <= FLAT_MAX, result.flex["flat"]
    assert min(result.flex["fist"].values()) >= FIST_MIN, result.flex["fist"]


@pytest.mark.parametrize("name", ALL_CONFIGS)
def test_one_finger_curled_leaves_the_others(name, preset_results):
    _, result = preset_results(name)
    flat = result.flex["flat"]
    for finger in flat:
        curl = result.flex[f"curl_{finger}"]
        assert curl[finger] > CURL_MIN, f"curl_{finger}: {curl}"
        moved = {o: abs(curl[o] - flat[o]) for o in flat if o != finger}
        assert max(moved.values()) < INDEPENDENCE_MAX, f"curl_{finger}: {moved}"


@pytest.mark.parametrize("name", ALL_CONFIGS)
def test_pinch_touches_where_the_kinematics_allow(name, preset_results):
    retargeter, result = preset_results(name)
    for pose, mm in result.tip_mm.items():
        if pose in UNREACHABLE.get(name, ()):
            tip = pose.replace("pinch_", "") + "_tip"
            assert pinch_reach(retargeter, tip) > PINCH_MAX_M, f"{pose} is reachable after all"
        else:
            assert mm <= PINCH_MAX_M * 1e3, f"{pose}: {mm:.1f} mm"


def test_shipped_calibration_is_what_calibrate_writes(tmp_path):
    """The committed YAML holds what ``calibrate`` computes now (regenerate it if this fails)."""
    path = tmp_path / "hand_pose_ros_hand.yaml"
    shipped = (ROBOT_CONFIG_DIR / "hand_pose_ros_hand.yaml").read_text()
    path.write_text(
        shipped.replace("urdf: ../../urdf/", f"urdf: {ROBOT_CONFIG_DIR.parents[1]}/urdf/")
    )
    config = load_retargeting_config(path)
    calibration = calibrate(config)
    assert calibration.misses == 0
    write_calibration(path, calibration, "hand_pose_ros_hand")
    again = yaml.safe_load(path.read_text())
    ours = yaml.safe_load(shipped)
    for key in ("scale", "open_pose", "target_offsets", "closed_offsets", "closed_lengths",
                "closed_power", "palm_length_m", "optimizer"):  # fmt: skip
        np.testing.assert_allclose(
            np.asarray(_numbers(again[key])),
            np.asarray(_numbers(ours[key])),
            atol=2e-4,
            err_msg=key,
        )
    # Writing again replaces the block: every other line is kept, once.
    text = path.read_text()
    write_calibration(path, calibration, "hand_pose_ros_hand")
    assert path.read_text() == text and text.count("# calibration-begin") == 1
    assert "joint_map:" in text and "flexion:" in text


@pytest.mark.parametrize("name", ["leap", "shadow"])
def test_closure_blend_moves_only_a_closing_fingers_offsets(name):
    """Flat: the open offsets (the robot's open pose); fist: the closed ones (its reference
    fist); one finger curled: only its rows move; mid-range: closure ** closed_power."""
    retargeter = load_config(name).build()
    config = retargeter.config
    rows = retargeter.target_keypoints
    fingers = [kp.split("_")[0] for kp in rows]
    assert config.closed_offsets and len(retargeter.closure(preset_sequence("flat")[0][-1]))
    # (closed_lengths are stored to 10 um: closure ** 16 within 2e-3 of 0 and 1.)
    np.testing.assert_allclose(retargeter.closure(preset_sequence("flat")[0][-1]), 0.0, atol=2e-3)
    np.testing.assert_allclose(retargeter.closure(preset_sequence("fist")[0][-1]), 1.0, atol=2e-3)
    # Fist targets: scale x the human vector + closed_offsets; each finger's closed offsets
    # are its open ones moved by 0 or one of CLOSED_BLENDS toward those that put the human
    # fist on the robot's reference fist, or toward zero (the plain scaled vector).
    fist_kp, fist_bio = (a[-1] for a in preset_sequence("fist"))
    human = fist_kp[retargeter._human_pairs[: len(rows), 1]] - fist_kp[0]
    closed = np.array([config.closed_offsets[kp] for kp in rows])
    expected = config.scale * human @ np.asarray(config.hand_root_to_palm).T + closed
    np.testing.assert_allclose(retargeter.targets(fist_kp)[: len(rows)], expected, atol=1e-4)
    reference = retargeter.optimizer.vectors_at(reference_pose(retargeter, fist_bio))[0]
    fitted = reference[: len(rows)] - (expected - closed)
    opened = np.array([config.target_offsets[kp] for kp in rows])
    for k, kp in enumerate(rows):
        candidates = [opened[k] + t * (goal - opened[k]) for t in (0.0, *CLOSED_BLENDS)
                      for goal in (fitted[k], 0.0 * fitted[k])]  # fmt: skip
        gaps = [np.abs(closed[k] - c).max() for c in candidates]
        assert min(gaps) < 2e-4, (kp, closed[k], candidates)
    flat_kp = preset_sequence("flat")[0][-1]
    for finger in set(fingers):
        closure = retargeter.closure(preset_sequence(f"curl_{finger}")[0][-1])
        np.testing.assert_allclose(closure, [float(f == finger) for f in fingers], atol=2e-3)
    # Halfway along the finger's shortening the correction is 0.5 ** closed_power of it.
    index = rows.index("index_tip")
    open_len, closed_len = config.closed_lengths["index_tip"]
    half = flat_kp.copy()
    direction = (flat_kp[8] - flat_kp[0]) / np.linalg.norm(flat_kp[8] - flat_kp[0])
    half[8] = flat_kp[0] + direction * (open_len + closed_len) / 2
    expected = 0.5**config.closed_power
    assert retargeter.closure(half)[index] == pytest.approx(expected, rel=1e-9)
    # Continuous: a 0.1 mm keypoint change moves no target by more than 1 mm.
    rng = np.random.default_rng(0)
    for kp in (flat_kp, half, fist_kp):
        moved = kp + rng.normal(0.0, 1e-4 / np.sqrt(3), kp.shape)
        assert np.abs(retargeter.targets(moved) - retargeter.targets(kp)).max() < 1e-3


@pytest.mark.parametrize("name", ["shadow", "leap", "allegro"])
def test_open_pose_is_the_flat_hands(name):
    """The flat hand maps onto ``open_pose``: flexion joints open, the others (finger spread,
    thumb) fitted to the flat hand's tips; the joint map's flat DoF give it too."""
    retargeter = load_config(name).build()
    config, robot = retargeter.config, retargeter.robot
    flexion = {j for joints in config.flexion.values() for j in joints}
    assert config.open_pose and not flexion & set(config.open_pose)
    q0 = np.clip(0.0, robot.free_lower, robot.free_upper)
    for j, joint in enumerate(robot.free_names):
        expected = np.clip(config.open_pose.get(joint, q0[j]), robot.free_lower[j],
                           robot.free_upper[j])  # fmt: skip
        assert retargeter.open_free[j] == pytest.approx(expected, abs=1e-9)
    np.testing.assert_allclose(retargeter.joint_map(np.zeros(23)), retargeter.open_free)
    # The fit is what the calibration writes (here without the thumb where it dropped it).
    fitted = fit_open_pose(retargeter, config.scale)
    for joint, value in config.open_pose.items():
        assert fitted[joint] == pytest.approx(value, abs=2e-3), joint
    # The flat preset's targets are the open pose's vectors, and the robot ends there.
    flat_kp = preset_sequence("flat")[0][-1]
    tips = len(config.fingertips)
    v_open = retargeter.optimizer.vectors_at(retargeter.open_free)[0][:tips]
    np.testing.assert_allclose(retargeter.targets(flat_kp)[:tips], v_open, atol=1e-4)
    result = evaluate_presets(retargeter, ["flat"])
    assert max(result.flex["flat"].values()) <= FLAT_MAX


def test_zero_intermediate_weight_leaves_the_intermediates_out():
    config = load_config("leap")
    with_them = load_config("leap", optimizer={"intermediate_weight": 0.1}).build()
    without = load_config("leap", optimizer={"intermediate_weight": 0.0}).build()
    assert len(with_them.target_keypoints) == len(config.fingertips) + len(config.intermediates)
    assert without.target_keypoints == tuple(config.fingertips)
    assert len(without.optimizer.vectors) == len(with_them.optimizer.vectors) - len(
        config.intermediates
    )


def _numbers(value):
    if isinstance(value, dict):
        return [x for k in sorted(value) for x in _numbers(value[k])]
    if isinstance(value, list):
        return [x for v in value for x in _numbers(v)]
    return [float(value)]


def _args(**kwargs) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench_fidelity.add_arguments(parser)
    return parser.parse_args([f"--{k.replace('_', '-')}={v}" for k, v in kwargs.items()])


def test_bench_fidelity_rows(tmp_path):
    assert BENCHMARKS["fidelity"] == "hand_pose_ros.benchmarks.fidelity"
    args = build_parser().parse_args(["bench", "fidelity", "--robot", "shadow", "--json"])
    assert args.robot == "shadow" and args.json
    args = _args(robot="hand_pose_ros_hand", data=tmp_path, poses="flat,fist,pinch_index")
    args.no_dex = True
    result = bench_fidelity.run(args)
    assert result["bench"] == "fidelity"
    summary = result["rows"][0]
    assert summary["name"] == "hand_pose_ros_hand"
    assert summary["flat_flex_max"] <= FLAT_MAX and summary["fist_flex_min"] >= FIST_MIN
    assert summary["pinch_index_mm"] <= 10 and summary["pinch_reach_index_mm"] < 1
    details = {r["name"]: r for r in result["rows"][1:4]}
    assert set(details) == {f"hand_pose_ros_hand/{p}" for p in ("flat", "fist", "pinch_index")}
    assert result["rows"][-1] == {"name": "grab", "skipped": f"no .npz sequences in {tmp_path}"}
    with pytest.raises(ValueError, match="unknown poses"):
        bench_fidelity.run(_args(robot="hand_pose_ros_hand", data=tmp_path, poses="wave"))


def test_bench_fidelity_camera_rows_open_the_robot_with_the_operator_calibration(tmp_path):
    """``--camera``: the demo through the estimator and the IK, as estimated and with the
    operator flexion calibration; 40 frames holding the flat hand once."""
    args = _args(robot="hand_pose_ros_hand", data=tmp_path, poses="flat", camera_frames=40)
    args.no_dex, args.camera = True, True
    rows = [r for r in bench_fidelity.run(args)["rows"] if r["name"].endswith("/camera")]
    none, operator = rows
    assert (none["calibration"], operator["calibration"]) == ("none", "operator")
    assert none["frames"] == operator["frames"] >= 30 and none["open_frames"] >= 10
    # The estimated flat hand bends the robot's fingers; the calibration opens them.
    assert none["open_flex_mean"] > none["open_flex_truth"] + 0.05
    assert operator["open_flex_mean"] < none["open_flex_mean"] - 0.03
    assert operator["joint_error_rad"] < none["joint_error_rad"]
    assert none["fist_frames"] == 0 and none["fist_flex_mean"] is None
    early = _args(robot="hand_pose_ros_hand", data=tmp_path, poses="flat", camera_start=10)
    early.no_dex, early.camera = True, True
    with pytest.raises(ValueError, match="after the calibration holds"):
        bench_fidelity.run(early)


def test_calibrate_robot_cli_dry_run(tmp_path, capsys):
    path = tmp_path / "ours.yaml"
    shutil.copy(ROBOT_CONFIG_DIR / "hand_pose_ros_hand.yaml", path)
    path.write_text(
        path.read_text().replace("urdf: ../../urdf/", f"urdf: {ROBOT_CONFIG_DIR.parents[1]}/urdf/")
    )
    before = path.read_text()
    args = build_parser().parse_args(["calibrate-robot", "--robot", str(path), "--dry-run"])
    assert args.func(args) == 0
    assert path.read_text() == before
    (row,) = json.loads(capsys.readouterr().out)["calibrate_robot"]
    assert row["written"] is None and "pinch_weight" in row
    # The printed open pose is the one the shipped YAML holds (the calibration reproduces it).
    shipped = yaml.safe_load(before)["open_pose"]
    assert row["open_pose_rad"] == pytest.approx({k: round(v, 4) for k, v in shipped.items()},
                                                 abs=2e-4)  # fmt: skip


@pytest.mark.parametrize("name", ["allegro", "shadow"])
@pytest.mark.parametrize("size", [0.85, 1.15])
def test_flat_and_fist_hold_for_smaller_and_larger_hands(name, size):
    """The operator's hand is scaled to the calibration's (``palm_length_m``): a flat hand
    of another size is still open, its fist still closed."""
    retargeter = load_config(name).build()
    step = lambda kp, bio: retargeter.retarget(kp * size, bio).positions  # noqa: E731
    result = evaluate_presets(retargeter, ["flat", "fist"], step=step)
    assert max(result.flex["flat"].values()) <= FLAT_MAX, result.flex["flat"]
    assert min(result.flex["fist"].values()) >= FIST_MIN, result.flex["fist"]
