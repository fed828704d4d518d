"""Camera views around the upright hand (seed 002 "AngRender") and hand placement.

The *hand world* frame W is the ``hand_root`` frame of :mod:`hand_ik.frames`
(x radial, y wrist -> fingers, z out of the palm) centred on the palm: an
upright hand has its fingers along +y. A view puts the camera on the sphere
around the hand at azimuth ``az`` about +y (0 = in front of the palm, on +z)
and elevation ``el`` (+pi/2 = above the fingertips, -pi/3 = below the wrist,
looking up), looking at the palm centre, image "up" toward +y, then rolled by
``roll`` about the viewing ray.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hand_ik.frames import INDEX_MCP, LITTLE_MCP, MIDDLE_MCP, WRIST
from hand_ik.keypoints import PALM_KEYPOINTS

#: Seed 002 AngRender ranges and step (radians).
ELEVATION_RANGE = (-math.pi / 3, math.pi / 2)
AZIMUTH_RANGE = (0.0, 2 * math.pi)
VIEW_STEP = math.pi / 36


@dataclass(frozen=True)
class View:
    """A camera direction around the hand, radians."""

    azimuth: float
    elevation: float
    roll: float = 0.0


def sample_view(rng: np.random.Generator, jitter: bool = True, roll_std: float = 0.5) -> View:
    """A view on seed 002's grid (31 elevations x 72 azimuths, step pi/36).

    Args:
        rng: random generator.
        jitter: add a uniform offset within one grid step (continuous views).
        roll_std: std of the roll about the viewing ray, radians (0 = upright image).
    """
    n_el = round((ELEVATION_RANGE[1] - ELEVATION_RANGE[0]) / VIEW_STEP) + 1
    n_az = round((AZIMUTH_RANGE[1] - AZIMUTH_RANGE[0]) / VIEW_STEP)
    el = ELEVATION_RANGE[0] + VIEW_STEP * rng.integers(n_el)
    az = AZIMUTH_RANGE[0] + VIEW_STEP * rng.integers(n_az)
    if jitter:
        el = float(np.clip(el + rng.uniform(-0.5, 0.5) * VIEW_STEP, *ELEVATION_RANGE))
        az = float(az + rng.uniform(-0.5, 0.5) * VIEW_STEP) % (2 * math.pi)
    roll = float(rng.normal(0.0, roll_std)) if roll_std > 0 else 0.0
    return View(float(az), float(el), roll)


def hand_root_frame_np(joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NumPy twin of :func:`hand_ik.frames.hand_root_frame` for one hand.

    Args:
        joints: (21, 3) keypoints, metres.

    Returns:
        rotation (3, 3) with the hand axes as columns, origin (3,) the wrist.
    """
    origin = joints[WRIST]
    y = joints[MIDDLE_MCP] - origin
    y = y / max(np.linalg.norm(y), 1e-9)  # degenerate palms: avoid dividing by zero
    x = joints[INDEX_MCP] - joints[LITTLE_MCP]
    x = x - x.dot(y) * y
    x = x / max(np.linalg.norm(x), 1e-9)
    return np.stack([x, y, np.cross(x, y)], axis=1), origin


def view_rotation(view: View) -> np.ndarray:
    """Rotation ``R_CW`` (3, 3) taking hand-world vectors to the camera optical frame.

    The camera looks along its +z at the hand-world origin from the direction
    given by ``view``; image up is the projection of +y (the fingers).
    """
    ce, se = math.cos(view.elevation), math.sin(view.elevation)
    cam_pos = np.array([ce * math.sin(view.azimuth), se, ce * math.cos(view.azimuth)])
    z = -cam_pos
    up = np.array([0.0, 1.0, 0.0])
    if abs(se) > 0.999:  # looking along the fingers: any horizontal 'up' will do
        up = np.array([-math.sin(view.azimuth), 0.0, -math.cos(view.azimuth)]) * np.sign(se)
    y = -(up - up.dot(z) * z)
    y /= np.linalg.norm(y)
    x = np.cross(y, z)
    R_WC = np.stack([x, y, z], axis=1)
    c, s = math.cos(view.roll), math.sin(view.roll)
    roll = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return roll @ R_WC.T


def ray_rotation(direction: np.ndarray) -> np.ndarray:
    """Smallest rotation (3, 3) taking the optical axis +z to ``direction``."""
    d = direction / np.linalg.norm(direction)
    z = np.array([0.0, 0.0, 1.0])
    axis = np.cross(z, d)
    s, c = np.linalg.norm(axis), float(z.dot(d))
    if s < 1e-12:
        return np.eye(3)
    k = axis / s
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + s * kx + (1 - c) * (kx @ kx)


def hand_to_camera(
    joints_model: np.ndarray, view: View, centre_cam: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rigid transform placing a posed hand (model frame) in the camera frame.

    The palm centre goes to ``centre_cam`` and the hand is seen as from ``view``
    along the ray through ``centre_cam`` (so off-centre hands keep their view).

    Args:
        joints_model: (21, 3) posed keypoints, model frame.
        view: camera direction around the hand.
        centre_cam: (3,) palm centre in the camera frame, metres (z > 0).

    Returns:
        R (3, 3) and t (3,) with ``p_cam = R @ p_model + t``.
    """
    R0, _ = hand_root_frame_np(joints_model)
    centre_model = joints_model[list(PALM_KEYPOINTS)].mean(0)
    R = ray_rotation(centre_cam) @ view_rotation(view) @ R0.T
    return R, centre_cam - R @ centre_model


def project(K: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Pinhole projection (N, 3) camera frame -> (N, 2) pixels (OpenCV convention)."""
    p = points @ K.T
    # Points at or behind the camera plane have no image: keep the division finite.
    return p[:, :2] / np.maximum(p[:, 2:3], 1e-9)


def crop_intrinsics(K: np.ndarray, box_xyxy: np.ndarray, size: int) -> np.ndarray:
    """Intrinsics of a square crop ``box_xyxy`` (pixels of K's image) resampled to ``size``."""
    x0, y0, x1, _ = box_xyxy
    s = size / (x1 - x0)
    A = np.array([[s, 0.0, -s * x0], [0.0, s, -s * y0], [0.0, 0.0, 1.0]])
    return A @ K
