"""Rotated hand regions of interest: from a palm, from landmarks, and the crop warps.

A :class:`RotatedRect` lives in full-frame pixels: centre, size and a rotation (radians,
image y down) that turns the hand upright (wrist below, fingers up) in the crop. The
landmark network sees the rect resampled to its square input; a crop pixel ``c`` and a
frame pixel ``p`` are related by ``p = centre + R(rotation) ((c / S - 0.5) * size)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

from hand_pose_ros.handtrack.palm_decode import PALM_MIDDLE_MCP, PALM_WRIST, Palm

#: Landmarks that outline the palm for the next frame's ROI (wrist, thumb base, and the
#: two lowest joints of each finger); fingertips move too fast to anchor a crop.
ROI_LANDMARKS = (0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18)
#: Landmarks whose directions from the wrist orient the ROI (index, middle, ring MCP).
INDEX_MCP, MIDDLE_MCP, RING_MCP = 5, 9, 13


@dataclass(frozen=True)
class RotatedRect:
    """A rotated rectangle in frame pixels."""

    cx: float
    cy: float
    width: float
    height: float
    rotation: float
    """Radians; the crop's +x axis is the frame direction (cos r, sin r)."""

    def corners(self) -> np.ndarray:
        """(4, 2) frame pixels, clockwise from the crop's top-left."""
        local = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])
        return local * [self.width, self.height] @ _rot(self.rotation).T + [self.cx, self.cy]

    def is_valid(self) -> bool:
        return bool(np.isfinite([self.cx, self.cy, self.width, self.height, self.rotation]).all()
                    and self.width > 1.0 and self.height > 1.0)  # fmt: skip


def _rot(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s], [s, c]])


def normalize_radians(angle: float) -> float:
    """Angle wrapped to [-pi, pi)."""
    return angle - 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))


def upright_rotation(base: np.ndarray, tip: np.ndarray) -> float:
    """Rotation that turns the frame direction ``base -> tip`` into crop "up" (-y)."""
    return normalize_radians(math.pi / 2 - math.atan2(-(tip[1] - base[1]), tip[0] - base[0]))


def transform_rect(rect: RotatedRect, scale: float, shift_x: float = 0.0,
                   shift_y: float = 0.0, square_long: bool = True) -> RotatedRect:  # fmt: skip
    """Shift (in units of the rect's size, along its own axes), make square on its longer
    side, then scale."""
    dx, dy = _rot(rect.rotation) @ [rect.width * shift_x, rect.height * shift_y]
    w, h = rect.width, rect.height
    if square_long:
        w = h = max(w, h)
    return replace(rect, cx=rect.cx + dx, cy=rect.cy + dy, width=w * scale, height=h * scale)


def rect_from_palm(palm: Palm, scale: float = 2.6, shift_y: float = -0.5) -> RotatedRect:
    """Hand ROI from a palm in frame pixels: the palm box, turned so that wrist -> middle
    finger base points up, moved half a box toward the fingers and enlarged to hold the
    whole hand."""
    x0, y0, x1, y1 = palm.box
    rotation = upright_rotation(palm.keypoints[PALM_WRIST], palm.keypoints[PALM_MIDDLE_MCP])
    rect = RotatedRect((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0, rotation)
    return transform_rect(rect, scale, 0.0, shift_y)


def rect_from_landmarks(uv: np.ndarray, scale: float = 2.0, shift_y: float = -0.1) -> RotatedRect:
    """Next frame's hand ROI from this frame's 21 landmarks (frame pixels): oriented by
    the wrist and the finger bases, fitted around the palm's landmarks in that orientation."""
    uv = np.asarray(uv, np.float64)
    towards = 0.5 * (0.5 * (uv[INDEX_MCP] + uv[RING_MCP]) + uv[MIDDLE_MCP])
    rotation = upright_rotation(uv[0], towards)
    pts = uv[list(ROI_LANDMARKS)]
    centre = 0.5 * (pts.min(0) + pts.max(0))
    local = (pts - centre) @ _rot(rotation)  # into the rect's axes (R^T applied per row)
    lo, hi = local.min(0), local.max(0)
    mid = centre + _rot(rotation) @ (0.5 * (lo + hi))
    size = hi - lo
    return transform_rect(RotatedRect(mid[0], mid[1], size[0], size[1], rotation), scale,
                          0.0, shift_y)  # fmt: skip


def crop_matrix(rect: RotatedRect, size: int) -> np.ndarray:
    """(2, 3) affine map frame pixels -> crop pixels of a ``size`` x ``size`` crop."""
    r = _rot(rect.rotation).T  # frame -> rect axes
    scale = np.array([size / rect.width, size / rect.height])
    a = scale[:, None] * r
    b = size / 2 - a @ [rect.cx, rect.cy]
    return np.concatenate([a, b[:, None]], 1)


def crop_rect(rgb: np.ndarray, rect: RotatedRect, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``size`` x ``size`` crop of ``rect`` (black outside the frame) and its (2, 3) frame ->
    crop matrix."""
    m = crop_matrix(rect, size)
    crop = cv2.warpAffine(rgb, m, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))  # fmt: skip
    return crop, m


def crop_to_frame(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """(..., 2) crop pixels -> frame pixels through the inverse of a :func:`crop_matrix`."""
    inv = cv2.invertAffineTransform(np.asarray(matrix, np.float64))
    pts = np.asarray(points, np.float64)
    return pts @ inv[:, :2].T + inv[:, 2]


def letterbox(rgb: np.ndarray, size: int) -> tuple[np.ndarray, float, np.ndarray]:
    """Whole frame into ``size`` x ``size``, aspect kept, centred on black.

    Returns:
        (size, size, 3) image, scale (input px per frame px) and (2,) pad: ``p_input =
        p_frame * scale + pad``.
    """
    h, w = rgb.shape[:2]
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    small = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)
    out = np.zeros((size, size, 3), np.uint8)
    px, py = (size - nw) // 2, (size - nh) // 2
    out[py:py + nh, px:px + nw] = small
    return out, scale, np.array([px, py], np.float64)
