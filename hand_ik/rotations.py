"""Rotation conversions in numpy (float64), named as roma names its torch ones.

The torch hand model uses ``roma.rotvec_to_rotmat`` / ``roma.rotmat_to_rotvec``; the
per-frame numpy code (post-optimization, fast kinematics) uses these twins.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation


def skew(v: np.ndarray) -> np.ndarray:
    """(..., 3) -> (..., 3, 3) cross-product matrices: ``skew(a) @ b == a x b``."""
    out = np.zeros((*v.shape[:-1], 3, 3))
    out[..., 0, 1], out[..., 0, 2] = -v[..., 2], v[..., 1]
    out[..., 1, 0], out[..., 1, 2] = v[..., 2], -v[..., 0]
    out[..., 2, 0], out[..., 2, 1] = -v[..., 1], v[..., 0]
    return out


def axis_angle_to_rotmat(axes: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Rodrigues: unit axes (..., 3), angles (...) radians -> rotations (..., 3, 3)."""
    k = skew(axes)
    s, c = np.sin(angles)[..., None, None], np.cos(angles)[..., None, None]
    return np.eye(3) + s * k + (1 - c) * (k @ k)


def rotvec_to_rotmat(rotvec: np.ndarray) -> np.ndarray:
    """(3,) axis-angle, radians -> (3, 3) rotation matrix.

    Below 1e-12 rad the axis is undefined (0/0): the first-order form ``I + skew(v)``
    is used instead, exact to machine precision there.
    """
    angle = float(np.linalg.norm(rotvec))
    if angle < 1e-12:
        return np.eye(3) + skew(rotvec)
    return axis_angle_to_rotmat(rotvec / angle, np.array(angle))


def rotmat_to_rotvec(rotmat: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 3) axis-angle in [0, pi] radians.

    Via the quaternion (scipy), stable near 0 and pi.
    """
    return Rotation.from_matrix(rotmat).as_rotvec()


def rotvec_left_jacobian(rotvec: np.ndarray) -> np.ndarray:
    """(3,) axis-angle -> (3, 3) left Jacobian ``J_l`` of SO(3).

    ``exp(rotvec + d) = exp(J_l d) exp(rotvec)`` to first order in d: it converts a
    gradient with respect to a rotation applied on the left into one with respect to
    the rotation vector (``g_rotvec = J_l^T g_left``).
    """
    angle = float(np.linalg.norm(rotvec))
    k = skew(rotvec)
    if angle < 1e-6:
        # The exact coefficients are 0/0 here; their series to second order instead.
        return np.eye(3) + 0.5 * k + (k @ k) / 6.0
    a = (1.0 - np.cos(angle)) / angle**2
    b = (angle - np.sin(angle)) / angle**3
    return np.eye(3) + a * k + b * (k @ k)
