"""Batched rotation conversions in numpy for the per-frame IK (private).

``hand_ik.rotations`` holds the one-rotation twins; these take a leading batch axis
and avoid scipy's per-call overhead (tens of microseconds, several times per frame).
"""

from __future__ import annotations

import math

import numpy as np

#: skew(v) as a linear map of v: ``(v @ SKEW).reshape(3, 3) == skew(v)``.
SKEW = np.zeros((3, 9))
for _i, _a, _c, _sign in ((2, 0, 1, -1), (1, 0, 2, 1), (2, 1, 0, 1), (0, 1, 2, -1),
                          (1, 2, 0, -1), (0, 2, 1, 1)):  # fmt: skip
    SKEW[_i, 3 * _a + _c] = _sign
_EYE3 = np.eye(3)


def rotvec_to_rotmat_batch(rotvec: np.ndarray) -> np.ndarray:
    """(B, 3) axis-angle, radians -> (B, 3, 3) rotation matrices (Rodrigues).

    Below 1e-12 rad the axis is undefined (0/0): ``sin(a)/a`` and ``(1 - cos a)/a^2`` take
    their limits 1 and 1/2 there, exact to machine precision.
    """
    angle = np.sqrt((rotvec * rotvec).sum(-1))[:, None, None]
    small = angle < 1e-12
    safe = np.where(small, 1.0, angle)
    s = np.where(small, 1.0, np.sin(safe) / safe)
    c = np.where(small, 0.5, (1.0 - np.cos(safe)) / (safe * safe))
    k = (rotvec @ SKEW).reshape(-1, 3, 3)
    return _EYE3 + s * k + c * (k @ k)


def rotvec_to_rotmat_one(rotvec: np.ndarray) -> np.ndarray:
    """(3,) axis-angle, radians -> (3, 3): :func:`rotvec_to_rotmat_batch` for one vector,
    in Python floats (a dozen numpy calls cost more than the arithmetic here)."""
    x, y, z = float(rotvec[0]), float(rotvec[1]), float(rotvec[2])
    angle2 = x * x + y * y + z * z
    if angle2 < 1e-24:  # below 1e-12 rad: the limits 1 and 1/2 (0/0 otherwise)
        s, c = 1.0, 0.5
    else:
        angle = math.sqrt(angle2)
        s, c = math.sin(angle) / angle, (1.0 - math.cos(angle)) / angle2
    # I + s K + c K^2 with K = skew(v), K^2 = v v^T - |v|^2 I.
    return np.array([
        [1.0 + c * (x * x - angle2), -s * z + c * x * y, s * y + c * x * z],
        [s * z + c * x * y, 1.0 + c * (y * y - angle2), -s * x + c * y * z],
        [-s * y + c * x * z, s * x + c * y * z, 1.0 + c * (z * z - angle2)],
    ])  # fmt: skip


def rotmat_to_rotvec_batch(rotmat: np.ndarray) -> np.ndarray:
    """(B, 3, 3) rotation matrices -> (B, 3) axis-angle in [0, pi] radians.

    Through the unit quaternion, built from the largest of its four components
    (Shepperd's method: stable at every angle, 0 and pi included), as scipy does.
    """
    if rotmat.shape == (1, 3, 3):  # the per-frame case
        return rotmat_to_rotvec_one(rotmat[0])[None]
    r = rotmat
    diag = np.einsum("bii->bi", r)
    trace = diag.sum(-1)
    # Four candidate quaternions (x, y, z, w), each accurate when its own term is largest.
    m01, m10 = r[:, 0, 1], r[:, 1, 0]
    m02, m20 = r[:, 0, 2], r[:, 2, 0]
    m12, m21 = r[:, 1, 2], r[:, 2, 1]
    cand = np.stack([
        np.stack([1.0 + 2.0 * diag[:, 0] - trace, m10 + m01, m20 + m02, m21 - m12], -1),
        np.stack([m01 + m10, 1.0 + 2.0 * diag[:, 1] - trace, m21 + m12, m02 - m20], -1),
        np.stack([m02 + m20, m12 + m21, 1.0 + 2.0 * diag[:, 2] - trace, m10 - m01], -1),
        np.stack([m21 - m12, m02 - m20, m10 - m01, 1.0 + trace], -1),
    ], axis=1)  # fmt: skip
    choice = np.argmax(np.concatenate([diag, trace[:, None]], axis=-1), axis=-1)
    quat = cand[np.arange(len(r)), choice]
    quat /= np.sqrt((quat * quat).sum(-1, keepdims=True))
    quat *= np.where(quat[:, 3:] < 0.0, -1.0, 1.0)  # w >= 0: the angle in [0, pi]
    xyz_norm = np.sqrt((quat[:, :3] ** 2).sum(-1))
    angle = 2.0 * np.arctan2(xyz_norm, quat[:, 3])
    # angle / sin(angle / 2), with its series near 0 (0/0 there).
    small = angle < 1e-3
    safe = np.where(small, 1.0, angle)
    scale = np.where(small, 2.0 + angle**2 / 12.0 + 7.0 * angle**4 / 2880.0,
                     safe / np.sin(safe / 2.0))  # fmt: skip
    return scale[:, None] * quat[:, :3]


def rotmat_to_rotvec_one(rotmat: np.ndarray) -> np.ndarray:
    """(3, 3) -> (3,): :func:`rotmat_to_rotvec_batch` for one matrix, in Python floats
    (the same quaternion candidates, choice and series)."""
    (m00, m01, m02), (m10, m11, m12), (m20, m21, m22) = rotmat.tolist()
    trace = m00 + m11 + m22
    largest = max(m00, m11, m22, trace)
    # The first largest of (m00, m11, m22, trace), as np.argmax picks it.
    if m00 == largest:
        q = (1.0 + 2.0 * m00 - trace, m10 + m01, m20 + m02, m21 - m12)
    elif m11 == largest:
        q = (m01 + m10, 1.0 + 2.0 * m11 - trace, m21 + m12, m02 - m20)
    elif m22 == largest:
        q = (m02 + m20, m12 + m21, 1.0 + 2.0 * m22 - trace, m10 - m01)
    else:
        q = (m21 - m12, m02 - m20, m10 - m01, 1.0 + trace)
    norm = math.sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3])
    if q[3] < 0.0:
        norm = -norm  # w >= 0: the angle in [0, pi]
    x, y, z, w = q[0] / norm, q[1] / norm, q[2] / norm, q[3] / norm
    angle = 2.0 * math.atan2(math.sqrt(x * x + y * y + z * z), w)
    if angle < 1e-3:  # angle / sin(angle / 2), with its series near 0 (0/0 there)
        scale = 2.0 + angle**2 / 12.0 + 7.0 * angle**4 / 2880.0
    else:
        scale = angle / math.sin(angle / 2.0)
    return np.array([scale * x, scale * y, scale * z])
