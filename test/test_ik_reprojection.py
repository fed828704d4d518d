"""The post-optimization's reprojection term: its closed-form Jacobian against finite
differences, and the IK on synthetic frames with a known camera (accurate 2D, noisy 3D)."""

from __future__ import annotations

import numpy as np
import pytest
from _finite_differences import central_differences

from hand_ik.biomech import bio_kinematics_for
from hand_ik.hand_model import load_hand_model
from hand_ik.ik.evaluate import synthetic_eval_set
from hand_ik.ik.fast_kinematics import FastKeypointKinematics
from hand_ik.ik.post_opt import PostOptConfig
from hand_ik.ik.post_opt_objective import PostOptProblem, reprojection_residuals
from hand_ik.ik.solver import IKSolver, image_evidence
from hand_ik.ik.weights import DEFAULT_WEIGHTS
from hand_ik.pose_sampler import PoseSampler

#: A 640 x 480 camera (pixels).
K = np.array([[600.0, 0.0, 320.0], [0.0, 610.0, 240.0], [0.0, 0.0, 1.0]])
needs_weights = pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(),
                                   reason="shipped IK weights not built yet")  # fmt: skip


@pytest.fixture(scope="module")
def model():
    return load_hand_model("open")


def _project(points: np.ndarray, camera: np.ndarray = K) -> np.ndarray:
    q = points @ camera.T
    return q[..., :2] / q[..., 2:]


def _in_view(joints: np.ndarray, depth: float = 0.45) -> np.ndarray:
    """Synthetic hands moved in front of the camera: wrist at (x, y) +-5 cm, z = depth."""
    rng = np.random.default_rng(3)
    shift = np.concatenate([rng.uniform(-0.05, 0.05, (len(joints), 2)),
                            np.full((len(joints), 1), depth)], axis=1)  # fmt: skip
    return joints - joints[:, :1] + shift[:, None]


def test_reprojection_residual_jacobian_matches_finite_differences():
    rng = np.random.default_rng(0)
    points = rng.normal(0, 0.05, (3, 21, 3)) + np.array([0.0, 0.0, 0.5])
    camera = np.stack([K, K * np.array([-1.0, 1.0, 1.0]), K])  # the second one mirrored
    target = _project(points[0]) + rng.normal(0, 15.0, (3, 21, 2))  # inliers and outliers
    weights = rng.uniform(0.0, 1.0, (3, 21))
    weights[0, 3] = 0.0
    scale = np.array([150.0, 120.0, 90.0])

    def fn(flat):
        return reprojection_residuals(flat.reshape(3, 21, 3), camera, target, weights, scale,
                                      0.05)[0]  # fmt: skip

    res, jac = reprojection_residuals(points, camera, target, weights, scale, 0.05, True)
    n2 = (((_project(points[:1]) - target[:1]) / 150.0) ** 2).sum(-1)
    assert (n2 > 0.05**2).any() and (n2 < 0.05**2).any()  # both Huber branches are tested
    fd = central_differences(lambda f: fn(f).reshape(-1), points.reshape(1, -1))[0]
    dense = np.zeros((3 * 21 * 2, 3 * 21 * 3))
    for b in range(3):
        for k in range(21):
            row, col = (b * 21 + k) * 2, (b * 21 + k) * 3
            dense[row : row + 2, col : col + 3] = jac[b, k]
    np.testing.assert_allclose(dense, fd, atol=1e-6, rtol=1e-5)
    assert not res[0, 3].any() and not jac[0, 3].any()  # weight 0: no residual, no gradient


