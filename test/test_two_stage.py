"""Our two-stage image estimator: crop intrinsics and the detector -> crop -> mesh plumbing."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")


def test_crop_intrinsics_match_the_warp():
    from hand_pose_ros.crop import crop_intrinsics, roi_input

    K = np.array([[600.0, 0.0, 320.0], [0.0, 610.0, 240.0], [0.0, 0.0, 1.0]])
    pts = np.random.default_rng(0).uniform([-0.2, -0.2, 0.4], [0.2, 0.2, 1.0], (20, 3))
    uv = pts @ K.T
    uv = uv[:, :2] / uv[:, 2:]
    _, warp = roi_input(np.zeros((480, 640, 3), np.uint8), np.array([200, 100, 400, 300]), 256)
    kc = crop_intrinsics(K, warp)
    uvc = pts @ kc.T
    np.testing.assert_allclose(uvc[:, :2] / uvc[:, 2:], uv * warp.scale + warp.pad, atol=1e-9)


def test_two_stage_estimator_runs_end_to_end(tmp_path):
    from hand_pose_ros.detection.runtime import HandDetector
    from hand_pose_ros.detection.tracker import TrackerConfig
    from hand_pose_ros.estimation.mesh_estimator import MeshEstimator
    from hand_pose_ros.pipeline.estimators import create_estimator
    from hand_pose_ros.pipeline.two_stage import DetectorMeshEstimator

    torch.set_num_threads(1)
    # Random-init networks with a zero score threshold: every frame yields "hands", so the
    # crop, mirror and back-projection path runs; accuracy is benched, not tested, here.
    det = HandDetector(weights=None, score_threshold=0.0)
    mesh = MeshEstimator("cpu_effb0_w05_128", weights=None)
    est = DetectorMeshEstimator(det, mesh, TrackerConfig(max_hands=2, min_detection_score=0.0,
                                                         min_tracking_score=0.0))  # fmt: skip
    K = np.array([[500.0, 0.0, 159.5], [0.0, 500.0, 119.5], [0.0, 0.0, 1.0]])
    frame = np.random.default_rng(1).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    for _ in range(3):
        hands = est(frame, K)
        assert 1 <= len(hands) <= 2
        for h in hands:
            assert h.camera_points.shape == (21, 3) and np.isfinite(h.camera_points).all()
            assert h.image_points.shape == (21, 2) and h.handedness in ("left", "right")
            # The 3D joints project onto the reported pixels (same camera, same hand).
            proj = h.camera_points @ K.T
            np.testing.assert_allclose(proj[:, :2] / proj[:, 2:], h.image_points, atol=0.5)
    with pytest.raises(ValueError, match="uint8"):
        est(frame.astype(np.float32), K)
    with pytest.raises(ValueError, match="unknown estimator"):
        create_estimator("nope")


@pytest.mark.parametrize("mirrored", [False, True])
def test_fixed_hand_side_keeps_the_best_hand_and_its_side(mirrored):
    """hand_side: one hand (the best-scoring), reported as the operator's physical side,
    and cropped as the side seen in the image (mirrored into right-hand form if left)."""
    from types import SimpleNamespace

    from hand_pose_ros.detection.tracker import TrackerConfig
    from hand_pose_ros.estimation.observation import HandObservation
    from hand_pose_ros.pipeline.two_stage import DetectorMeshEstimator

    def det(x0, score, left):
        kps = np.stack(np.meshgrid(np.linspace(x0, x0 + 40, 7), [60.0, 80.0, 100.0]), -1)
        kps = kps.reshape(-1, 2)
        return SimpleNamespace(box=np.array([x0, 60.0, x0 + 40, 100.0]), score=score,
                               cls=int(left), class_probs=np.array([1.0 - left, float(left)]),
                               keypoints=kps, kp_conf=np.ones(21))  # fmt: skip

    detector = SimpleNamespace(detect=lambda image, roi=None: [det(20.0, 0.6, 1),
                                                               det(200.0, 0.9, 1)])
    crops = []

    def estimate(crop, K):
        crops.append(crop.copy())
        joints = np.tile([0.0, 0.0, 0.5], (21, 1)) + np.linspace(0, 0.02, 21)[:, None]
        uv = joints @ K.T
        return HandObservation(joints, joints.copy(), uv[:, :2] / uv[:, 2:], np.ones(21), 1.0,
                               0.5, "given")  # fmt: skip

    mesh = SimpleNamespace(estimate=estimate)
    K = np.array([[300.0, 0.0, 159.5], [0.0, 300.0, 119.5], [0.0, 0.0, 1.0]])
    frame = np.random.default_rng(2).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    tracking = TrackerConfig(max_hands=2, min_detection_score=0.1, min_tracking_score=0.1)
    fixed = DetectorMeshEstimator(detector, mesh, tracking, mirrored_input=mirrored,
                                  hand_side="right")  # fmt: skip
    (hand,) = fixed(frame, K)
    assert hand.handedness == "right" and hand.score == pytest.approx(0.9)
    # The crop the mesh estimator got: the right hand seen unmirrored, or, in a mirrored
    # image, seen as a left hand and mirrored into right-hand form.
    from hand_pose_ros.crop import roi_input
    from hand_pose_ros.detection.tracker import roi_from_box

    roi = roi_from_box(det(200.0, 0.9, 1).box, fixed.crop_scale)
    expected, _ = roi_input(frame, roi, fixed.crop_size)
    np.testing.assert_array_equal(crops[-1], expected[:, ::-1] if mirrored else expected)
    auto = DetectorMeshEstimator(detector, mesh, tracking, mirrored_input=mirrored)
    hands = auto(frame, K)
    assert len(hands) == 2
    assert {h.handedness for h in hands} == {"right" if mirrored else "left"}
    with pytest.raises(ValueError, match="hand_side"):
        DetectorMeshEstimator(detector, mesh, tracking, hand_side="both")
