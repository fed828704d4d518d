"""Camera back-projection, root depth from a bone, and full decoding round trips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hand_pose_ros.estimation import estimator_config
from hand_pose_ros.estimation.camera import backproject, project, root_depth_from_bone
from hand_pose_ros.estimation.lixel import depth_to_lixel, input_pixels_to_lixel
from hand_pose_ros.estimation.prepost import postprocess

K = np.array([[480.0, 0.0, 100.3], [0.0, 470.0, 95.7], [0.0, 0.0, 1.0]])


def _hand(rng: np.random.Generator, root_depth: float = 0.45) -> np.ndarray:
    """(21, 3) points around a wrist at ``root_depth`` (a loose hand-sized cloud)."""
    pts = rng.uniform(-0.08, 0.08, (21, 3))
    pts[0] = 0.0
    pts[:, 2] = np.clip(pts[:, 2], -0.1, 0.1)
    return pts + np.array([0.02, -0.01, root_depth])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backproject_project_round_trip(dtype):
    rng = np.random.default_rng(0)
    pts = _hand(rng).astype(dtype)
    uv = project(pts, K)
    back = backproject(uv, pts[:, 2], K)
    np.testing.assert_allclose(back, pts, atol=1e-6 if dtype == np.float64 else 1e-5)
    # the principal point back-projects onto the optical axis
    np.testing.assert_allclose(backproject(K[:2, 2], np.array(2.0), K), [0, 0, 2.0])


def test_bad_intrinsics_raise():
    with pytest.raises(ValueError, match="K"):
        backproject(np.zeros((1, 2)), np.ones(1), np.eye(2))


@pytest.mark.parametrize("seed", range(5))
def test_root_depth_from_bone_recovers_the_depth(seed):
    rng = np.random.default_rng(seed)
    depth = rng.uniform(0.3, 1.0)
    pts = _hand(rng, depth)
    uv = project(pts, K)
    rel = pts[:, 2] - pts[0, 2]
    length = float(np.linalg.norm(pts[9] - pts[0]))
    assert root_depth_from_bone(uv, rel, K, (0, 9), length) == pytest.approx(pts[0, 2], rel=1e-9)


def test_root_depth_degenerate_bone_raises():
    uv = np.zeros((21, 2)) + 50.0
    with pytest.raises(ValueError, match="bone"):
        root_depth_from_bone(uv, np.zeros(21), K)


@pytest.mark.parametrize("name", ["cpu_effb0_w05_128", "lite_effb0_dwse"])
def test_decoding_round_trip_through_a_resized_crop(name):
    """Known 3D joints -> crop pixels -> lixel targets -> postprocess -> the same 3D joints."""
    cfg = estimator_config(name)
    rng = np.random.default_rng(3)
    crop_hw = (200, 180)  # not the model size: exercises the crop <-> model scaling
    k = np.array([[300.0, 0, 90.0], [0, 310.0, 100.0], [0, 0, 1]])
    pts = _hand(rng, 0.5)
    uv = project(pts, k)
    # crop pixels -> model-input pixels -> lixel
    scale = np.array([cfg.input_size / crop_hw[1], cfg.input_size / crop_hw[0]])
    uv_model = (uv + 0.5) * scale - 0.5
    lixel_xy = input_pixels_to_lixel(torch.from_numpy(uv_model), cfg.input_size, cfg.bins)
    lixel_z = depth_to_lixel(torch.from_numpy(pts[:, 2] - pts[0, 2]), cfg.bins, cfg.depth_range_m)
    lixel = torch.cat((lixel_xy, lixel_z[:, None]), 1).numpy()
    conf = np.full(21, 0.7)
    obs = postprocess(lixel, lixel, conf, crop_hw, k, cfg, root_depth=0.5)
    np.testing.assert_allclose(obs.joints_cam, pts, atol=1e-9)
    np.testing.assert_allclose(obs.uv, uv, atol=1e-9)
    assert obs.score == pytest.approx(0.7)
    length = float(np.linalg.norm(pts[9] - pts[0]))
    est = postprocess(lixel, lixel, conf, crop_hw, k, cfg, bone=(0, 9), bone_length=length)
    assert est.root_depth_source == "bone_length"
    np.testing.assert_allclose(est.joints_cam, pts, atol=1e-9)


def test_collapsed_prediction_uses_the_fallback_depth():
    cfg = estimator_config("cpu_effb0_w05_128")
    lixel = np.full((21, 3), 15.5)
    obs = postprocess(lixel, lixel, np.zeros(21), (128, 128), K, cfg)
    assert obs.root_depth_source == "fallback" and np.isfinite(obs.joints_cam).all()