@pytest.mark.parametrize("fix_betas", [False, True])
def test_post_opt_jacobian_with_reprojection_matches_finite_differences(model, fix_betas):
    fk = FastKeypointKinematics(model, bio_kinematics_for(model))
    es = synthetic_eval_set(model, 2, 1004, noise_m=0.003)
    gt = _in_view(es.gt_joints)
    rng = np.random.default_rng(5)
    bio = PoseSampler(5).sample_bio(2)
    betas = rng.normal(size=(2, 10))
    rotation = np.stack([np.eye(3), np.diag([1.0, -1.0, -1.0])])
    transl = np.array([[0.01, 0.0, 0.5], [-0.02, 0.01, 0.45]])
    uv = _project(gt) + rng.normal(0, 20.0, (2, 21, 2))
    conf = rng.uniform(0.2, 1.0, (2, 21))
    conf[1, 7] = 0.0
    problem = PostOptProblem(
        kinematics=fk, weights=PostOptConfig().objective_weights(), target=gt,
        joint_weights=np.ones((2, 21)), start=bio, betas=betas, fix_betas=fix_betas,
        lower=fk.lower, upper=fk.upper, image_points=uv, image_weights=conf,
        camera=np.stack([K, K]), image_scale=np.array([140.0, 160.0]),
    )  # fmt: skip
    x = problem.pack(bio, betas, rotation, transl)
    res, jac = problem.residuals(x, True)
    assert res.shape[1] == 63 + 42 + 4 + 23 + (0 if fix_betas else 10) + 23
    assert np.abs(res[:, 63:105]).max() > 1.0  # the 2D term is there
    steps = np.zeros((2, jac.shape[-1]))
    fd = central_differences(lambda s: problem.residuals(problem.retract(x, s), False)[0], steps)
    np.testing.assert_allclose(jac, fd, atol=2e-3, rtol=1e-5)


@pytest.fixture(scope="module")
def hands(model):
    """20 held-out synthetic hands (joints, metres), generated once."""
    return synthetic_eval_set(model, 20, 2024).gt_joints


def _frames(hands, n: int, seed: int, noise_3d_m: float, noise_2d_px: float):
    """(ground truth, noisy 3D input, accurate 2D input) of n synthetic hands in view."""
    gt = _in_view(hands[np.random.default_rng(seed).permutation(len(hands))[:n]])
    rng = np.random.default_rng(seed + 1)
    noisy = gt + rng.normal(0, noise_3d_m, gt.shape)
    noisy[..., 2] += rng.normal(0, 2 * noise_3d_m, gt.shape[:2])  # depth is the weak axis
    uv = _project(gt) + rng.normal(0, noise_2d_px, (*gt.shape[:2], 2))
    return gt, noisy, uv


def _error_px(joints: np.ndarray, gt: np.ndarray) -> float:
    return float(np.sqrt(((_project(joints) - _project(gt)) ** 2).sum(-1)).mean())


@needs_weights
def test_reprojection_keeps_the_image_accuracy(model, hands):
    gt, noisy, uv = _frames(hands, 12, 2024, noise_3d_m=0.006, noise_2d_px=1.0)
    solver = IKSolver(model)
    plain = solver.solve(noisy, with_vertices=False)
    image = solver.solve(noisy, with_vertices=False, image_points=uv, K=K)
    assert plain.valid.all() and image.valid.all()
    size = np.linalg.norm(_project(gt).max(1) - _project(gt).min(1), axis=-1)[:, None]

    def pck(uv_pred, threshold):  # of the hand's image size
        return float((np.linalg.norm(uv_pred - _project(gt), axis=-1) / size < threshold).mean())

    # Not worse than the 2D input at the threshold (0.10 of the hand's size; the
    # input: 1.0); at 0.05 a few model-fit outliers remain (measured 0.992 vs 1.0).
    assert pck(_project(image.joints), 0.10) >= pck(uv, 0.10)
    assert pck(_project(image.joints), 0.05) >= 0.98
    # The 2D term cuts the 2D error by more than 3x.
    assert _error_px(image.joints, gt) < 0.35 * _error_px(plain.joints, gt)
    assert pck(_project(plain.joints), 0.03) < 0.8
    # 3D stays as good: mean joint error within 10 % of the 3D-only fit's.
    err3d = lambda s: float(np.sqrt(((s.joints - gt) ** 2).sum(-1)).mean())  # noqa: E731
    assert err3d(image) <= 1.1 * err3d(plain)


