"""Our two-stage image estimator: crop intrinsics and the detector -> crop -> mesh plumbing."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")


def test_crop_intrinsics_match_the_warp():
    from hand_pose_ros.detection.postprocess import roi_input
    from hand_pose_ros.pipeline.two_stage import crop_intrinsics

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
    from hand_pose_ros.estimation.runtime.estimator import MeshEstimator
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
