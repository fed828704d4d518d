"""The post-optimization objective (seed 002 Fig. 6B, eq. 3): residuals of a batch of frames.

Residuals per frame, in this order (keypoints in millimetres so one millimetre costs about 1):

- weighted keypoint error ``1e3 * w_k * (keypoint_k - target_k)`` (missing: w_k = 0);
- optionally the mean vertex error against an estimated mesh;
- optionally the reprojection error (:func:`reprojection_residuals`): the keypoints
  projected with the camera intrinsics against the estimator's 2D keypoints, in percent
  of the hand's image size, Huber-robust, per-keypoint confidence;
- eq. 3: opposite bend directions at PIP and DIP of the four long fingers;
- joint-limit violation, shape prior (when the shape is estimated), the pull toward
  the previous frame's DoF (tracking) and toward the starting DoF (the IK net's).

The kinematics (``FastKeypointKinematics`` in closed form, or ``TorchPointKinematics``
by autodiff) give the model's points and their Jacobians; the terms above are written
once, here, in numpy. The unknowns of a frame are packed as ``x = [bio (23), betas (K,
unless known), global rotation (9, row-major matrix), translation (3)]``; a step is
``[d bio, d betas, rotation vector (3, applied on the left), d translation]``. ``x`` is
(P,) for one frame or (B, P) for B independent frames (:func:`hand_ik.optim.least_squares`
solves both).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from hand_ik.ik._rotations_np import rotvec_to_rotmat_batch, rotvec_to_rotmat_one
from hand_ik.keypoints import FINGER_KEYPOINTS

#: (mcp, pip, dip, tip) keypoints of the four long fingers, for the bend penalty.
LONG_FINGER_CHAINS = np.array([FINGER_KEYPOINTS[f] for f in ("index", "middle", "ring",
                                                             "little")])  # fmt: skip
_CHAINS = LONG_FINGER_CHAINS.tolist()
#: Shortest bone (in the keypoints' unit) given a direction; shorter ones count as zero.
_MIN_BONE = 1e-9


def _unit_bones(keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit bones (..., 4, 3 bones, 3) pip-mcp, dip-pip, tip-dip and their lengths."""
    chain = keypoints[..., LONG_FINGER_CHAINS, :]  # (..., 4, 4, 3)
    bones = chain[..., 1:, :] - chain[..., :-1, :]
    # Clamp the length so zero-length bones give a zero direction, not NaN.
    length = np.maximum(np.sqrt((bones * bones).sum(-1))[..., None], _MIN_BONE)
    return bones / length, length


