"""The per-frame IK in numpy against its torch reference: forward kinematics, Jacobians, the
IK net, features, alignment, rotations, the post-optimization objective and batching."""

from __future__ import annotations

import numpy as np
import pytest
import roma
import torch
from _finite_differences import central_differences

from hand_ik.biomech import bio_kinematics_for
from hand_ik.hand_model import load_hand_model
from hand_ik.ik._rotations_np import (
    rotmat_to_rotvec_batch,
    rotvec_to_rotmat_batch,
    rotvec_to_rotmat_one,
)
from hand_ik.ik.alignment import rigid_align, rigid_align_np
from hand_ik.ik.evaluate import synthetic_eval_set
from hand_ik.ik.fast_kinematics import FastKeypointKinematics
from hand_ik.ik.features import bone_features, bone_features_np
from hand_ik.ik.ik_net import IKNet, NumpyIKNet
from hand_ik.ik.point_regressor import PointRegressor
from hand_ik.ik.post_opt import PostOptConfig
from hand_ik.ik.post_opt_objective import (
    LONG_FINGER_CHAINS,
    PostOptProblem,
    bend_penalty,
    bend_penalty_jacobian,
)
from hand_ik.ik.solver import IKSolver
from hand_ik.ik.weights import DEFAULT_WEIGHTS, load_ik_weights
from hand_ik.pose_sampler import PoseSampler


@pytest.fixture(scope="module", params=["right", "left"])
def model64(request):
    return load_hand_model("open", side=request.param).double()


@pytest.fixture(scope="module")
def model():
    return load_hand_model("open")


def _random_pose(n: int, seed: int, num_betas: int = 10):
    rng = np.random.default_rng(seed)
    bio = PoseSampler(seed).sample_bio(n)
    betas = rng.normal(size=(n, num_betas))
    rotation = roma.random_rotmat(n, dtype=torch.float64,
                                  generator=torch.Generator().manual_seed(seed)).numpy()
    return betas, bio, rotation, rng.normal(0, 0.3, size=(n, 3))


def _torch_hand(model, kin, betas, bio, rotation, transl):
    as_t = lambda a: torch.as_tensor(a, dtype=model.v_template.dtype)  # noqa: E731
    with torch.no_grad():
        return model.forward_rotmat(as_t(betas), kin.bio_to_rotmats(as_t(bio)), as_t(rotation),
                                    as_t(transl))  # fmt: skip


def test_numpy_forward_kinematics_matches_the_torch_model(model64):
    kin = bio_kinematics_for(model64)
    fk = FastKeypointKinematics(model64, kin)
    betas, bio, rotation, transl = _random_pose(8, 1)
    posed = fk.pose(betas, bio, rotation, transl)
    out = _torch_hand(model64, kin, betas, bio, rotation, transl)
    np.testing.assert_allclose(posed.points, out.joints.numpy(), atol=1e-6, rtol=0)
    np.testing.assert_allclose(fk.vertices(posed), out.vertices.numpy(), atol=1e-6, rtol=0)
    np.testing.assert_allclose(posed.local, kin.bio_to_rotmats(torch.as_tensor(bio)).numpy(),
                               atol=1e-12, rtol=0)  # fmt: skip
    # The general tree walk and the five-chain fast path agree.
    fk._five_chains = False
    np.testing.assert_allclose(fk.pose(betas, bio, rotation, transl).points, posed.points,
                               atol=1e-12, rtol=0)  # fmt: skip


def test_numpy_forward_kinematics_matches_a_float32_model(model):
    kin = bio_kinematics_for(model)
    fk = FastKeypointKinematics(model, kin)
    betas, bio, rotation, transl = _random_pose(4, 2)
    out = _torch_hand(model, kin, betas, bio, rotation, transl)
    posed = fk.pose(betas, bio, rotation, transl)
    # float32 torch vs float64 numpy: float32 rounding only.
    np.testing.assert_allclose(posed.points, out.joints.numpy(), atol=1e-5, rtol=0)


def test_closed_form_jacobians_match_finite_differences(model64):
    fk = FastKeypointKinematics(model64, bio_kinematics_for(model64))
    betas, bio, rotation, transl = _random_pose(3, 3)
    jac = fk.jacobians(fk.pose(betas, bio, rotation, transl))
    checks = {
        "bio": central_differences(lambda b: fk.pose(betas, b, rotation, transl).points, bio),
        "betas": central_differences(lambda s: fk.pose(s, bio, rotation, transl).points, betas),
        "transl": central_differences(lambda t: fk.pose(betas, bio, rotation, t).points, transl),
        "rot": central_differences(lambda d: fk.pose(
            betas, bio, rotvec_to_rotmat_batch(d) @ rotation, transl).points, np.zeros((3, 3))),
    }  # fmt: skip
    for name, expected in checks.items():
        np.testing.assert_allclose(jac[name], expected, atol=1e-7, rtol=0, err_msg=name)


