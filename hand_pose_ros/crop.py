"""The crop step: hand regions of a full frame warped to a network's square input, the
warp back to frame pixels, and left hands mirrored into the right-hand form of a
right-hand network (and back).

A crop is made by a scale-and-shift ``p_input = p_frame * scale + pad`` (pixels, centres
at integers): a letterbox of the whole frame, or a square region of interest (tracking)
resized to ``S`` (pixels outside the frame are grey ``PAD_VALUE``). The rotated crops of
the hand tracking graph are :mod:`hand_pose_ros.handtrack.rois`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import cv2
import numpy as np

from hand_pose_ros.estimation.observation import HandObservation

#: Grey of the padding outside the frame (uint8, every channel).
PAD_VALUE = 114
#: Smallest region of interest side, frame pixels.
MIN_ROI_SIDE = 16.0


@dataclass(frozen=True)
class InputWarp:
    """``p_input = p_frame * scale + pad`` (pixels)."""

    scale: float
    pad: tuple[float, float]

    def to_frame(self, points: np.ndarray) -> np.ndarray:
        """(..., 2) input pixels -> frame pixels."""
        return (np.asarray(points, np.float64) - np.asarray(self.pad)) / self.scale

    def matrix(self) -> np.ndarray:
        """(3, 3) homogeneous frame -> input map (``A @ K`` is the input image's intrinsics)."""
        s, (px, py) = self.scale, self.pad
        return np.array([[s, 0.0, px], [0.0, s, py], [0.0, 0.0, 1.0]])

    def box_to_frame(self, boxes: np.ndarray) -> np.ndarray:
        """(..., 4) xyxy input pixels -> frame pixels."""
        b = np.asarray(boxes, np.float64)
        return np.concatenate([self.to_frame(b[..., :2]), self.to_frame(b[..., 2:])], -1)


def letterbox_input(image: np.ndarray, size: int) -> tuple[np.ndarray, InputWarp]:
    """Whole frame, aspect kept, centred on grey: (size, size, 3) uint8 and its warp."""
    out, scale, pad = letterbox(image, size)
    return out, InputWarp(float(scale), (float(pad[0]), float(pad[1])))


def roi_input(image: np.ndarray, roi: np.ndarray, size: int) -> tuple[np.ndarray, InputWarp]:
    """Square region ``roi`` (xyxy frame pixels, may leave the frame) resized to ``size``
    (grey outside the frame). One warp of the ROI alone: ``data.warp_image`` would first
    area-resize the whole frame, about 10 ms more per tracked hand on 1280x720 video."""
    x0, y0, x1, y1 = (float(v) for v in roi)
    if not np.all(np.isfinite(roi)):
        raise ValueError(f"roi: finite xyxy expected, got {roi}")
    side = max(x1 - x0, y1 - y0, MIN_ROI_SIDE)  # a collapsed track still gets a usable view
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    scale = size / side
    warp = InputWarp(scale, (size / 2 - cx * scale, size / 2 - cy * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    out = cv2.warpAffine(image, warp.matrix()[:2], (size, size), flags=interp,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=(PAD_VALUE,) * 3)  # fmt: skip
    return out, warp


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, float, tuple[float, float]]:
    """Resize ``image`` (H, W, 3) into a grey (``PAD_VALUE``) square keeping its aspect.

    INTER_AREA when shrinking, INTER_LINEAR otherwise; the image is centred.

    Returns:
        out: (size, size, 3) uint8. scale: input pixels per frame pixel.
        pad: (px, py) input pixels, such that frame point ``p`` -> ``p * scale + pad``
        (pixel centres at integers; includes the resize's half-pixel offset).
    """
    h, w = image.shape[:2]
    scale = size / max(h, w)
    if scale == 1.0:
        resized = image
    else:  # fx = fy = scale exactly: cv2 maps source u to u * scale + (scale - 1) / 2
        interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
        resized = cv2.resize(image, (0, 0), fx=scale, fy=scale, interpolation=interp)
    nh, nw = min(size, resized.shape[0]), min(size, resized.shape[1])
    left, top = (size - nw) // 2, (size - nh) // 2
    out = np.full((size, size, 3), PAD_VALUE, np.uint8)
    out[top : top + nh, left : left + nw] = resized[:nh, :nw]
    half = 0.5 * (scale - 1.0)
    return out, float(scale), (float(left + half), float(top + half))


def unletterbox_points(points: np.ndarray, scale: float, pad: tuple[float, float]) -> np.ndarray:
    """Inverse of the letterbox map: input pixels (..., 2) -> frame pixels (..., 2)."""
    p = np.asarray(points, np.float64)
    return (p - np.asarray(pad, np.float64)) / scale


def crop_intrinsics(K: np.ndarray, warp: InputWarp) -> np.ndarray:
    """Intrinsics of a crop made by ``p_crop = p_frame * scale + pad``."""
    return warp.matrix() @ np.asarray(K, np.float64)


def mirror_crop(image: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Horizontally flipped crop and its intrinsics: the view of the x -> -x mirrored scene."""
    k = np.array(K, np.float64)
    k[0, 2] = image.shape[1] - 1 - k[0, 2]
    k[0, 1] = -k[0, 1]  # zero for ordinary cameras; keeps the identity exact otherwise
    return np.ascontiguousarray(image[:, ::-1]), k


def unmirror_observation(obs: HandObservation, width: int) -> HandObservation:
    """An observation made on the mirrored crop (:func:`mirror_crop`) of a crop ``width``
    pixels wide, back in the unmirrored crop and camera (x -> -x, u -> W - 1 - u)."""
    joints, verts, uv = obs.joints_cam.copy(), obs.verts_cam.copy(), obs.uv.copy()
    joints[:, 0] *= -1.0
    verts[:, 0] *= -1.0
    uv[:, 0] = width - 1 - uv[:, 0]
    return replace(obs, joints_cam=joints, verts_cam=verts, uv=uv)


def estimate_right_canonical(estimate: Callable, crop: np.ndarray, K: np.ndarray,
                             left: bool) -> HandObservation:  # fmt: skip
    """``estimate(crop, K) -> HandObservation`` of a right-hand network on a hand crop
    (H, W, 3) with intrinsics K (3, 3): a ``left`` hand is mirrored in and the answer
    mirrored back, so the result is always in the given crop's own frame."""
    if not left:
        return estimate(crop, K)
    return unmirror_observation(estimate(*mirror_crop(crop, K)), crop.shape[1])