def _dots(unit: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """a.b, b.c, a.c of the unit bones a = B_td, b = B_dp, c = B_pm, each (..., 4)."""
    c, b, a = unit[..., 0, :], unit[..., 1, :], unit[..., 2, :]
    return (a * b).sum(-1), (b * c).sum(-1), (a * c).sum(-1)


def bend_penalty(keypoints: np.ndarray) -> np.ndarray:
    """Eq. 3 violation per long finger: ``relu(-(B_td x B_dp) . (B_dp x B_pm))``.

    Computed with ``(a x b).(b x c) = (a.b)(b.c) - (a.c)(b.b)`` (``b.b = 1`` for a unit bone).

    Args:
        keypoints: (..., 21, 3), any frame and unit.

    Returns:
        (..., 4) >= 0; zero where PIP and DIP bend the same way (or a bone is straight).
    """
    if keypoints.shape == (1, 21, 3):  # the per-frame case
        return _bend_penalty_one(keypoints[0].tolist())[None]
    unit, length = _unit_bones(keypoints)
    ab, bc, ac = _dots(unit)
    # b.b is 1, or 0 for a zero-length bone (its direction is then 0, as is the penalty).
    bb = (length[..., 1, 0] > _MIN_BONE).astype(float)
    return np.maximum(ac * bb - ab * bc, 0.0)


def _finger_one(points: list[list[float]], chain: list[int]):
    """One long finger's unit bones ``c = B_pm, b = B_dp, a = B_td`` (3-tuples), their
    lengths (clamped to ``_MIN_BONE``) and ``a.b, b.c, a.c, b.b`` in Python floats, from
    one hand's (21, 3) keypoints as lists (a dozen numpy calls cost more than this)."""
    units, lengths = [], []
    for k in range(3):
        p, q = points[chain[k]], points[chain[k + 1]]
        d0, d1, d2 = q[0] - p[0], q[1] - p[1], q[2] - p[2]
        n = max(math.sqrt(d0 * d0 + d1 * d1 + d2 * d2), _MIN_BONE)
        units.append((d0 / n, d1 / n, d2 / n))
        lengths.append(n)
    c, b, a = units
    ab = a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
    bc = b[0] * c[0] + b[1] * c[1] + b[2] * c[2]
    ac = a[0] * c[0] + a[1] * c[1] + a[2] * c[2]
    bb = 1.0 if lengths[1] > _MIN_BONE else 0.0
    return (c, b, a), lengths, (ab, bc, ac, bb)


def _bend_penalty_one(points: list[list[float]]) -> np.ndarray:
    """:func:`bend_penalty` of one hand's (21, 3) keypoints as lists: (4,)."""
    out = []
    for chain in _CHAINS:
        _, _, (ab, bc, ac, bb) = _finger_one(points, chain)
        out.append(max(ac * bb - ab * bc, 0.0))
    return np.array(out)


def bend_penalty_jacobian(keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Penalty (..., 4) and its derivative (..., 4, 4, 3) w.r.t. each finger's chain points.

    Closed form: with unit bones ``a = B_td, b = B_dp, c = B_pm`` and
    ``f = (a x b).(b x c) = (a.b)(b.c) - (a.c)(b.b)``: ``df/da = (b.c) b - (b.b) c``,
    ``df/db = (b.c) a + (a.b) c - 2 (a.c) b``, ``df/dc = (a.b) b - (b.b) a``; a unit bone
    ``v / |v|`` passes ``(g - (g.u) u) / |v|`` back to ``v``. The derivative is 0 where
    the penalty is (relu).

    Returns:
        penalty (..., 4) and d penalty / d (mcp, pip, dip, tip) (..., 4 fingers, 4, 3).
    """
    if keypoints.shape == (1, 21, 3):  # the per-frame case
        penalty, d_points = _bend_penalty_jacobian_one(keypoints[0].tolist())
        return penalty[None], d_points[None]
    unit, length = _unit_bones(keypoints)
    c, b, a = unit[..., 0, :], unit[..., 1, :], unit[..., 2, :]
    ab, bc, ac = _dots(unit)
    bb = (length[..., 1, 0] > _MIN_BONE).astype(float)
    dot = ab * bc - ac * bb
    penalty = np.maximum(-dot, 0.0)
    ab, bc, ac, bb = ab[..., None], bc[..., None], ac[..., None], bb[..., None]
    grads = np.stack([ab * b - bb * a, bc * a + ab * c - 2.0 * ac * b, bc * b - bb * c],
                     axis=-2)  # d f / d unit bones (pm, dp, td)  # fmt: skip
    grads -= (grads * unit).sum(-1, keepdims=True) * unit
    # d relu(-f) / d bone vectors: -df where f < 0, else 0.
    grads *= np.where(dot < 0.0, -1.0, 0.0)[..., None, None] / length
    d_points = np.zeros((*grads.shape[:-2], 4, 3))
    d_points[..., :3, :] -= grads
    d_points[..., 1:, :] += grads
    return penalty, d_points


def _bend_penalty_jacobian_one(points: list[list[float]]) -> tuple[np.ndarray, np.ndarray]:
    """:func:`bend_penalty_jacobian` of one hand's (21, 3) keypoints as lists, in Python
    floats (the same formulas): penalty (4,), derivative (4, 4, 3)."""
    penalty = np.zeros(4)
    d_points = np.zeros((4, 4, 3))
    for finger, chain in enumerate(_CHAINS):
        (c, b, a), lengths, (ab, bc, ac, bb) = _finger_one(points, chain)
        dot = ab * bc - ac * bb
        if dot >= 0.0:
            continue  # no violation: penalty and derivative 0
        penalty[finger] = -dot
        # d f / d unit bones (pm, dp, td), each minus its part along its own bone, times
        # d relu(-f) / d f = -1 over the bone's length.
        grads = []
        for g, u, n in (
            ([ab * b[i] - bb * a[i] for i in range(3)], c, lengths[0]),
            ([bc * a[i] + ab * c[i] - 2.0 * ac * b[i] for i in range(3)], b, lengths[1]),
            ([bc * b[i] - bb * c[i] for i in range(3)], a, lengths[2]),
        ):  # fmt: skip
            along = g[0] * u[0] + g[1] * u[1] + g[2] * u[2]
            grads.append([-(g[i] - along * u[i]) / n for i in range(3)])
        rows = d_points[finger]
        rows[:3] -= grads
        rows[1:] += grads
    return penalty, d_points


#: The reprojection residual's unit: percent of the hand's image size (so 1 % costs about
#: as much as 1 mm of keypoint error).
REPROJECTION_UNIT = 100.0
#: Keypoints nearer the camera plane than this (metres) drop out of the reprojection term.
MIN_DEPTH_M = 1e-2


def _huber_gain(n2: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """``g`` with ``(g e)^2 = huber(|e|^2)`` and ``dg/d(e) = q e``: returns (g, q).

    ``huber(n2) = n2`` up to ``|e| = threshold``, ``2 c |e| - c^2`` beyond (c = threshold).
    """
    c = threshold
    outer = n2 > c * c
    if not outer.any():  # all inliers (common): the plain squared error
        return np.ones_like(n2), np.zeros_like(n2)
    n2 = np.where(outer, n2, 1.0)  # the inner branch is constant (g = 1): no 1 / 0
    inv = 1.0 / n2
    inv_n = np.sqrt(inv)
    h = np.where(outer, 2.0 * c * inv_n - c * c * inv, 1.0)
    g = np.sqrt(h)
    dh = np.where(outer, -c * inv * inv_n + c * c * inv * inv, 0.0)  # dh / d n2
    return g, dh / g  # d g / d e = (dh / dn2) (2 e) / (2 g)


def reprojection_residuals(points: np.ndarray, camera: np.ndarray, target: np.ndarray,
                           weights: np.ndarray, scale: np.ndarray, threshold: float,
                           jacobian: bool = False):  # fmt: skip
    """Robust reprojection residuals of a batch of hands and d residuals / d points.

    ``r_k = w_k g(e_k) e_k`` with ``e_k = (project(K p_k) - uv_k) / scale`` (Huber gain g,
    :func:`_huber_gain`); keypoints behind or on the camera plane (depth < ``MIN_DEPTH_M``)
    give 0. Closed-form derivative: ``dr/dp = w (g I + q e e^T) de/dp`` with
    ``de/dp = [(K_0 - u K_2); (K_1 - v K_2)] / (z scale)``.

    Args:
        points: (B, N, 3) camera frame, metres.
        camera: (B, 3, 3) intrinsics (last row 0, 0, 1; a negative fx mirrors x).
        target: (B, N, 2) pixels (any finite value where the weight is 0).
        weights: (B, N) >= 0 (confidence, times any unit and weight).
        scale: (B,) pixels: the hand's image size.
        threshold: Huber threshold, in units of ``scale``.

    Returns:
        residuals (B, N, 2) and, with ``jacobian``, d residuals / d points (B, N, 2, 3).
    """
    q = points @ camera.transpose(0, 2, 1)  # (B, N, 3)
    z = q[..., 2]
    front = z > MIN_DEPTH_M
    if front.all():  # the usual case: no masking
        z_safe, w = z, weights
    else:
        z_safe, w = np.where(front, z, 1.0), np.where(front, weights, 0.0)
    uv = q[..., :2] / z_safe[..., None]
    inv_scale = 1.0 / scale[:, None, None]
    e = (uv - target) * inv_scale  # (weight-0 keypoints: finite, multiplied by 0 below)
    g, gq = _huber_gain((e * e).sum(-1), threshold)
    res = (w * g)[..., None] * e
    if not jacobian:
        return res, None
    # de/dp (B, N, 2, 3): rows K_i - uv_i K_2, over z scale.
    de = camera[:, None, :2, :] - uv[..., None] * camera[:, None, 2:3, :]
    de *= (inv_scale[..., None] / z_safe[..., None, None])
    d_res = (g[..., None, None] * np.eye(2)
             + gq[..., None, None] * (e[..., :, None] * e[..., None, :]))  # dr / de
    return res, w[..., None, None] * (d_res @ de)


@functools.lru_cache(maxsize=32)
def _jacobian_template(rows: int, cols: int,
                       priors: tuple[tuple[int, int, int, float], ...]) -> np.ndarray:  # fmt: skip
    """(rows, cols) zeros but the priors' constant diagonal blocks ((first row, first
    column, size, weight) each); read-only, shared by the problems of one layout (one a
    frame: building it anew cost more than a tenth of the per-frame LM bookkeeping)."""
    template = np.zeros((rows, cols))
    for first, col, size, weight in priors:
        template[first + np.arange(size), col + np.arange(size)] = weight
    template.setflags(write=False)
    return template


@dataclass
class PostOptWeights:
    """Square roots of the objective's weights (see ``PostOptConfig``); 0 disables a term."""

    vertex: float
    bend: float
    limit: float
    shape_prior: float
    temporal: float
    start: float
    reprojection: float = 0.0
    reprojection_huber: float = 0.05
    """Huber threshold of the reprojection term (a fraction of the hand's image size; not
    a square root)."""


