"""What every full-frame image estimator returns: one :class:`KeypointDetection` per hand.

Camera quantities are in the camera optical frame (x right, y down, z forward), metres;
image points in pixels of the full frame. Keypoints in the FreiHAND / MediaPipe order
(:mod:`hand_ik.keypoints`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: ``hand_side`` values of the image estimators: their own handedness (``auto``), or the
#: operator's hand (``right`` / ``left``: each frame's best hand, labelled that side).
HAND_SIDES: tuple[str, ...] = ("auto", "right", "left")
#: How a landmark network's world landmarks become camera points: ``translated``
#: (:func:`place_in_camera`) or then also ``image_rays`` (:func:`on_image_rays`).
CAMERA_POINTS: tuple[str, ...] = ("translated", "image_rays")


@dataclass
class KeypointDetection:
    """One hand in a camera frame.

    Attributes:
        camera_points: (21, 3) metres, camera optical frame.
        image_points: (21, 2) pixels of the full frame.
        handedness: ``"right"`` or ``"left"`` (the physical hand).
        score: hand confidence in [0, 1].
        track_id: stable id of the hand over frames (-1: the estimator does not track).
        confidence: (21,) per-keypoint confidence in [0, 1], or None (unknown).
        vertices: (V, 3) hand mesh vertices, metres, camera optical frame, or None (the
            estimator gives no mesh).
    """

    camera_points: np.ndarray
    image_points: np.ndarray
    handedness: str
    score: float
    track_id: int = -1
    confidence: np.ndarray | None = field(default=None)
    vertices: np.ndarray | None = field(default=None)


def place_in_camera(world: np.ndarray, uv: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Translate hand-centred metric points so their projection matches ``uv``.

    Solves ``(u - cx)(Z + tz) = fx (X + tx)`` and ``(v - cy)(Z + tz) = fy (Y + ty)`` for
    (tx, ty, tz) by least squares.

    Args:
        world: (21, 3) metres, axes aligned with the camera (x right, y down, z forward).
        uv: (21, 2) pixels.
        K: (3, 3) intrinsics.

    Returns:
        (21, 3) points in the camera frame.
    """
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    du, dv = uv[:, 0] - cx, uv[:, 1] - cy
    n = len(world)
    a = np.zeros((2 * n, 3))
    b = np.zeros(2 * n)
    a[:n, 0], a[:n, 2] = fx, -du
    b[:n] = du * world[:, 2] - fx * world[:, 0]
    a[n:, 1], a[n:, 2] = fy, -dv
    b[n:] = dv * world[:, 2] - fy * world[:, 1]
    t, *_ = np.linalg.lstsq(a, b, rcond=None)
    return world + t


def on_image_rays(points_cam: np.ndarray, uv: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Move each camera point onto its keypoint's pixel ray, keeping its depth.

    The 2D keypoints of a landmark network are its most accurate output (on real crops far
    more than its metric 3D); this keeps the 3D's depths and takes x, y from the rays, so
    the points project exactly onto ``uv``. A point at or behind the camera (depth <= 0)
    stays where it is.

    Args:
        points_cam: (N, 3) metres, camera optical frame (e.g. from :func:`place_in_camera`).
        uv: (N, 2) pixels.
        K: (3, 3) intrinsics.

    Returns:
        (N, 3) points in the camera frame.
    """
    out = np.array(points_cam, dtype=np.float64)
    z = out[:, 2]
    front = z > 0
    out[front, 0] = (uv[front, 0] - K[0, 2]) * z[front] / K[0, 0]
    out[front, 1] = (uv[front, 1] - K[1, 2]) * z[front] / K[1, 1]
    return out


def world_to_camera(world: np.ndarray, uv: np.ndarray, K: np.ndarray,
                    camera_points: str = "translated") -> np.ndarray:  # fmt: skip
    """A landmark network's world landmarks as camera points, the way ``camera_points``
    (one of :data:`CAMERA_POINTS`) says: :func:`place_in_camera`, then for ``image_rays``
    also :func:`on_image_rays`. Arguments as :func:`place_in_camera`."""
    if camera_points not in CAMERA_POINTS:
        raise ValueError(f"camera_points: one of {CAMERA_POINTS}, got {camera_points!r}")
    points = place_in_camera(world, uv, K)
    return on_image_rays(points, uv, K) if camera_points == "image_rays" else points
