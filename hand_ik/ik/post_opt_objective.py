"""The post-optimization objective (seed 002 Fig. 6B, eq. 3): one frame's residuals.

Residuals, in this order (keypoints in millimetres so one millimetre costs about 1):

- weighted keypoint error ``1e3 * w_k * (keypoint_k - target_k)`` (missing: w_k = 0);
- optionally the mean vertex error against an estimated mesh;
- eq. 3: opposite bend directions at PIP and DIP of the four long fingers;
- joint-limit violation, shape prior (when the shape is estimated), the pull toward
  the previous frame's DoF (tracking) and toward the starting DoF (the IK net's).

The kinematics (``FastKeypointKinematics`` in closed form, or ``TorchPointKinematics``
by autodiff) give the model's points and their Jacobians; the terms above are written
once, here, in numpy. The unknowns are packed as ``x = [bio (23), betas (K, unless
known), global rotation (9, row-major matrix), translation (3)]``; a step is ``[d bio,
d betas, rotation vector (3, applied on the left), d translation]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hand_ik.ik.fast_kinematics import cross
from hand_ik.keypoints import FINGER_KEYPOINTS
from hand_ik.rotations import rotvec_to_rotmat

#: (mcp, pip, dip, tip) keypoints of the four long fingers, for the bend penalty.
LONG_FINGER_CHAINS = np.array([FINGER_KEYPOINTS[f] for f in ("index", "middle", "ring",
                                                             "little")])  # fmt: skip
#: Keypoint coordinates the bend penalty reads (for its finite-difference Jacobian).
_BEND_COORDS = np.array([3 * k + a for k in LONG_FINGER_CHAINS.reshape(-1).tolist()
                         for a in range(3)])  # fmt: skip
#: Central-difference step of the bend penalty's Jacobian, metres.
_BEND_FD_STEP = 1e-7


def bend_penalty(keypoints: np.ndarray) -> np.ndarray:
    """Eq. 3 violation per long finger: ``relu(-(B_td x B_dp) . (B_dp x B_pm))``.

    Args:
        keypoints: (..., 21, 3), any frame and unit.

    Returns:
        (..., 4) >= 0; zero where PIP and DIP bend the same way (or a bone is straight).
    """
    chain = keypoints[..., LONG_FINGER_CHAINS, :]  # (..., 4, 4, 3)
    bones = chain[..., 1:, :] - chain[..., :-1, :]  # pip-mcp, dip-pip, tip-dip
    # Unit bones make the penalty scale-free; clamp to avoid NaN for zero-length bones.
    bones = bones / np.maximum(np.linalg.norm(bones, axis=-1, keepdims=True), 1e-9)
    b_pm, b_dp, b_td = bones[..., 0, :], bones[..., 1, :], bones[..., 2, :]
    dot = (cross(b_td, b_dp) * cross(b_dp, b_pm)).sum(-1)
    return np.maximum(-dot, 0.0)


def bend_penalty_jacobian(keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Penalty (4,) and its derivative (4, 63) w.r.t. the flattened (21, 3) keypoints.

    Central differences over the 48 coordinates the penalty reads.
    """
    flat = keypoints.reshape(-1)
    n = len(_BEND_COORDS)
    plus = np.tile(flat, (n, 1))
    minus = plus.copy()
    plus[np.arange(n), _BEND_COORDS] += _BEND_FD_STEP
    minus[np.arange(n), _BEND_COORDS] -= _BEND_FD_STEP
    diff = bend_penalty(plus.reshape(n, 21, 3)) - bend_penalty(minus.reshape(n, 21, 3))
    jac = np.zeros((4, 63))
    jac[:, _BEND_COORDS] = (diff / (2 * _BEND_FD_STEP)).T
    return bend_penalty(keypoints), jac


@dataclass
class PostOptWeights:
    """Square roots of the objective's weights (see ``PostOptConfig``); 0 disables a term."""

    vertex: float
    bend: float
    limit: float
    shape_prior: float
    temporal: float
    start: float


