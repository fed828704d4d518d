"""Crop pixels + root-relative depth -> camera-frame metres (numpy, camera optical frame).

Root depth: the network predicts depth only relative to the root (wrist, keypoint 0).
The absolute root depth is either *given* (e.g. from a depth camera or a tracker) or
*estimated* by :func:`root_depth_from_bone`, which finds the depth at which one bone of
known length (default wrist -> middle MCP) has that length after back-projection.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

#: Default reference bone (keypoint indices, FreiHAND order): wrist -> middle MCP.
REFERENCE_BONE: tuple[int, int] = (0, 9)
#: Default length of that bone, metres (an adult hand; pass the hand model's own length).
REFERENCE_BONE_LENGTH_M = 0.095


def _check_k(k: np.ndarray) -> np.ndarray:
    k = np.asarray(k, dtype=np.float64)
    if k.shape != (3, 3) or k[0, 0] <= 0 or k[1, 1] <= 0:
        raise ValueError(f"K: expected a (3, 3) intrinsics matrix with fx, fy > 0, got {k}")
    return k


def backproject(uv: np.ndarray, depth: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Pixels and depths -> camera-frame points.

    Args:
        uv: (..., 2) pixel coordinates (pixel centres at integers) in the image ``k`` belongs to.
        depth: (...,) camera z, metres.
        k: (3, 3) intrinsics (fx, fy, cx, cy; skew ignored).

    Returns:
        (..., 3) points in the camera optical frame, metres.
    """
    k = _check_k(k)
    x = (uv[..., 0] - k[0, 2]) / k[0, 0] * depth
    y = (uv[..., 1] - k[1, 2]) / k[1, 1] * depth
    return np.stack((x, y, depth), axis=-1)


def project(points: np.ndarray, k: np.ndarray) -> np.ndarray:
    """(..., 3) camera-frame points (z > 0) -> (..., 2) pixels."""
    k = _check_k(k)
    z = points[..., 2]
    return np.stack(
        (points[..., 0] / z * k[0, 0] + k[0, 2], points[..., 1] / z * k[1, 1] + k[1, 2]), axis=-1
    )


def root_depth_from_bone(
    uv: np.ndarray,
    rel_depth: np.ndarray,
    k: np.ndarray,
    bone: tuple[int, int] = REFERENCE_BONE,
    length: float = REFERENCE_BONE_LENGTH_M,
) -> float:
    """Root depth Z at which the back-projected ``bone`` is ``length`` metres long.

    With ``a_i = ((u_i - cx) / fx, (v_i - cy) / fy)``, point i is
    ``(a_i (Z + dz_i), Z + dz_i)``; the squared bone length is a quadratic in Z whose
    larger root is returned (the hand is in front of the camera). When no real root
    exists (the bone looks too long in depth), the Z minimising the length error is
    returned and a warning logged.

    Args:
        uv: (J, 2) keypoint pixels in the image of ``k``.
        rel_depth: (J,) depth relative to the root, metres.
        k: (3, 3) intrinsics.
        bone: (i, j) keypoint indices.
        length: bone length, metres.

    Returns:
        Root depth, metres (> 0).
    """
    k = _check_k(k)
    i, j = bone
    a = np.stack(((uv[:, 0] - k[0, 2]) / k[0, 0], (uv[:, 1] - k[1, 2]) / k[1, 1]), axis=-1)
    p = a[j] - a[i]  # coefficient of Z in the x, y difference
    q = a[j] * rel_depth[j] - a[i] * rel_depth[i]
    dz = rel_depth[j] - rel_depth[i]
    qa, qb, qc = p @ p, 2.0 * (p @ q), q @ q + dz**2 - length**2
    if qa < 1e-12:  # bone along the viewing ray: its image length carries no scale
        raise ValueError("bone: the reference bone projects to a point; cannot recover depth")
    disc = qb * qb - 4.0 * qa * qc
    if disc < 0:
        log.warning("root depth: bone %s cannot reach %.3f m; using the closest fit", bone, length)
        z = -qb / (2.0 * qa)
    else:
        z = (-qb + np.sqrt(disc)) / (2.0 * qa)
    if z <= 0:
        raise ValueError(f"root depth: no positive solution (got {z:.3f} m)")
    return float(z)
