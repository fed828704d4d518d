"""Pre- and post-processing shared by every backend (numpy, outside the exported graph).

The exported network maps a normalised image to lixel coordinates; everything else
(resize, normalisation, lixel -> pixels -> metres) happens here, identically for torch,
ONNX Runtime and TensorRT.
"""

from __future__ import annotations

import logging

import numpy as np

from hand_pose_ros.estimation.camera import (
    REFERENCE_BONE,
    REFERENCE_BONE_LENGTH_M,
    backproject,
    root_depth_from_bone,
)
from hand_pose_ros.estimation.config import EstimatorConfig
from hand_pose_ros.estimation.observation import HandObservation

log = logging.getLogger(__name__)

#: Root depth used when it can be neither given nor estimated, metres.
FALLBACK_ROOT_DEPTH_M = 0.5

#: ImageNet normalisation (torchvision), RGB.
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def preprocess(crops: list[np.ndarray] | np.ndarray, input_size: int) -> np.ndarray:
    """RGB uint8 crops (H, W, 3) -> (B, 3, S, S) float32 ImageNet-normalised batch.

    Crops of another size are resized (bilinear) to S x S.
    """
    import cv2

    out = np.empty((len(crops), 3, input_size, input_size), dtype=np.float32)
    for b, crop in enumerate(crops):
        crop = np.asarray(crop)
        if crop.ndim != 3 or crop.shape[2] != 3 or crop.dtype != np.uint8:
            raise ValueError(f"crop: expected (H, W, 3) uint8 RGB, got {crop.shape} {crop.dtype}")
        if crop.shape[:2] != (input_size, input_size):
            crop = cv2.resize(crop, (input_size, input_size), interpolation=cv2.INTER_LINEAR)
        img = (crop.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
        out[b] = img.transpose(2, 0, 1)
    return out


def lixel_to_crop(
    lixel: np.ndarray, crop_hw: tuple[int, int], cfg: EstimatorConfig
) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3) lixel coordinates -> (N, 2) crop pixels and (N,) root-relative depth, metres."""
    lixel = np.asarray(lixel, dtype=np.float64)
    s, d = cfg.input_size, cfg.bins
    uv_model = (lixel[:, :2] + 0.5) * (s / d) - 0.5  # model-input pixels
    scale = np.array([crop_hw[1] / s, crop_hw[0] / s])
    uv = (uv_model + 0.5) * scale - 0.5  # crop pixels (pixel centres at integers)
    depth = ((lixel[:, 2] + 0.5) / d * 2.0 - 1.0) * cfg.depth_range_m
    return uv, depth


def postprocess(
    joints: np.ndarray,
    vertices: np.ndarray,
    confidence: np.ndarray,
    crop_hw: tuple[int, int],
    crop_k: np.ndarray,
    cfg: EstimatorConfig,
    root_depth: float | None = None,
    bone: tuple[int, int] = REFERENCE_BONE,
    bone_length: float = REFERENCE_BONE_LENGTH_M,
    fallback_root_depth: float = FALLBACK_ROOT_DEPTH_M,
) -> HandObservation:
    """One sample's network outputs -> :class:`HandObservation` in the camera frame.

    Args:
        joints: (J, 3) lixel joints; vertices: (V, 3) lixel vertices; confidence: (J,).
        crop_hw: (H, W) of the crop given by the caller.
        crop_k: (3, 3) intrinsics of that crop.
        cfg: the estimator's config (input size, bins, depth range).
        root_depth: wrist depth in metres, or None to estimate it from ``bone``.
        bone, bone_length: reference bone for the estimate (see
            :func:`~hand_pose_ros.estimation.camera.root_depth_from_bone`).
        fallback_root_depth: used (``root_depth_source == "fallback"``, warning logged)
            when the estimate is impossible, e.g. a collapsed prediction.
    """
    uv, rel = lixel_to_crop(joints, crop_hw, cfg)
    v_uv, v_rel = lixel_to_crop(vertices, crop_hw, cfg)
    if root_depth is None:
        try:
            root_depth, source = (
                root_depth_from_bone(uv, rel, crop_k, bone, bone_length),
                "bone_length",
            )
        except ValueError as exc:  # degenerate prediction: keep the pipeline alive, flag it
            log.warning("root depth: %s; using the fallback %.2f m", exc, fallback_root_depth)
            root_depth, source = fallback_root_depth, "fallback"
    else:
        if not root_depth > 0:
            raise ValueError(f"root_depth: must be > 0 metres, got {root_depth}")
        source = "given"
    conf = np.asarray(confidence, dtype=np.float64)
    return HandObservation(
        joints_cam=backproject(uv, root_depth + rel, crop_k),
        verts_cam=backproject(v_uv, root_depth + v_rel, crop_k),
        uv=uv,
        joint_confidence=conf,
        score=float(conf.mean()),
        root_depth=float(root_depth),
        root_depth_source=source,
    )
