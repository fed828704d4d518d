"""2D overlays on RGB images: the 21-keypoint hand skeleton and text labels (OpenCV).

Both functions draw in place on an ``(H, W, 3)`` uint8 RGB image and return it, so
calls chain. Keypoint order and bones come from ``hand_ik.keypoints``.
"""

from __future__ import annotations

import cv2
import numpy as np

from hand_ik.keypoints import FINGER_KEYPOINTS, FINGER_NAMES, NUM_KEYPOINTS, SKELETON_EDGES
from hand_pose_ros.viz.colours import (
    FINGER_COLOURS_RGB,
    LABEL_BOX_RGB,
    LABEL_TEXT_RGB,
    PALM_RGB,
)

_SHIFT = 4  # fractional bits for sub-pixel OpenCV drawing
_ONE = 1 << _SHIFT

#: Finger index (0 thumb .. 4 little) of every keypoint; the wrist has none (-1).
_FINGER_OF_KEYPOINT: tuple[int, ...] = tuple(
    next((f for f, name in enumerate(FINGER_NAMES) if k in FINGER_KEYPOINTS[name]), -1)
    for k in range(NUM_KEYPOINTS)
)


def check_rgb_image(image: np.ndarray, name: str = "image") -> None:
    """Raise ``ValueError`` unless ``image`` is a writable, C-contiguous (H, W, 3) uint8 array."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", type(image).__name__)
        raise ValueError(f"{name} must be an (H, W, 3) RGB array, got {shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8, got {image.dtype}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {image.shape}")
    if not (image.flags.c_contiguous and image.flags.writeable):
        raise ValueError(f"{name} must be C-contiguous and writable to draw on it in place")


def draw_hand_keypoints(
    image: np.ndarray,
    uv: np.ndarray,
    confidence: np.ndarray | None = None,
    handedness: str = "right",
    min_confidence: float = 0.2,
    thickness: int | None = None,
) -> np.ndarray:
    """Draw the 21-keypoint hand skeleton, one colour per finger.

    Bones whose two keypoints are finite and at least ``min_confidence`` are drawn,
    then the keypoints (wrist grey, fingertips larger) and an ``R`` / ``L`` tag next
    to the wrist. Points outside the image are clipped by OpenCV.

    Args:
        image: (H, W, 3) uint8 RGB, drawn on in place.
        uv: (21, 2) pixel coordinates (u right, v down), FreiHAND / MediaPipe order.
        confidence: (21,) per-keypoint confidence in [0, 1], or None (all drawn).
        handedness: ``"right"`` or ``"left"``: the tag drawn next to the wrist.
        min_confidence: keypoints below this confidence are not drawn.
        thickness: bone thickness in pixels; None: ~1/240 of the shorter image side.

    Returns:
        ``image``, for chaining.

    Raises:
        ValueError: wrong image type/shape, ``uv`` not (21, 2), ``confidence`` not (21,),
            or an unknown ``handedness``.
    """
    check_rgb_image(image)
    uv = np.asarray(uv, dtype=np.float64)
    if uv.shape != (NUM_KEYPOINTS, 2):
        raise ValueError(f"uv must have shape ({NUM_KEYPOINTS}, 2), got {uv.shape}")
    if handedness not in ("right", "left"):
        raise ValueError(f"handedness must be 'right' or 'left', got {handedness!r}")
    visible = _visible_keypoints(uv, confidence, min_confidence)
    pts = _fixed_point_pixels(uv, image.shape)
    if thickness is None:
        thickness = max(1, round(min(image.shape[:2]) / 240))
    radius = max(2, thickness + 1)
    _draw_skeleton(image, pts, visible, thickness, radius)
    if visible[0]:
        _draw_side_tag(image, pts[0], radius, handedness)
    return image


def _visible_keypoints(uv: np.ndarray, confidence, min_confidence: float) -> np.ndarray:
    """(21,) bool: keypoints to draw (finite, and confident enough when ``confidence`` is given)."""
    if confidence is None:
        visible = np.ones(NUM_KEYPOINTS, dtype=bool)
    else:
        confidence = np.asarray(confidence, dtype=np.float64)
        if confidence.shape != (NUM_KEYPOINTS,):
            raise ValueError(
                f"confidence must have shape ({NUM_KEYPOINTS},), got {confidence.shape}"
            )
        visible = confidence >= min_confidence
    # NaN / inf keypoints (a failed estimate) are skipped, never cast to int.
    visible &= np.isfinite(uv).all(axis=1)
    return visible


def _fixed_point_pixels(uv: np.ndarray, shape: tuple[int, ...]) -> list[tuple[int, int]]:
    """``uv`` (pixels) as OpenCV fixed-point (``_SHIFT`` fractional bits) int tuples."""
    # OpenCV draws with int32 coordinates: clamp far-away points so they cannot overflow.
    limit = 4.0 * max(shape[:2])
    fixed = np.round(np.clip(np.nan_to_num(uv), -limit, limit) * _ONE).astype(int)
    return [tuple(p) for p in fixed.tolist()]


def _draw_skeleton(image: np.ndarray, pts: list, visible: np.ndarray, thickness: int,
                   radius: int) -> None:  # fmt: skip
    """Bones (one colour per finger) between visible keypoints, then the keypoints (wrist
    grey, fingertips one pixel larger); ``pts`` fixed-point, sizes in pixels."""
    for a, b in SKELETON_EDGES:
        if visible[a] and visible[b]:
            colour = FINGER_COLOURS_RGB[_FINGER_OF_KEYPOINT[b]]
            cv2.line(image, pts[a], pts[b], colour, thickness, cv2.LINE_AA, _SHIFT)
    tips = {FINGER_KEYPOINTS[name][-1] for name in FINGER_NAMES}
    for k in np.flatnonzero(visible):
        finger = _FINGER_OF_KEYPOINT[k]
        colour = PALM_RGB if finger < 0 else FINGER_COLOURS_RGB[finger]
        r = radius + 1 if k in tips else radius
        cv2.circle(image, pts[k], r * _ONE, colour, -1, cv2.LINE_AA, _SHIFT)
        cv2.circle(image, pts[k], r * _ONE, (20, 20, 20), 1, cv2.LINE_AA, _SHIFT)


def _draw_side_tag(image: np.ndarray, wrist: tuple[int, int], radius: int,
                   handedness: str) -> None:  # fmt: skip
    """The ``R`` / ``L`` tag below right of the wrist (``wrist`` fixed-point)."""
    scale = max(0.4, min(image.shape[:2]) / 900)
    org = ((wrist[0] >> _SHIFT) + 2 * radius, (wrist[1] >> _SHIFT) + 4 * radius)
    tag = "R" if handedness == "right" else "L"
    cv2.putText(image, tag, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, tag, org, cv2.FONT_HERSHEY_SIMPLEX, scale, PALM_RGB, 1, cv2.LINE_AA)


def put_label(
    image: np.ndarray,
    text: str,
    origin: tuple[int, int] = (8, 8),
    scale: float | None = None,
) -> np.ndarray:
    """Write ``text`` (one or more lines) on a dark box at ``origin`` (top-left corner).

    Args:
        image: (H, W, 3) uint8 RGB, drawn on in place.
        text: label; ``\\n`` starts a new line.
        origin: (x, y) pixel of the box's top-left corner.
        scale: OpenCV font scale; None: ~1/800 of the shorter image side (at least 0.4).

    Returns:
        ``image``, for chaining.
    """
    check_rgb_image(image)
    if scale is None:
        scale = max(0.4, min(image.shape[:2]) / 800)
    font, weight = cv2.FONT_HERSHEY_SIMPLEX, 1 if scale < 0.8 else 2
    pad = max(2, round(6 * scale))
    x, y = int(origin[0]), int(origin[1])
    for line in text.split("\n"):
        (w, h), base = cv2.getTextSize(line, font, scale, weight)
        x1, y1 = x + w + 2 * pad, y + h + base + 2 * pad
        cv2.rectangle(image, (x, y), (x1, y1), LABEL_BOX_RGB, -1)
        cv2.putText(image, line, (x + pad, y + pad + h), font, scale, LABEL_TEXT_RGB, weight,
                    cv2.LINE_AA)  # fmt: skip
        y = y1
    return image