def test_rigid_transform_of_a_posed_hand_equals_posing_it(model64):
    fk = FastKeypointKinematics(model64, bio_kinematics_for(model64))
    betas, bio, rotation, transl = _random_pose(4, 4)
    at_origin = fk.pose(betas, bio, np.broadcast_to(np.eye(3), (4, 3, 3)), np.zeros((4, 3)))
    moved, direct = fk.transform(at_origin, rotation, transl), fk.pose(betas, bio, rotation, transl)
    for a, b, name in zip(moved, direct, type(moved)._fields, strict=True):
        if a is None or b is None:  # contrib: not kept when each point has one joint
            assert a is None and b is None, name
            continue
        np.testing.assert_allclose(a, b, atol=1e-12, rtol=0, err_msg=name)


def test_one_joint_per_point_path_matches_the_dense_blend(model64):
    """Our keypoints each follow one joint: pose gathers it (contrib None). Points,
    transform and Jacobians equal the dense 16-joint blend (the general path, and
    sum_j R_j O_kj + W_kj p_j written out here) to float rounding."""
    import copy

    fk = FastKeypointKinematics(model64, bio_kinematics_for(model64))
    assert fk.point_joint is not None
    dense = copy.copy(fk)
    dense.point_joint = None
    betas, bio, rotation, transl = _random_pose(5, 11)
    fast, ref = fk.pose(betas, bio, rotation, transl), dense.pose(betas, bio, rotation, transl)
    assert fast.contrib is None and ref.contrib is not None
    reg = fk.regressor
    offsets = reg.offsets + np.einsum("kjxn,bn->bkjx", reg.offset_dirs, betas)
    blend = (np.einsum("bjxy,bkjy->bkx", fast.world, offsets)
             + np.einsum("kj,bjx->bkx", reg.weights, fast.pos))  # fmt: skip
    np.testing.assert_allclose(fast.points, blend, atol=1e-12, rtol=0)
    np.testing.assert_allclose(fast.points, ref.points, atol=1e-12, rtol=0)
    for shape_jacobian in (True, False):
        got, want = fk.jacobians(fast, shape_jacobian), dense.jacobians(ref, shape_jacobian)
        for name in want:
            np.testing.assert_allclose(got[name], want[name], atol=1e-12, rtol=0, err_msg=name)
    moved = fk.transform(fk.pose(betas, bio, np.broadcast_to(np.eye(3), (5, 3, 3)),
                                 np.zeros((5, 3))), rotation, transl)  # fmt: skip
    np.testing.assert_allclose(moved.points, ref.points, atol=1e-12, rtol=0)


def test_vertex_regressor_matches_regressing_the_posed_mesh(model64):
    """A regressor over the posed mesh (here the model's J_regressor, applied after skinning
    as MANO-style datasets do) is exact in blend form, and compose / select build other
    conventions from it."""
    kin = bio_kinematics_for(model64)
    regressor = PointRegressor.from_vertex_regressor(model64, model64.J_regressor.numpy())
    fk = FastKeypointKinematics(model64, kin, regressor)
    betas, bio, rotation, transl = _random_pose(3, 5)
    points = fk.pose(betas, bio, rotation, transl).points
    out = _torch_hand(model64, kin, betas, bio, rotation, transl)
    regressed = np.einsum("jv,bvc->bjc", model64.J_regressor.numpy(), out.vertices.numpy())
    np.testing.assert_allclose(points, regressed, atol=1e-6, rtol=0)
    mids = PointRegressor.from_model(model64).compose(np.full((1, 21), 1 / 21)).select([0, 0])
    mean = FastKeypointKinematics(model64, kin, mids).pose(betas, bio, rotation, transl).points
    np.testing.assert_allclose(mean[:, 0], out.joints.numpy().mean(1), atol=1e-6, rtol=0)
    # Its Jacobians are closed-form too.
    jac = fk.jacobians(fk.pose(betas, bio, rotation, transl))["bio"]
    fd = central_differences(lambda b: fk.pose(betas, b, rotation, transl).points, bio)
    np.testing.assert_allclose(jac, fd, atol=1e-7, rtol=0)
    with pytest.raises(ValueError, match="regressor must be"):
        PointRegressor.from_vertex_regressor(model64, np.zeros((3, 5)))


@pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="shipped IK weights not built yet")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_ik_net_matches_the_torch_net(model, dtype):
    net = load_ik_weights("default", model)
    es = synthetic_eval_set(model, 64, 1001, noise_m=0.005)
    feats = bone_features_np(IKSolver(model, weights=None).canonicalize(
        es.inputs, np.ones((64, 21), bool), np.ones(64, bool))[0])  # fmt: skip
    with torch.no_grad():
        betas_t, rot_t = net(torch.as_tensor(feats, dtype=torch.float32))
    betas, rot = NumpyIKNet(net, dtype)(feats)
    assert betas.dtype == np.float64 and rot.shape == (64, 23)
    np.testing.assert_allclose(betas, betas_t.numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(rot, rot_t.numpy(), atol=1e-5, rtol=0)


def test_numpy_ik_net_folds_batch_norm_statistics():
    """A net with non-trivial BatchNorm statistics (random, not the shipped ones)."""
    torch.manual_seed(0)
    net = IKNet(23).double()
    for module in net.trunk:
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.normal_()
            module.bias.data.normal_()
    net.eval()
    feats = torch.randn(5, 80, dtype=torch.float64)
    with torch.no_grad():
        expected = torch.cat(net(feats), dim=1).numpy()
    got = np.concatenate(NumpyIKNet(net, np.float64)(feats.numpy()), axis=1)
    np.testing.assert_allclose(got, expected, atol=1e-10, rtol=0)


def test_numpy_features_and_alignment_match_torch():
    gen = torch.Generator().manual_seed(7)
    joints = torch.randn(6, 21, 3, generator=gen, dtype=torch.float64) * 0.05
    joints[0, 2] = joints[0, 1]  # a zero-length bone
    np.testing.assert_allclose(bone_features_np(joints.numpy()), bone_features(joints).numpy(),
                               atol=1e-12, rtol=0)  # fmt: skip
    target = joints @ roma.random_rotmat(6, dtype=torch.float64, generator=gen).transpose(1, 2)
    r, t = rigid_align(joints[:, :6], target[:, :6] + 0.001)
    r_np, t_np = rigid_align_np(joints[:, :6].numpy(), target[:, :6].numpy() + 0.001)
    np.testing.assert_allclose(r_np, r.numpy(), atol=1e-10, rtol=0)
    np.testing.assert_allclose(t_np, t.numpy(), atol=1e-10, rtol=0)
    # One set at a time (the per-frame path) gives the batch path's numbers.
    for k in range(6):
        r_one, t_one = rigid_align_np(joints[k : k + 1, :6].numpy(),
                                      target[k : k + 1, :6].numpy() + 0.001)  # fmt: skip
        np.testing.assert_allclose(r_one[0], r_np[k], atol=1e-12, rtol=0)
        np.testing.assert_allclose(t_one[0], t_np[k], atol=1e-12, rtol=0)
    # A mirrored target: the best proper rotation, never a reflection (batch and one set).
    mirrored = joints[:, :6].numpy() * [-1.0, 1.0, 1.0]
    r_np, _ = rigid_align_np(joints[:, :6].numpy(), mirrored)
    np.testing.assert_allclose(np.linalg.det(r_np), 1.0, atol=1e-10)
    r_one, _ = rigid_align_np(joints[:1, :6].numpy(), mirrored[:1])
    np.testing.assert_allclose(r_one, r_np[:1], atol=1e-12)


def test_rotation_conversions_round_trip_at_every_angle():
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(8)
    axes = rng.normal(size=(5, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    rotvecs = np.concatenate([axes * np.pi, axes * (np.pi - 1e-7), axes * 1e-9, axes * 1e-4,
                              rng.normal(size=(50, 3)) * 0.8, np.zeros((1, 3))])  # fmt: skip
    mats = rotvec_to_rotmat_batch(rotvecs)
    np.testing.assert_allclose(mats, Rotation.from_rotvec(rotvecs).as_matrix(), atol=1e-12)
    np.testing.assert_allclose(np.stack([rotvec_to_rotmat_one(v) for v in rotvecs]), mats,
                               atol=1e-15)  # fmt: skip
    back = rotmat_to_rotvec_batch(mats)
    np.testing.assert_allclose(rotvec_to_rotmat_batch(back), mats, atol=1e-12)
    np.testing.assert_allclose(back[5:], rotvecs[5:], atol=1e-9)  # unique below pi
    # One matrix (the per-frame path, Python floats) gives the batch path's numbers.
    one = np.concatenate([rotmat_to_rotvec_batch(m[None]) for m in mats])
    np.testing.assert_allclose(one, back, atol=1e-14)


def test_bend_penalty_jacobian_matches_finite_differences():
    keypoints = np.random.default_rng(9).normal(size=(40, 21, 3)) * 0.05
    penalty, d_points = bend_penalty_jacobian(keypoints)
    np.testing.assert_allclose(penalty, bend_penalty(keypoints), atol=1e-15)
    # One hand (the per-frame path, Python floats) gives the batch path's numbers.
    one = np.concatenate([bend_penalty(k[None]) for k in keypoints])
    np.testing.assert_allclose(one, penalty, atol=1e-15)
    one, d_one = zip(*(bend_penalty_jacobian(k[None]) for k in keypoints), strict=True)
    np.testing.assert_allclose(np.concatenate(one), penalty, atol=1e-15)
    np.testing.assert_allclose(np.concatenate(d_one), d_points, atol=1e-12)
    assert (penalty > 0).any() and (penalty == 0).any()
    flat = keypoints.reshape(40, -1)
    fd = central_differences(lambda x: bend_penalty(x.reshape(40, 21, 3)), flat, 1e-8)
    dense = np.zeros((40, 4, 63))
    for finger, chain in enumerate(LONG_FINGER_CHAINS):
        for i, k in enumerate(chain):
            dense[:, finger, 3 * k : 3 * k + 3] += d_points[:, finger, i]
    np.testing.assert_allclose(dense, fd, atol=1e-5)


@pytest.mark.parametrize("fix_betas", [False, True])
def test_post_opt_jacobian_matches_finite_differences_of_the_residuals(model, fix_betas):
    es = synthetic_eval_set(model, 2, 1004, noise_m=0.003)
    fk = FastKeypointKinematics(model, bio_kinematics_for(model))
    betas, bio, rotation, transl = _random_pose(2, 6)
    bio[:, 0] = fk.upper[0] + 0.1  # one DoF beyond its limit
    weights = np.ones((2, 21))
    weights[0, 8] = 0.0
    def make(rows):
        return PostOptProblem(kinematics=fk, weights=PostOptConfig().objective_weights(),
                              target=es.inputs[rows], joint_weights=weights[rows],
                              start=bio[rows], betas=betas[rows], fix_betas=fix_betas,
                              lower=fk.lower, upper=fk.upper, previous=bio[rows] + 0.01)

    problem = make(slice(None))
    x = problem.pack(bio, betas, rotation, transl)
    res, jac = problem.residuals(x, True)
    assert res.shape == (2, problem.num_residuals) and jac.shape == (2, *res.shape[1:], x.shape[1]
                                                                     - 6)  # fmt: skip
    steps = np.zeros((2, jac.shape[-1]))
    fd = central_differences(lambda s: problem.residuals(problem.retract(x, s), False)[0], steps)
    np.testing.assert_allclose(jac, fd, atol=2e-3, rtol=1e-5)  # residuals in mm
    one, one_jac = make(slice(1, 2)).residuals(x[1], True)  # one frame: (P,) in, (R,) out
    np.testing.assert_allclose(one, res[1])
    np.testing.assert_allclose(one_jac, jac[1])


@pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="shipped IK weights not built yet")
def test_batched_solve_equals_frame_by_frame(model):
    """Benches solve whole sets at once: each frame still gets its own optimizer."""
    es = synthetic_eval_set(model, 6, 1005, noise_m=0.004)
    solver = IKSolver(model)
    batch = solver.solve(es.inputs)
    frames = [solver.solve(es.inputs[i : i + 1]) for i in range(6)]
    # Equal up to float32 rounding of the net (batched and single products sum differently).
    for name in ("bio", "betas", "joints", "vertices", "fit_error", "global_orient"):
        np.testing.assert_allclose(getattr(batch, name),
                                   np.concatenate([getattr(f, name) for f in frames]),
                                   atol=1e-5, rtol=1e-5, err_msg=name)  # fmt: skip
    bare = solver.solve(es.inputs[:1], with_vertices=False)
    assert bare.vertices is None
    np.testing.assert_allclose(bare.joints, frames[0].joints, atol=1e-12)


def test_elementary_rotations_match_the_rodrigues_product(model64):
    """bio_to_rotmats (elementwise Rodrigues) equals [sin, 1 - cos] @ [K; K^2] + I."""
    fk = FastKeypointKinematics(model64, bio_kinematics_for(model64))
    bio = _random_pose(6, 12)[1]
    angles = bio @ fk.dof_map
    coef = np.stack([np.sin(angles), 1.0 - np.cos(angles)], axis=-1)[:, :, None]
    rodrigues = np.stack([fk._skews, fk._skews2], axis=1)  # (45, 2, 9)
    expected = (coef @ rodrigues + np.eye(3).reshape(9)).reshape(6, -1, 3, 3, 3)
    local, elementary = fk.bio_to_rotmats(bio)
    np.testing.assert_allclose(elementary, expected, atol=1e-15, rtol=0)
    np.testing.assert_allclose(local, expected[:, :, 0] @ expected[:, :, 1] @ expected[:, :, 2],
                               atol=1e-15, rtol=0)  # fmt: skip