@dataclass
class PostOptProblem:
    """One frame's objective. Arrays float64; see the module docstring for the layout.

    Attributes:
        kinematics: ``forward(betas, bio, rotation, transl, jacobians) -> (points, jac)``.
        weights: the objective's weights.
        target: (21, 3) estimated keypoints, metres (missing ones may hold anything).
        joint_weights: (21,) in [0, 1]; 0 for missing keypoints.
        start: (23,) the starting DoF (the pull toward it).
        betas: (K,) the shape: known (``fix_betas``), else only its size matters.
        fix_betas: keep ``betas``; otherwise the shape is estimated (part of x).
        lower, upper: (23,) joint limits, radians.
        previous: (23,) the previous frame's DoF, or None (no temporal term).
        target_vertices: (V, 3) estimated mesh, metres, or None (no vertex term).
    """

    kinematics: object
    weights: PostOptWeights
    target: np.ndarray
    joint_weights: np.ndarray
    start: np.ndarray
    betas: np.ndarray
    fix_betas: bool
    lower: np.ndarray
    upper: np.ndarray
    previous: np.ndarray | None = None
    target_vertices: np.ndarray | None = None

    def __post_init__(self) -> None:
        self._kp_scale = np.repeat(1e3 * self.joint_weights, 3)
        self._num_betas = 0 if self.fix_betas else len(self.betas)

    # --- packing ---------------------------------------------------------------------
    def pack(self, bio: np.ndarray, betas: np.ndarray, rotation: np.ndarray,
             transl: np.ndarray) -> np.ndarray:  # fmt: skip
        """(23,), (K,), (3, 3), (3,) -> x (betas left out when known)."""
        parts = [bio] + ([] if self.fix_betas else [betas])
        return np.concatenate([*parts, rotation.reshape(-1), transl])

    def unpack(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """x -> bio (23,), betas (K,), rotation (3, 3), translation (3,)."""
        nb = self._num_betas
        betas = self.betas if self.fix_betas else x[23 : 23 + nb]
        return x[:23], betas, x[23 + nb : 32 + nb].reshape(3, 3), x[32 + nb :]

    def retract(self, x: np.ndarray, step: np.ndarray) -> np.ndarray:
        """Apply a step: additive except the rotation, rotated on the left."""
        nb = self._num_betas
        out = x.copy()
        out[: 23 + nb] += step[: 23 + nb]
        rotation = x[23 + nb : 32 + nb].reshape(3, 3)
        out[23 + nb : 32 + nb] = (rotvec_to_rotmat(step[23 + nb : 26 + nb]) @ rotation).reshape(-1)
        out[32 + nb :] += step[26 + nb :]
        return out

    # --- objective -------------------------------------------------------------------
    def residuals(self, x: np.ndarray, jacobian: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Residuals (R,) and, with ``jacobian``, d residuals / d step (R, S)."""
        w = self.weights
        bio, betas, rotation, transl = self.unpack(x)
        points, jac = self.kinematics.forward(betas, bio, rotation, transl, jacobians=jacobian)
        keypoints = points[:21]
        use_vertices = self.target_vertices is not None and w.vertex > 0
        vertex_scale = 0.0
        parts = [self._kp_scale * (keypoints - self.target).reshape(-1)]
        if use_vertices:
            vertex_scale = 1e3 * w.vertex / len(self.target_vertices) ** 0.5
            parts.append(vertex_scale * (points[21:] - self.target_vertices).reshape(-1))
        if jacobian:
            penalty, d_penalty = bend_penalty_jacobian(keypoints)
        else:
            penalty, d_penalty = bend_penalty(keypoints), None
        parts.append(w.bend * penalty)
        below, above = bio < self.lower, bio > self.upper
        parts.append(w.limit * np.where(below, self.lower - bio,
                                        np.where(above, bio - self.upper, 0.0)))  # fmt: skip
        if not self.fix_betas:
            parts.append(w.shape_prior * betas)
        use_temporal = self.previous is not None and w.temporal > 0
        if use_temporal:
            parts.append(w.temporal * (bio - self.previous))
        if w.start > 0:
            parts.append(w.start * (bio - self.start))
        res = np.concatenate(parts)
        if not jacobian:
            return res, None
        shape_cols = [] if self.fix_betas else [jac["betas"]]
        cols = [jac["bio"], *shape_cols, jac["rot"], jac["transl"]]
        j_points = np.concatenate(cols, axis=1)  # (3M, S)
        j_kp = j_points[:63]
        n_step = j_points.shape[1]
        rows = [self._kp_scale[:, None] * j_kp]
        if use_vertices:
            rows.append(vertex_scale * j_points[63:])
        rows.append(w.bend * (d_penalty @ j_kp))
        j_limit = np.zeros((23, n_step))
        j_limit[np.arange(23), np.arange(23)] = w.limit * np.where(below, -1.0,
                                                                   np.where(above, 1.0, 0.0))
        rows.append(j_limit)
        if not self.fix_betas:
            j_beta = np.zeros((self._num_betas, n_step))
            j_beta[:, 23 : 23 + self._num_betas] = w.shape_prior * np.eye(self._num_betas)
            rows.append(j_beta)
        for weight, used in ((w.temporal, use_temporal), (w.start, w.start > 0)):
            if used:
                j_pull = np.zeros((23, n_step))
                j_pull[:, :23] = weight * np.eye(23)
                rows.append(j_pull)
        return res, np.concatenate(rows)