@dataclass
class PostOptProblem:
    """A batch of frames' objectives. Arrays float64; see the module docstring for the layout.

    Attributes:
        kinematics: ``pose(betas, bio, rotation, transl) -> posed`` (``posed.points``
            (B, M, 3)) and ``jacobian_into(posed, out, shape_jacobian)`` writing the points'
            Jacobians into ``out`` (B, 3M, S) (``FastKeypointKinematics``'s interface).
        weights: the objective's weights.
        target: (B, 21, 3) estimated keypoints, metres (missing ones may hold anything).
        joint_weights: (B, 21) in [0, 1]; 0 for missing keypoints.
        start: (B, 23) the starting DoF (the pull toward it).
        betas: (B, K) the shape: known (``fix_betas``), else only its size matters.
        fix_betas: keep ``betas``; otherwise the shape is estimated (part of x).
        lower, upper: (23,) joint limits, radians.
        previous: (B, 23) the previous frame's DoF, or None (no temporal term).
        target_vertices: (B, V, 3) estimated mesh, metres, or None (no vertex term).
        image_points: (B, 21, 2) the estimator's 2D keypoints, pixels, or None (no
            reprojection term); anything where ``image_weights`` is 0.
        image_weights: (B, 21) >= 0 their confidence (0: missing).
        camera: (B, 3, 3) intrinsics projecting the points' frame (a left hand's, mirrored
            into right-hand form, has fx negated).
        image_scale: (B,) pixels, the hand's image size the 2D error is measured in.
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
    image_points: np.ndarray | None = None
    image_weights: np.ndarray | None = None
    camera: np.ndarray | None = None
    image_scale: np.ndarray | None = None

    def __post_init__(self) -> None:
        w = self.weights
        self._use_reprojection = (self.image_points is not None and w.reprojection > 0
                                  and self.camera is not None)  # fmt: skip
        if self._use_reprojection:
            self._image_w = REPROJECTION_UNIT * w.reprojection * self.image_weights
            # Missing 2D keypoints may hold NaN: zero them (their weight is 0).
            self.image_points = np.where(self._image_w[..., None] > 0, self.image_points, 0.0)
        self._kp_scale = np.repeat(1e3 * self.joint_weights, 3, axis=-1)  # (B, 63)
        self._num_betas = 0 if self.fix_betas else self.betas.shape[-1]
        self._use_vertices = self.target_vertices is not None and w.vertex > 0
        self._use_temporal = self.previous is not None and w.temporal > 0
        self._num_points = 21 + (self.target_vertices.shape[1] if self._use_vertices else 0)
        nb = self._num_betas
        self.num_step = 29 + nb
        # Row blocks of the residual vector: keypoints (and vertices), bend, limits, then
        # the constant-Jacobian priors (shape, temporal, start).
        self._row_reproj = 3 * self._num_points
        self._row_bend = self._row_reproj + (42 if self._use_reprojection else 0)
        self._row_limit = self._row_bend + 4
        row = self._row_limit + 23
        priors = []  # (first row, first column, size, weight)
        if nb:
            priors.append((row, 23, nb, w.shape_prior))
            row += nb
        if self._use_temporal:
            priors.append((row, 0, 23, w.temporal))
            row += 23
        if w.start > 0:
            priors.append((row, 0, 23, w.start))
            row += 23
        self.num_residuals = row
        # The Jacobian's constant rows (the priors), copied for every evaluation.
        self._jac_template = _jacobian_template(row, self.num_step, tuple(priors))
        # Residual rows of each long finger's (mcp, pip, dip, tip) coordinates: (4, 12).
        self._chain_rows = (3 * LONG_FINGER_CHAINS[..., None] + np.arange(3)).reshape(4, 12)
        #: The last two evaluations, x bytes -> (posed hand, residuals): LM asks for the
        #: Jacobian at the candidate it just accepted, and ends at one of the last two.
        self._cache: dict[bytes, tuple] = {}

    # --- packing ---------------------------------------------------------------------
    def pack(self, bio: np.ndarray, betas: np.ndarray, rotation: np.ndarray,
             transl: np.ndarray) -> np.ndarray:  # fmt: skip
        """(B, 23), (B, K), (B, 3, 3), (B, 3) -> x (B, P) (betas left out when known)."""
        parts = [bio] + ([] if self.fix_betas else [betas])
        return np.concatenate([*parts, rotation.reshape(len(bio), 9), transl], axis=-1)

    def unpack(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """x (B, P) -> bio (B, 23), betas (B, K), rotation (B, 3, 3), translation (B, 3)."""
        nb = self._num_betas
        betas = self.betas if self.fix_betas else x[..., 23 : 23 + nb]
        rotation = x[..., 23 + nb : 32 + nb].reshape(*x.shape[:-1], 3, 3)
        return x[..., :23], betas, rotation, x[..., 32 + nb :]

    def retract(self, x: np.ndarray, step: np.ndarray) -> np.ndarray:
        """Apply a step ((P,) or (B, P)): additive except the rotation, rotated on the left."""
        nb = self._num_betas
        rot = slice(23 + nb, 32 + nb)
        out = x.copy()
        out[..., : 23 + nb] += step[..., : 23 + nb]
        out[..., 32 + nb :] += step[..., 26 + nb :]
        if x.ndim == 1:  # one frame (the per-frame path): no batch bookkeeping
            delta = rotvec_to_rotmat_one(step[23 + nb : 26 + nb])
            out[rot] = (delta @ x[rot].reshape(3, 3)).reshape(9)
            return out
        delta = rotvec_to_rotmat_batch(step[:, 23 + nb : 26 + nb])
        out[:, rot] = (delta @ x[:, rot].reshape(-1, 3, 3)).reshape(len(x), 9)
        return out

    # --- objective -------------------------------------------------------------------
    def residuals(self, x: np.ndarray, jacobian: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Residuals (B, R) and, with ``jacobian``, d residuals / d step (B, R, S).

        ``x`` of shape (P,) (one frame; the batch then has one row) gives (R,) and (R, S).
        The last two evaluations are kept (see ``_cache``): their posed hands are reused.
        """
        if x.ndim == 1:
            res, jac = self.residuals(x[None], jacobian)
            return res[0], None if jac is None else jac[0]
        key = x.tobytes()  # cheaper than np.array_equal for a few dozen numbers
        cached = self._cache.get(key)
        if cached is not None:
            posed, res = cached
        else:
            posed, res = self._evaluate(x)
            self._remember(key, posed, res)
        if not jacobian:
            return res, None
        return res, self._jacobian(posed, res, x[..., :23])

    def prime(self, x: np.ndarray, posed) -> None:
        """Tell the problem the posed hand at x (B, P) (e.g. the start's, known already)."""
        x = np.atleast_2d(x)
        self._remember(x.tobytes(), posed, self._residuals_of(posed, x))

    def _remember(self, key: bytes, posed, res: np.ndarray) -> None:
        if len(self._cache) >= 2:
            del self._cache[next(iter(self._cache))]  # the oldest
        self._cache[key] = (posed, res)

    def posed_at(self, x: np.ndarray):
        """The posed hand at x ((P,) or (B, P)) if one of the last two evaluations was there,
        else None."""
        cached = self._cache.get(np.ascontiguousarray(x).tobytes())
        return None if cached is None else cached[0]

    def _evaluate(self, x: np.ndarray) -> tuple[object, np.ndarray]:
        """The posed hand and the residuals (B, R) at x (B, P)."""
        bio, betas, rotation, transl = self.unpack(x)
        posed = self.kinematics.pose(betas, bio, rotation, transl)
        return posed, self._residuals_of(posed, x)

    def _residuals_of(self, posed, x: np.ndarray) -> np.ndarray:
        """The residuals (B, R) of the hand ``posed`` at x (B, P)."""
        w = self.weights
        bio, betas, _, _ = self.unpack(x)
        batch = len(x)
        points = posed.points
        keypoints = points[:, :21]
        res = np.empty((batch, self.num_residuals))
        res[:, :63] = self._kp_scale * (keypoints - self.target).reshape(batch, 63)
        if self._use_vertices:
            vertex_scale = 1e3 * w.vertex / self.target_vertices.shape[1] ** 0.5
            res[:, 63 : self._row_reproj] = vertex_scale * (
                points[:, 21:] - self.target_vertices).reshape(batch, -1)  # fmt: skip
        if self._use_reprojection:
            res[:, self._row_reproj : self._row_bend] = reprojection_residuals(
                keypoints, self.camera, self.image_points, self._image_w, self.image_scale,
                w.reprojection_huber)[0].reshape(batch, 42)  # fmt: skip
        res[:, self._row_bend : self._row_limit] = w.bend * bend_penalty(keypoints)
        # Joint limits: the distance outside [lower, upper], 0 inside.
        res[:, self._row_limit : self._row_limit + 23] = w.limit * (
            np.maximum(self.lower - bio, 0.0) + np.maximum(bio - self.upper, 0.0))  # fmt: skip
        row = self._row_limit + 23
        if self._num_betas:
            res[:, row : row + self._num_betas] = w.shape_prior * betas
            row += self._num_betas
        if self._use_temporal:
            res[:, row : row + 23] = w.temporal * (bio - self.previous)
            row += 23
        if w.start > 0:
            res[:, row : row + 23] = w.start * (bio - self.start)
        return res

    def _jacobian(self, posed, res: np.ndarray, bio: np.ndarray) -> np.ndarray:
        """d residuals / d step (B, R, S) at a posed hand with residuals ``res``."""
        w = self.weights
        batch = len(res)
        out = np.empty((batch, *self._jac_template.shape))
        out[:] = self._jac_template
        rows = 3 * self._num_points
        j_points = out[:, :rows]  # filled in place, then scaled
        self.kinematics.jacobian_into(posed, j_points, shape_jacobian=not self.fix_betas)
        # Eq. 3 rows, only where a finger violates it (elsewhere the penalty is 0 and flat).
        bend_rows = slice(self._row_bend, self._row_limit)
        if (res[:, bend_rows] > 0).any():
            _, d_penalty = bend_penalty_jacobian(posed.points[:, :21])
            j_chain = j_points[:, self._chain_rows]  # (B, 4, 12, S), unscaled
            out[:, bend_rows] = w.bend * (d_penalty.reshape(batch, 4, 1, 12) @ j_chain)[:, :, 0]
        if self._use_reprojection:
            _, d_points = reprojection_residuals(
                posed.points[:, :21], self.camera, self.image_points, self._image_w,
                self.image_scale, w.reprojection_huber, jacobian=True)  # fmt: skip
            j_kp = j_points[:, :63].reshape(batch, 21, 3, -1)  # unscaled
            out[:, self._row_reproj : self._row_bend] = (d_points @ j_kp).reshape(batch, 42, -1)
        j_points[:, :63] *= self._kp_scale[..., None]
        if self._use_vertices:
            j_points[:, 63:] *= 1e3 * w.vertex / self.target_vertices.shape[1] ** 0.5
        limit_block = out[:, self._row_limit : self._row_limit + 23, :23]
        np.einsum("bii->bi", limit_block)[:] = w.limit * (
            (bio > self.upper).astype(float) - (bio < self.lower).astype(float))  # fmt: skip
        return out
