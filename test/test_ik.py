"""IK: features, keypoint layer, alignment, bend penalty, LM, solver behaviour and weights."""

from __future__ import annotations

import numpy as np
import pytest
import roma
import torch

from hand_ik.biomech import bio_kinematics_for
from hand_ik.hand_model import load_hand_model
from hand_ik.ik.alignment import rigid_align
from hand_ik.ik.evaluate import synthetic_eval_set
from hand_ik.ik.features import bone_features
from hand_ik.ik.ik_net import IKNet
from hand_ik.ik.keypoint_layer import KeypointLayer
from hand_ik.ik.post_opt import PostOptConfig, bend_penalty
from hand_ik.ik.solver import IKSolver
from hand_ik.ik.weights import DEFAULT_WEIGHTS, load_ik_weights, save_ik_weights
from hand_ik.pose_sampler import PoseSampler


@pytest.fixture(scope="module")
def model():
    return load_hand_model("open")


@pytest.fixture(scope="module")
def model64():
    return load_hand_model("open").double()


def _posed(model, n, seed):
    dtype = model.v_template.dtype
    bio = torch.as_tensor(PoseSampler(seed).sample_bio(n), dtype=dtype)
    betas = torch.as_tensor(np.random.default_rng(seed).normal(size=(n, 10)), dtype=dtype)
    orient = roma.random_rotvec(n, dtype=dtype, generator=torch.Generator().manual_seed(seed))
    transl = torch.randn(n, 3, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    return bio, betas, orient, transl


def test_features_are_translation_and_rotation_invariant(model64):
    joints = model64(pose=torch.randn(4, 45, dtype=torch.float64) * 0.3).joints
    feats = bone_features(joints)
    assert feats.shape == (4, 80)
    shifted = bone_features(joints + torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64))
    torch.testing.assert_close(shifted, feats)
    rot = roma.random_rotmat(dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    rotated = bone_features(joints @ rot.T)
    torch.testing.assert_close(rotated[:, 60:], feats[:, 60:])  # lengths
    dirs = feats[:, :60].reshape(4, 20, 3)
    torch.testing.assert_close(dirs.norm(dim=-1), torch.ones(4, 20, dtype=torch.float64))


def test_degenerate_bones_give_no_nan():
    feats = bone_features(torch.zeros(2, 21, 3))
    assert torch.isfinite(feats).all()


@pytest.mark.parametrize("extra", [None, [0, 100, 777]])
def test_keypoint_layer_matches_the_model(model64, extra):
    bio, betas, orient, transl = _posed(model64, 8, 1)
    kin = bio_kinematics_for(model64)
    layer = KeypointLayer(model64, extra_vertex_ids=extra)
    rotmats = torch.cat([roma.rotvec_to_rotmat(orient)[:, None], kin.bio_to_rotmats(bio)], dim=1)
    out = model64(betas=betas, pose=kin.bio_to_pose(bio), global_orient=orient, transl=transl)
    got = layer(betas, rotmats, transl)
    torch.testing.assert_close(got[:, :21], out.joints, atol=1e-10, rtol=0)
    if extra is not None:
        torch.testing.assert_close(got[:, 21:], out.vertices[:, extra], atol=1e-10, rtol=0)


def test_rigid_align_recovers_a_known_transform():
    gen = torch.Generator().manual_seed(3)
    src = torch.randn(5, 6, 3, generator=gen, dtype=torch.float64)
    rot = roma.random_rotmat(5, dtype=torch.float64, generator=gen)
    shift = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    r, t = rigid_align(src, src @ rot.transpose(1, 2) + shift[:, None])
    torch.testing.assert_close(r, rot)
    torch.testing.assert_close(t, shift)


def test_bend_penalty_zero_for_natural_fingers_positive_for_reversed_dip(model64):
    kin = bio_kinematics_for(model64)
    bio = torch.zeros(1, 23, dtype=torch.float64)
    for finger in ("index", "middle", "ring", "little"):
        bio[0, kin_index(f"{finger}_pip_flex")] = 0.8
        bio[0, kin_index(f"{finger}_dip_flex")] = 0.5
    natural = model64(pose=kin.bio_to_pose(bio)).joints.numpy()
    assert np.all(bend_penalty(natural) == 0)
    bio[0, kin_index("index_dip_flex")] = -0.5  # DIP bent backwards against a flexed PIP
    reversed_ = model64(pose=kin.bio_to_pose(bio)).joints.numpy()
    penalty = bend_penalty(reversed_)[0]
    assert penalty[0] > 0.05 and np.all(penalty[1:] == 0)


def kin_index(name: str) -> int:
    from hand_ik.bio_dofs import BIO_DOF_INDEX

    return BIO_DOF_INDEX[name]


def test_solver_never_returns_nan_and_flags_degenerate_input(model):
    es = synthetic_eval_set(model, 4, 1001)
    joints = es.inputs.copy()
    joints[0] = 0.2  # all joints equal: no palm
    joints[1, 8] = np.nan  # a missing fingertip: solvable, lower confidence
    joints[2, 5] = np.nan  # a missing palm keypoint: not solvable
    state = IKSolver(model, weights=None).solve(joints)
    assert list(state.valid) == [False, True, False, True]
    for field in ("betas", "bio", "global_orient", "transl", "joints", "vertices", "fit_error"):
        assert np.isfinite(getattr(state, field)).all(), field
    with pytest.raises(ValueError, match=r"\(N, 21, 3\)"):
        IKSolver(model, weights=None).solve(np.zeros((2, 20, 3)))


def test_left_hand_is_solved_in_mirror(model):
    es = synthetic_eval_set(model, 2, 1003)
    solver = IKSolver(model, weights=None)
    right = solver.solve(es.inputs, post_opt=True)
    mirrored = es.inputs * np.array([-1.0, 1.0, 1.0])
    left = solver.solve(mirrored, post_opt=True, handedness="left")
    np.testing.assert_allclose(left.joints, right.joints * np.array([-1.0, 1.0, 1.0]), atol=1e-5)
    np.testing.assert_allclose(left.bio, right.bio, atol=1e-5)
    # HandState's documented frames: the right model posed by the parameters, mirrored
    # back, gives a left hand's joints.
    kin = bio_kinematics_for(model)
    as_t = lambda a: torch.as_tensor(a, dtype=model.v_template.dtype)  # noqa: E731
    with torch.no_grad():
        posed = model(betas=as_t(left.betas), pose=kin.bio_to_pose(as_t(left.bio)),
                      global_orient=as_t(left.global_orient), transl=as_t(left.transl))
    np.testing.assert_allclose(posed.joints.numpy() * np.array([-1.0, 1.0, 1.0]), left.joints,
                               atol=1e-5)


@pytest.mark.parametrize("method", ["lm", "adam"])
def test_post_opt_with_vertices_matches_the_keypoint_path_objective(model, method):
    """The autodiff (vertex) path and the closed-form path share one objective: with a
    zero vertex weight both give the same refinement."""
    es = synthetic_eval_set(model, 2, 1004, noise_m=0.003)
    config = PostOptConfig(vertex_weight=0.0, method=method, iterations=3)
    fast = IKSolver(model, post_opt=config).solve(es.inputs, post_opt=True)
    solver = IKSolver(model, post_opt=config)
    # Force the autodiff kinematics on the same (keypoint-only) objective.
    solver.post_optimizer.fast.supports = False
    slow = solver.solve(es.inputs, post_opt=True)
    np.testing.assert_allclose(slow.bio, fast.bio, atol=1e-4)
    np.testing.assert_allclose(slow.joints, fast.joints, atol=1e-5)
    with_mesh = IKSolver(model, post_opt=PostOptConfig(method=method)).solve(
        es.inputs, es.gt_vertices, post_opt=True)
    assert np.isfinite(with_mesh.bio).all() and with_mesh.valid.all()
    assert with_mesh.fit_error.max() < 0.01


def test_weights_are_tied_to_their_hand_model(model, tmp_path):
    net = IKNet(23)
    path = tmp_path / "ik.pt"
    save_ik_weights(net, path, model, {"note": "test"})
    assert isinstance(load_ik_weights(path, model), IKNet)
    other = load_hand_model("open")
    other.v_template[:, 1] *= 1.1  # a different hand model
    with pytest.raises(ValueError, match="trained for hand model"):
        load_ik_weights(path, other)
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ValueError, match="sha256"):
        load_ik_weights(path, model)
    with pytest.raises(FileNotFoundError, match="train ik"):
        load_ik_weights(tmp_path / "missing.pt", model)


@pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="shipped IK weights not built yet")
def test_known_pose_is_recovered_after_post_opt(model):
    """A hand posed by the model from known bio/betas is recovered within 1 mm."""
    bio, betas, orient, transl = _posed(model, 16, 21)
    kin = bio_kinematics_for(model)
    with torch.no_grad():
        joints = model(betas=betas, pose=kin.bio_to_pose(bio), global_orient=orient,
                       transl=transl).joints.numpy()  # fmt: skip
    state = IKSolver(model).solve(joints, post_opt=True)
    err = np.linalg.norm(state.joints - joints, axis=-1).mean(-1)
    assert err.max() < 1e-3, err
    known = IKSolver(model).solve(joints, betas=betas.numpy(), post_opt=True)
    assert np.linalg.norm(known.joints - joints, axis=-1).mean(-1).max() < 1e-3


@pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="shipped IK weights not built yet")
def test_calibration_recovers_an_operator_shape_and_profile_round_trips(model, tmp_path):
    from hand_ik.ik.calibration import (
        calibrate_shape,
        load_operator_profile,
        save_operator_profile,
    )

    bio, _, orient, transl = _posed(model, 12, 31)
    true_betas = torch.tensor([[1.5, -0.8, 0.6, 0.0, 0.3, -0.4, 0.2, 0.0, 0.1, -0.2]])
    kin = bio_kinematics_for(model)
    with torch.no_grad():
        out = model(betas=true_betas.expand(12, -1), pose=kin.bio_to_pose(bio),
                    global_orient=orient, transl=transl)  # fmt: skip
        noise = 0.002 * torch.randn(out.joints.shape, generator=torch.Generator().manual_seed(0))
        rest_true = model(betas=true_betas).joints[0]

    def shape_error_m(betas: np.ndarray) -> float:
        with torch.no_grad():
            rest = model(betas=torch.as_tensor(betas, dtype=torch.float32)[None]).joints[0]
        return float((rest - rest_true).norm(dim=-1).mean())

    solver = IKSolver(model)
    exact = calibrate_shape(solver, out.joints.numpy())
    # Without noise the operator's skeleton is recovered to well under a millimetre.
    assert shape_error_m(exact.betas) < 1e-3
    result = calibrate_shape(solver, (out.joints + noise).numpy())
    # With 2 mm keypoint noise it is still much closer than the mean shape.
    assert shape_error_m(result.betas) < 0.5 * shape_error_m(np.zeros(10))
    assert result.frames_used == 12 and result.fit_error_mm < 3.0
    path = tmp_path / "op.yaml"
    save_operator_profile(path, result, model, "tester")
    np.testing.assert_allclose(load_operator_profile(path, model), result.betas, atol=1e-6)
    other = load_hand_model("open")
    other.v_template[:, 0] += 0.01
    with pytest.raises(ValueError, match="another hand model"):
        load_operator_profile(path, other)
    with pytest.raises(ValueError, match="at least 5 valid frames"):
        calibrate_shape(solver, out.joints.numpy()[:3])
