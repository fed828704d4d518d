"""Keypoint conventions (hand_ik.conventions): shapes, round trips, the fitted manifests,
and that the IK recovers a hand better under the right convention."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hand_ik.conventions import (
    CONVENTION_DIR,
    CONVENTION_NAMES,
    KeypointConvention,
    default_anchors,
    fit_offsets,
    identity_convention,
    load_convention,
    rest_bone_directions,
)
from hand_ik.hand_model import load_hand_model
from hand_ik.ik.train import make_ik_data

FITTED = [n for n in CONVENTION_NAMES if n != "ours"]


@pytest.fixture(scope="module")
def model():
    return load_hand_model("open")


@pytest.fixture(scope="module")
def hands(model):
    """(ours keypoints (16, 21, 3) of random posed hands, their data), float64."""
    data = make_ik_data(model, 16, seed=4321)
    return data["joints"], data


@pytest.fixture(scope="module")
def rest_dirs(model):
    with torch.no_grad():
        return rest_bone_directions(model(betas=None).joints[0].double().numpy())


@pytest.mark.parametrize("name", CONVENTION_NAMES)
def test_shapes_and_round_trip(name, hands):
    convention = load_convention(name)
    joints = hands[0]
    source = convention.from_ours(joints)
    assert source.shape == joints.shape and np.isfinite(source).all()
    np.testing.assert_allclose(convention.to_ours(source), joints, atol=1e-6)
    single = convention.to_ours(source[0])
    assert single.shape == (21, 3)
    np.testing.assert_allclose(single, convention.to_ours(source)[0], atol=1e-12)


@pytest.mark.parametrize("name", CONVENTION_NAMES)
def test_left_hands_are_mirrored(name, hands):
    convention = load_convention(name)
    mirror = np.array([-1.0, 1.0, 1.0])
    joints = hands[0]
    np.testing.assert_allclose(convention.to_ours(joints * mirror, handedness="left"),
                               convention.to_ours(joints) * mirror, atol=1e-12)  # fmt: skip


def test_ours_is_identity(hands):
    ours = load_convention("ours")
    joints = hands[0]
    assert ours.identity
    np.testing.assert_array_equal(ours.to_ours(joints), joints)
    np.testing.assert_array_equal(ours.from_ours(joints), joints)


@pytest.mark.parametrize("name", FITTED)
def test_fitted_conventions_move_keypoints_by_millimetres(name, hands):
    convention = load_convention(name)
    joints = hands[0]
    shift = np.linalg.norm(convention.from_ours(joints) - joints, axis=-1)
    assert not convention.identity
    assert 0.5e-3 < shift.mean() < 15e-3, shift.mean()


def test_missing_keypoints_stay_missing(hands):
    convention = load_convention("mano")
    joints = hands[0][:2].copy()
    joints[0, 8] = np.nan  # index tip missing
    ours = convention.to_ours(joints)
    assert np.isnan(ours[0, 8]).all()
    assert np.isfinite(np.delete(ours[0], 8, axis=0)).all()
    assert np.isfinite(ours[1]).all()


def test_fit_offsets_recovers_known_offsets(hands, rest_dirs):
    rng = np.random.default_rng(0)
    anchors = default_anchors()
    offsets = rng.normal(0, 0.003, (21, 2, 3)) * (anchors >= 0)[..., None]
    truth = KeypointConvention("t", offsets, rest_dirs, 0.09, anchors)
    source = hands[0]  # the map is defined on the source side: ours = to_ours(source)
    fitted = fit_offsets(truth.to_ours(source), source, rest_dirs, anchors, 0.09, ridge=1e-6)
    np.testing.assert_allclose(fitted, offsets, atol=1e-6)


def test_bad_input_is_refused(rest_dirs):
    with pytest.raises(ValueError, match="offsets"):
        KeypointConvention("x", np.zeros((20, 2, 3)), rest_dirs, 0.09)
    with pytest.raises(ValueError, match="ref_length"):
        KeypointConvention("x", np.zeros((21, 2, 3)), rest_dirs, 0.0)
    with pytest.raises(ValueError, match="valid"):
        load_convention("freihand_v9")
    with pytest.raises(ValueError, match="handedness"):
        identity_convention().to_ours(np.zeros((21, 3)), handedness="both")


def test_mano_manifest_split_by_sequence():
    manifest = load_convention("mano").manifest
    split = manifest["split"]
    assert split["by"] == "sequence"
    assert split["fit"] and split["held_out"]
    assert not set(split["fit"]) & set(split["held_out"])
    assert {"seed", "stride"} <= set(split)
    assert manifest["held_out_metrics"]["mano_known_shape"]["pa_mpjpe_mm"] > 0


def test_mediapipe_manifest_split_by_seed():
    path = CONVENTION_DIR / "mediapipe.json"
    if not path.is_file():
        pytest.skip("mediapipe convention not fitted")
    split = load_convention("mediapipe").manifest["split"]
    assert split["fit_seed"] != split["held_out_seed"]
    assert split["fit_seed"] < 1_000_000 <= split["held_out_seed"]  # synth train / test


def test_ik_recovers_a_mano_convention_hand_better(model, hands):
    """Hands made under the mano convention: solved with it, the IK finds our model's
    pose; solved as if they were ours, it fits a wrong skeleton."""
    from hand_ik.ik.solver import IKSolver

    joints, data = hands
    mano = load_convention("mano")
    source = mano.from_ours(joints)
    solver = IKSolver(model)
    naive = solver.solve(source, post_opt=True)
    converted = solver.solve(mano.to_ours(source), post_opt=True)
    err_naive = np.linalg.norm(naive.joints - joints, axis=-1).mean()
    err_conv = np.linalg.norm(converted.joints - joints, axis=-1).mean()
    bio_naive = np.abs(naive.bio - data["bio"]).mean()
    bio_conv = np.abs(converted.bio - data["bio"]).mean()
    assert err_conv < 0.6 * err_naive, (err_conv, err_naive)
    assert bio_conv < bio_naive, (bio_conv, bio_naive)


def test_bench_rows_with_and_without_the_convention(model):
    """bench ik's convention rows: the mano rows beat the ours rows on mano-style input."""
    from hand_ik.ik.evaluate import EVAL_SEED_CLEAN, synthetic_eval_set
    from hand_pose_ros.benchmarks.ik_conventions import convention_rows, synthetic_in_convention

    mano = load_convention("mano")
    eval_set = synthetic_in_convention(synthetic_eval_set(model, 12, EVAL_SEED_CLEAN), mano)
    rows = convention_rows(model, eval_set, {"ours_row": identity_convention(),
                                             "mano_row": mano},
                           {"mano": eval_set.gt_betas}, timing_frames=3)  # fmt: skip
    by_name = {r["name"]: r for r in rows}
    assert set(by_name) == {"ours_row", "mano_row", "mano_row_known_shape"}
    assert by_name["mano_row"]["pa_mpjpe_mm"] < 0.5 * by_name["ours_row"]["pa_mpjpe_mm"]
    assert all(r["ms_per_frame_median"] > 0 and r["valid_rate"] == 1.0 for r in rows)