@needs_weights
def test_reprojection_with_an_estimated_mesh(model):
    """Vertices (the mesh term) and the 2D term together: both blocks of rows are filled
    (their rows used to overlap and fail), and the 2D term still pulls toward the image."""
    es = synthetic_eval_set(model, 3, 2031)
    gt = _in_view(es.gt_joints)
    verts = es.gt_vertices - es.gt_joints[:, :1] + gt[:, :1]  # the same shift
    rng = np.random.default_rng(4)
    noisy = gt + rng.normal(0, 0.006, gt.shape)
    uv = _project(gt) + rng.normal(0, 0.5, (*gt.shape[:2], 2))
    solver = IKSolver(model)
    plain = solver.solve(noisy, vertices=verts, with_vertices=False)
    image = solver.solve(noisy, vertices=verts, with_vertices=False, image_points=uv, K=K)
    assert plain.valid.all() and image.valid.all()
    assert np.isfinite(image.joints).all()
    assert _error_px(image.joints, gt) < _error_px(plain.joints, gt)


@needs_weights
def test_left_hand_mirrors_the_projection(model, hands):
    """A left hand (the mirror image of a right one, solved mirrored) projects like it."""
    gt, noisy, uv = _frames(hands, 4, 77, noise_3d_m=0.006, noise_2d_px=0.5)
    mirror = np.array([-1.0, 1.0, 1.0])
    # The left hand's scene: x -> -x in 3D; its image: u -> 2 cx - u (K's principal point).
    uv_left = uv.copy()
    uv_left[..., 0] = 2 * K[0, 2] - uv[..., 0]
    solver = IKSolver(model)
    right = solver.solve(noisy, with_vertices=False, image_points=uv, K=K)
    left = solver.solve(noisy * mirror, with_vertices=False, image_points=uv_left, K=K,
                        handedness="left")  # fmt: skip
    np.testing.assert_allclose(left.joints * mirror, right.joints, atol=1e-9)
    plain = solver.solve(noisy * mirror, with_vertices=False, handedness="left")
    assert _error_px(left.joints, gt * mirror) < _error_px(plain.joints, gt * mirror)


@needs_weights
def test_missing_and_nan_image_points_drop_out(model, hands):
    _, noisy, uv = _frames(hands, 1, 91, noise_3d_m=0.006, noise_2d_px=0.5)
    solver = IKSolver(model)
    conf = np.ones((1, 21))
    bad = uv.copy()
    bad[0, 8] = np.nan  # missing
    bad[0, 12] = 1e4  # garbage, but confidence 0
    conf[0, 12] = 0.0
    clean_conf = conf.copy()
    clean_conf[0, 8] = 0.0
    a = solver.solve(noisy, with_vertices=False, image_points=bad, confidence=conf, K=K)
    b = solver.solve(noisy, with_vertices=False, image_points=uv, confidence=clean_conf, K=K)
    assert a.valid.all() and np.isfinite(a.joints).all()
    np.testing.assert_allclose(a.joints, b.joints, atol=1e-12)
    # All 2D missing (or no K, or weight 0): the 3D-only fit.
    plain = solver.solve(noisy, with_vertices=False)
    for kwargs in ({"image_points": np.full((21, 2), np.nan), "K": K},
                   {"image_points": uv[0]}, {"image_points": uv, "K": np.full((3, 3), np.nan)}):
        other = solver.solve(noisy, with_vertices=False, **kwargs)
        np.testing.assert_allclose(other.joints, plain.joints, atol=1e-12)
    # 3D keypoints missing (NaN) with their 2D there: still finite and valid.
    holes = noisy.copy()
    holes[0, [4, 16]] = np.nan
    c = solver.solve(holes, with_vertices=False, image_points=uv, K=K)
    assert c.valid.all() and np.isfinite(c.joints).all()


@needs_weights
def test_invalid_rows_are_unchanged_by_image_evidence(model, hands):
    _, noisy, uv = _frames(hands, 2, 5, noise_3d_m=0.004, noise_2d_px=0.5)
    noisy[1, :6] = np.nan  # no palm: invalid
    solver = IKSolver(model)
    plain = solver.solve(noisy, with_vertices=False)
    image = solver.solve(noisy, with_vertices=False, image_points=uv, K=K)
    assert list(image.valid) == [True, False]
    for name in ("joints", "bio", "betas", "transl", "global_orient", "fit_error"):
        np.testing.assert_array_equal(getattr(image, name)[1], getattr(plain, name)[1])