def test_fit_model_offsets_recovers_known_offsets(hands):
    import roma

    from hand_ik.conventions import fit_model_offsets, model_anchor_joints

    joints = hands[0]
    world = roma.random_rotmat((len(joints), 16), dtype=torch.float64,
                               generator=torch.Generator().manual_seed(0)).numpy()  # fmt: skip
    offsets = np.random.default_rng(1).normal(0, 0.004, (21, 3))
    rot = world[:, model_anchor_joints()]
    source = joints + (rot @ offsets[:, :, None])[..., 0]
    np.testing.assert_allclose(fit_model_offsets(joints, source, world), offsets, atol=1e-12)
    convention = KeypointConvention("t", np.ones((21, 2, 3)) * 1e-3, np.tile([0, 1.0, 0], (20, 1)),
                                    0.09, model_offsets=offsets)  # fmt: skip
    np.testing.assert_allclose(convention.from_model(joints, world), source, atol=1e-12)


@pytest.mark.parametrize("name", ["mano"])
def test_model_side_agrees_with_the_source_side(name, model, hands):
    """Both sides of the mano convention put the keypoints of posed hands close together.

    (Not mediapipe: its two sides are regressions on a network's ~20 mm errors, from noisy
    frames on one side and clean ones on the other, and disagree by about their size.)"""
    from hand_ik.lbs import batch_rigid_transform

    convention = load_convention(name)
    if convention.model_offsets is None:
        pytest.skip(f"{name}: no model-side offsets fitted")
    joints, data = hands
    import roma

    with torch.no_grad():
        pose = torch.as_tensor(data["pose45"], dtype=torch.float32)
        rot = roma.rotvec_to_rotmat(torch.cat([torch.zeros(len(pose), 3), pose], 1)
                                    .reshape(len(pose), 16, 3))  # fmt: skip
        rest = model.rest_joints16(torch.as_tensor(data["betas"], dtype=torch.float32))
        _, transforms = batch_rigid_transform(rot, rest, model._parents_list)
    world = transforms[:, :, :3, :3].double().numpy()
    source = convention.from_ours(joints)
    gap = np.linalg.norm(convention.from_model(joints, world) - source, axis=-1)
    shift = np.linalg.norm(source - joints, axis=-1)
    assert gap.mean() < 0.5 * shift.mean(), (gap.mean(), shift.mean())


def test_ik_stage_takes_its_input_convention(hands):
    """IKStage converts its input with ``keypoint_convention`` (live), auto = ours."""
    import dataclasses

    from hand_pose_ros.pipeline.stages import IKStage, IKStageConfig

    joints = hands[0][:4] + np.array([0.0, 0.0, 0.5])  # in front of the camera
    source = load_convention("mano").from_ours(joints)
    stage = IKStage(IKStageConfig())
    assert stage.convention.name == "ours"  # auto outside a graph plan

    def error() -> float:
        states = [stage.solve(s, track_id=i) for i, s in enumerate(source)]
        assert all(st.valid[0] for st in states), stage.last_rejection
        return float(np.mean([np.linalg.norm(st.joints[0] - j, axis=-1).mean()
                              for st, j in zip(states, joints, strict=True)]))  # fmt: skip

    as_ours = error()
    stage.reconfigure(dataclasses.replace(stage.config, keypoint_convention="mano"))
    stage.reset()
    assert stage.convention.name == "mano"
    assert error() < 0.6 * as_ours
    with pytest.raises(ValueError, match="keypoint_convention"):
        IKStageConfig(keypoint_convention="freihand_v9")


def _reference_to_ours(convention: KeypointConvention, keypoints: np.ndarray,
                       handedness: str) -> np.ndarray:  # fmt: skip
    """The map of the module docstring, one keypoint at a time (np.cross, explicit
    Rodrigues): the reference the fast per-frame path is checked against."""
    from hand_ik.keypoints import KEYPOINT_PARENTS

    mirror = np.array([-1.0 if handedness == "left" else 1.0, 1.0, 1.0])
    src = keypoints * mirror
    y = src[9] - src[0]
    y = y / np.linalg.norm(y)
    t = src[5] - src[17]
    z = t - t.dot(y) * y
    z = z / np.linalg.norm(z)
    frames = {0: np.column_stack([np.cross(y, z), y, z])}
    for child in range(1, 21):
        parent = KEYPOINT_PARENTS[child]
        a = frames[parent] @ convention.rest_dirs[child - 1]
        b = (src[child] - src[parent]) / np.linalg.norm(src[child] - src[parent])
        v, c = np.cross(a, b), a.dot(b)
        skew = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
        frames[child] = (c * np.eye(3) + skew + np.outer(v, v) / (1 + c)) @ frames[parent]
    scale = np.linalg.norm(src[9] - src[0]) / convention.ref_length
    out = src.copy()
    for k in range(21):
        for slot in range(convention.anchors.shape[1]):
            if convention.anchors[k, slot] >= 0:
                frame = frames[int(convention.anchors[k, slot])]
                out[k] -= scale * frame @ convention.offsets[k, slot]
    return out * mirror


@pytest.mark.parametrize("handedness", ["right", "left"])
@pytest.mark.parametrize("name", [*FITTED, "two_slots"])
def test_per_frame_path_matches_the_reference(name, handedness, hands, rest_dirs):
    """One hand goes through the Python-float path; it equals the reference map and the
    batched numpy path to float rounding (1e-9 m) on noisy posed hands."""
    if name == "two_slots":
        anchors = default_anchors(outgoing=True)
        offsets = np.random.default_rng(1).normal(0, 0.004, (21, 2, 3))
        convention = KeypointConvention(name, offsets * (anchors >= 0)[..., None],
                                        rest_dirs, 0.09, anchors)  # fmt: skip
    else:
        convention = load_convention(name)
    rng = np.random.default_rng(7)
    joints = hands[0] + rng.normal(0, 0.004, hands[0].shape)
    mirror = np.array([-1.0, 1.0, 1.0]) if handedness == "left" else np.ones(3)
    joints = joints * mirror
    batched = convention.to_ours(joints, handedness)  # (16, 21, 3): the numpy path
    for hand, row in zip(joints, batched, strict=True):
        single = convention.to_ours(hand, handedness)
        assert single.shape == (21, 3)
        expected = _reference_to_ours(convention, hand, handedness)
        np.testing.assert_allclose(single, expected, rtol=0, atol=1e-9)
        np.testing.assert_allclose(row, expected, rtol=0, atol=1e-9)
        assert np.abs(single - hand).max() > 1e-4  # the map moves keypoints (mm)
    with pytest.raises(ValueError, match="handedness"):
        convention.to_ours(joints[0], "both")