def test_image_evidence_checks_shapes_and_mirrors_left_hands():
    uv = np.tile(np.linspace(0, 100, 21)[:, None], (1, 2))
    right = image_evidence(uv, None, K, 1)
    left = image_evidence(uv, None, K, 1, "left")
    np.testing.assert_allclose(left.camera[0][:, 0], -K[:, 0])
    np.testing.assert_allclose(left.camera[0][:, 1:], K[:, 1:])
    assert right.scale[0] == pytest.approx(100 * 2**0.5)
    few = uv.copy()
    few[3:] = np.nan
    assert not image_evidence(few, None, K, 1).weights.any()  # under 4 keypoints
    with pytest.raises(ValueError, match="image_points"):
        image_evidence(uv, None, np.eye(4), 1)


def test_config_validates_reprojection_fields():
    with pytest.raises(ValueError, match="reprojection_weight"):
        PostOptConfig(reprojection_weight=-1.0)
    with pytest.raises(ValueError, match="reprojection_huber"):
        PostOptConfig(reprojection_huber=0.0)


@needs_weights
def test_ik_stage_maps_3d_keypoints_by_the_convention_and_fits_2d_as_given(hands):
    """IKStage with the mediapipe convention: the 3D keypoints go through the convention,
    the 2D ones into the 2D term unchanged (the landmark networks' 2D sit closer to our
    model's keypoints unmoved: docs/keypoint_conventions.md)."""
    from hand_ik import load_hand_model
    from hand_ik.ik.solver import IKSolver
    from hand_pose_ros.pipeline.stages import IKStage, IKStageConfig

    gt, noisy, uv = _frames(hands, 1, 13, noise_3d_m=0.006, noise_2d_px=0.5)
    stage = IKStage(IKStageConfig(keypoint_convention="mediapipe"))
    noisy_source = stage.convention.from_ours(noisy[0])  # the scene in the source's convention
    image = stage.solve(noisy_source, with_vertices=False, image_points=uv[0], K=K)
    solver = IKSolver(load_hand_model("open"))
    direct = solver.solve(stage.convention.to_ours(noisy_source)[None], image_points=uv[0],
                          K=K, with_vertices=False)  # fmt: skip
    np.testing.assert_allclose(image.joints, direct.joints, atol=1e-9)
    stage.reset()
    plain = stage.solve(noisy_source, with_vertices=False)
    assert plain.valid[0] and image.valid[0]
    assert _error_px(image.joints, gt) < 0.75 * _error_px(plain.joints, gt)
    stage.reset()
    no_k = stage.solve(noisy_source, with_vertices=False, image_points=uv[0])
    np.testing.assert_allclose(no_k.joints, plain.joints, atol=1e-12)


@needs_weights
def test_ik_node_fits_the_image_keypoints_once_camera_info_comes(rclpy_context, hands):
    from conftest import spin_until
    from hand_pose_ros.msg import HandKeypoints, HandState
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import CameraInfo

    from hand_pose_ros.nodes.conversions import keypoints_to_msg
    from hand_pose_ros.nodes.ik_node import IKNode
    from hand_pose_ros.nodes.image_conversion import camera_info_msg
    from hand_pose_ros.nodes.qos import IMAGE_QOS, RESULT_PUB_QOS, RESULT_SUB_QOS
    from hand_pose_ros.params import load_node_parameters

    _, noisy, uv = _frames(hands, 1, 17, noise_3d_m=0.006, noise_2d_px=0.5)
    ctx = rclpy_context
    params = load_node_parameters()["ik_node"]
    params["keypoint_convention"] = "ours"
    node = IKNode(context=ctx, parameter_overrides=[Parameter(k, value=v)
                                                    for k, v in params.items()])  # fmt: skip
    assert node.stage.config.post_opt.reprojection_weight == PostOptConfig().reprojection_weight
    talker = Node("keypoint_talker", context=ctx)
    pub = talker.create_publisher(HandKeypoints, "/hand/keypoints", RESULT_PUB_QOS)
    info_pub = talker.create_publisher(CameraInfo, "/camera/camera_info", IMAGE_QOS)
    states = []
    talker.create_subscription(HandState, "/hand/state", states.append, RESULT_SUB_QOS)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    executor.add_node(talker)
    calls = []
    solve = node.stage.solve
    node.stage.solve = lambda *a, **k: calls.append(k) or solve(*a, **k)

    def send() -> None:
        stamp = talker.get_clock().now().to_msg()
        pub.publish(keypoints_to_msg(noisy[0], stamp=stamp, frame_id="cam", image_points=uv[0],
                                     confidence=np.full(21, 0.9)))  # fmt: skip
        before = len(states)
        spin_until(executor, 5.0, until=lambda: len(states) > before)

    try:
        send()  # no camera_info yet: 3D only
        assert calls[-1]["K"] is None and len(states) == 1
        info_pub.publish(camera_info_msg(K, 640, 480, stamp=talker.get_clock().now().to_msg(),
                                         frame_id="cam"))  # fmt: skip
        spin_until(executor, 5.0, until=lambda: node.K is not None)
        np.testing.assert_allclose(node.K, K)
        node.stage.reset()
        send()
        assert len(states) == 2
        np.testing.assert_allclose(calls[-1]["image_points"], uv[0])
        np.testing.assert_allclose(calls[-1]["confidence"], 0.9)
        assert calls[-1]["K"] is node.K
    finally:
        executor.shutdown()
        node.destroy_node()
        talker.destroy_node()


@needs_weights
def test_image_keypoints_keep_the_shape_in_the_model_range(model, hands):
    """An image estimator's 3D is noisy: with 2D evidence the post-opt's shape prior is
    ``image_shape_prior_weight``, and the fitted shape stays a hand of the model's (unit
    normal) shape space instead of bending far outside it to follow the noise."""
    gt, noisy, uv = _frames(hands, 10, 11, noise_3d_m=0.008, noise_2d_px=1.0)
    shape = lambda s: float(np.median(np.linalg.norm(s.betas, axis=1)))  # noqa: E731
    image = IKSolver(model).solve(noisy, with_vertices=False, image_points=uv, K=K)
    weak = IKSolver(model, post_opt=PostOptConfig(image_shape_prior_weight=0.1)).solve(
        noisy, with_vertices=False, image_points=uv, K=K)
    assert image.valid.all() and weak.valid.all()
    assert shape(image) < 4.0 < shape(weak)  # measured 1.0 and 30.4
    err = lambda s: float(np.sqrt(((s.joints - gt) ** 2).sum(-1)).mean())  # noqa: E731
    assert err(image) < err(weak)  # and closer to the truth (5.1 against 6.3 mm)
    # The switch is the only difference: no reprojection term, but 2D evidence given, is
    # the 3D-only fit at the image prior.
    no_2d = PostOptConfig(reprojection_weight=0.0)
    a = IKSolver(model, post_opt=no_2d).solve(noisy, with_vertices=False, image_points=uv, K=K)
    b = IKSolver(model, post_opt=PostOptConfig(shape_prior_weight=no_2d.image_shape_prior_weight)
                 ).solve(noisy, with_vertices=False)  # fmt: skip
    np.testing.assert_allclose(a.betas, b.betas, atol=1e-12)
    np.testing.assert_allclose(a.joints, b.joints, atol=1e-12)
    # Without 2D evidence the 3D prior is unchanged.
    c = IKSolver(model, post_opt=PostOptConfig(image_shape_prior_weight=1e6)).solve(
        noisy, with_vertices=False)
    d = IKSolver(model).solve(noisy, with_vertices=False)
    np.testing.assert_allclose(c.betas, d.betas, atol=1e-12)
    with pytest.raises(ValueError, match="image_shape_prior_weight"):
        PostOptConfig(image_shape_prior_weight=-1.0)
