"""Keypoint conventions: where each keypoint source puts the 21 keypoints on a hand.

Our hand model, MANO-fitted motion capture (GRAB, FreiHAND-style sets) and the landmark
networks each place e.g. the thumb IP or a fingertip somewhere else on the same hand.
A ``KeypointConvention`` maps a source's 21 keypoints to our model's, and back:

    ours_k = source_k - s * sum_a F_a(source) @ d_{k,a}

with ``F_a`` bone frames computed from the source keypoints themselves (numpy, no hand
model needed): the palm frame (origin-free: +y wrist -> middle MCP, +z toward the
index MCP from the little MCP, +x = y x z; the back of a right hand) and, for each of
the 20 bones, the palm frame carried along the finger by the minimal rotation ("swing")
from each bone's rest direction (in its parent bone's frame) to its current direction.
Each keypoint has up to two anchors (slot 0: palm frame for the wrist and the first
joints, else the incoming bone; slot 1, unused by default: the outgoing bone), ``d``
(21, 2, 3) metres, and
``s`` scales the offsets with the hand (wrist -> middle MCP length / ``ref_length``).
The offsets are linear given the frames, so they are fitted by least squares
(``scripts/fit_keypoint_convention.py``); the fitted data and its manifest (source,
split, seed, fit error) live in ``hand_ik/assets/conventions/``.

The frames are the source's so that the IK's conversion of its input (``to_ours``) is one
evaluation, and so that it is the same as applying the convention to the model's keypoints
in the IK's 3D residual (``model_k + offset_k(input) - input_k``).
``from_ours`` inverts the map by fixed-point iteration (offline: benchmarks, tests,
synthetic data). Conventions are in
right-hand form; ``handedness="left"`` mirrors x -> -x in and out.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hand_ik.hand_model_data import KEYPOINT_GATHER
from hand_ik.keypoints import KEYPOINT_PARENTS, NUM_KEYPOINTS, TIP_KEYPOINTS

#: Fitted convention files (``NAME.npz`` + ``NAME.json`` manifest).
CONVENTION_DIR = Path(__file__).resolve().parent / "assets" / "conventions"
#: Convention names; ``ours`` is the identity (our model's own keypoints).
CONVENTION_NAMES: tuple[str, ...] = ("ours", "mano", "mediapipe")
#: Frame index of the palm; bone b (child keypoint b + 1) is frame b + 1; -1: no anchor.
PALM_FRAME = 0
NO_ANCHOR = -1
#: The first keypoint of each finger (thumb CMC, MCPs): anchored to the palm frame.
_FIRST_JOINTS = (1, 5, 9, 13, 17)
#: Guard of the swing rotation's 1 / (1 + cos): bones more than ~179 degrees from their
#: rest direction relative to the parent bone do not occur in a hand.
_MIN_ONE_PLUS_COS = 1e-6
#: Guard against dividing by a zero-length bone or a degenerate palm, metres.
_EPS = 1e-9
#: Newton steps of ``from_ours``, and its central-difference step (metres).
INVERSE_ROUNDS = 4
_NEWTON_STEP_M = 1e-6


def default_anchors(outgoing: bool = False) -> np.ndarray:
    """(21, 2) frame index per keypoint and slot (see the module docstring).

    Slot 0: the palm frame for the wrist and the first joints, else the incoming bone.
    Slot 1 (only with ``outgoing``): the outgoing bone. One slot fits GRAB as well as two
    (1.58 vs 1.59 mm PA-MPJPE on a validation sequence) and keeps the map well conditioned.
    """
    anchors = np.full((NUM_KEYPOINTS, 2), NO_ANCHOR, dtype=np.int64)
    anchors[0, 0] = PALM_FRAME
    for k in range(1, NUM_KEYPOINTS):
        anchors[k, 0] = PALM_FRAME if k in _FIRST_JOINTS else k  # incoming bone k - 1
        if outgoing and k not in TIP_KEYPOINTS:
            anchors[k, 1] = k + 1  # outgoing bone k (child k + 1) is frame k + 1
    return anchors


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross product over the last axis (np.cross is slow for small arrays)."""
    a0, a1, a2 = a[..., 0], a[..., 1], a[..., 2]
    b0, b1, b2 = b[..., 0], b[..., 1], b[..., 2]
    return np.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], axis=-1)


def _unit(v: np.ndarray) -> np.ndarray:
    # Clamped: a zero-length bone or degenerate palm gives a zero vector, not NaN.
    return v / np.maximum(np.sqrt((v * v).sum(-1, keepdims=True)), _EPS)


def palm_frame(keypoints: np.ndarray) -> np.ndarray:
    """Palm frame (..., 3, 3), columns x, y, z (see the module docstring), from (..., 21, 3)."""
    y = _unit(keypoints[..., 9, :] - keypoints[..., 0, :])
    t = keypoints[..., 5, :] - keypoints[..., 17, :]
    z = _unit(t - (t * y).sum(-1, keepdims=True) * y)
    return np.stack([_cross(y, z), y, z], axis=-1)


#: ``(v @ _SKEW).reshape(3, 3)`` is the cross-product matrix ``[v]x``.
_SKEW = np.zeros((3, 9))
for _k, _i, _j, _sign in ((2, 0, 1, -1), (1, 0, 2, 1), (2, 1, 0, 1), (0, 1, 2, -1),
                          (1, 2, 0, -1), (0, 2, 1, 1)):
    _SKEW[_k, 3 * _i + _j] = _sign


def swing_rotmat(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Minimal rotation (..., 3, 3) taking unit vectors ``a`` to ``b`` (..., 3).

    ``R = c I + [v]x + v v^T / (1 + c)`` with ``v = a x b``, ``c = a . b`` (Rodrigues).
    """
    v = _cross(a, b)
    c = (a * b).sum(-1)
    # The clamp keeps an (impossible) bone reversed against its parent finite.
    scale = 1.0 / np.maximum(1.0 + c, _MIN_ONE_PLUS_COS)
    rot = (v @ _SKEW).reshape(*v.shape, 3) + v[..., :, None] * (v * scale[..., None])[..., None, :]
    return rot + c[..., None, None] * np.eye(3)


#: Bones grouped by depth along the fingers (child keypoints), thumb to little: the frames
#: of one level need only the level before.
_LEVELS: tuple[tuple[int, ...], ...] = tuple(
    tuple(first + d for first in _FIRST_JOINTS) for d in range(4))
_CHILDREN = np.arange(1, NUM_KEYPOINTS)
_PARENTS = np.array(KEYPOINT_PARENTS[1:])
#: Rows of each level in the (20,) bone arrays (bone b has child keypoint b + 1).
_LEVEL_BONES = tuple(np.array(level) - 1 for level in _LEVELS)


def bone_frames(keypoints: np.ndarray, rest_dirs: np.ndarray) -> np.ndarray:
    """Palm and bone frames (..., 21, 3, 3) from keypoints (..., 21, 3).

    Args:
        keypoints: (..., 21, 3) any frame, metres.
        rest_dirs: (20, 3) each bone's rest direction in its parent frame (palm for the
            wrist -> first-joint bones).

    Returns:
        Frame 0 is the palm; frame b + 1 is bone b's (child keypoint b + 1).
    """
    frames = np.empty((*keypoints.shape[:-2], NUM_KEYPOINTS, 3, 3))
    palm = palm_frame(keypoints)
    frames[..., 0, :, :] = palm
    bones = _unit(keypoints[..., _CHILDREN, :] - keypoints[..., _PARENTS, :])  # (..., 20, 3)
    parent_frames = palm[..., None, :, :]
    for rows in _LEVEL_BONES:
        rest = (parent_frames @ rest_dirs[rows][:, :, None])[..., 0]
        parent_frames = swing_rotmat(rest, bones[..., rows, :]) @ parent_frames
        frames[..., rows + 1, :, :] = parent_frames
    return frames


def anchor_matrix(keypoints: np.ndarray, rest_dirs: np.ndarray, anchors: np.ndarray,
                  ref_length: float) -> np.ndarray:  # fmt: skip
    """(..., 21, 3, 6): offset of each keypoint = matrix @ [d_slot0, d_slot1] (metres)."""
    frames = bone_frames(keypoints, rest_dirs)
    scale = np.linalg.norm(keypoints[..., 9, :] - keypoints[..., 0, :], axis=-1) / ref_length
    gathered = frames[..., np.maximum(anchors, 0), :, :]  # (..., 21, 2, 3, 3)
    gathered = gathered * (anchors >= 0)[:, :, None, None]
    mat = np.concatenate([gathered[..., 0, :, :], gathered[..., 1, :, :]], axis=-1)
    return mat * scale[..., None, None, None]


class _FastMap:
    """``to_ours`` of one finite hand in Python floats: the IK's per-frame case.

    The same maths as :func:`bone_frames` and :meth:`KeypointConvention.offset` (equal to
    float rounding, ``test_conventions``), without numpy's per-call overhead on 3-vectors:
    about 4x faster at batch 1. Frames are row-major 9-tuples.
    """

    def __init__(self, rest_dirs: np.ndarray, anchors: np.ndarray, offsets: np.ndarray,
                 ref_length: float) -> None:  # fmt: skip
        self.rest = [tuple(float(v) for v in row) for row in rest_dirs]
        #: Per keypoint: ((frame index, dx, dy, dz), ...) over its used anchor slots.
        self.terms = [tuple((int(anchors[k, a]), *(float(v) for v in offsets[k, a]))
                            for a in range(anchors.shape[1]) if anchors[k, a] >= 0)
                      for k in range(NUM_KEYPOINTS)]  # fmt: skip
        self.inv_ref = 1.0 / float(ref_length)

    def frames(self, kp: list[float]) -> list[tuple[float, ...]]:
        """Palm and bone frames (21 row-major 9-tuples) of flat right-hand keypoints (63,)."""
        sqrt = math.sqrt
        w0, w1, w2 = kp[0], kp[1], kp[2]
        y0, y1, y2 = kp[27] - w0, kp[28] - w1, kp[29] - w2
        n = max(sqrt(y0 * y0 + y1 * y1 + y2 * y2), _EPS)
        y0, y1, y2 = y0 / n, y1 / n, y2 / n
        t0, t1, t2 = kp[15] - kp[51], kp[16] - kp[52], kp[17] - kp[53]
        d = t0 * y0 + t1 * y1 + t2 * y2
        z0, z1, z2 = t0 - d * y0, t1 - d * y1, t2 - d * y2
        n = max(sqrt(z0 * z0 + z1 * z1 + z2 * z2), _EPS)
        z0, z1, z2 = z0 / n, z1 / n, z2 / n
        palm = (y1 * z2 - y2 * z1, y0, z0, y2 * z0 - y0 * z2, y1, z1,
                y0 * z1 - y1 * z0, y2, z2)  # fmt: skip
        frames = [palm] * NUM_KEYPOINTS
        rest = self.rest
        for first in _FIRST_JOINTS:
            p00, p01, p02, p10, p11, p12, p20, p21, p22 = palm
            parent = 0
            for child in range(first, first + 4):
                i, j = 3 * child, 3 * parent
                b0, b1, b2 = kp[i] - kp[j], kp[i + 1] - kp[j + 1], kp[i + 2] - kp[j + 2]
                n = max(sqrt(b0 * b0 + b1 * b1 + b2 * b2), _EPS)
                b0, b1, b2 = b0 / n, b1 / n, b2 / n
                r0, r1, r2 = rest[child - 1]
                a0 = p00 * r0 + p01 * r1 + p02 * r2  # the rest direction, parent frame
                a1 = p10 * r0 + p11 * r1 + p12 * r2
                a2 = p20 * r0 + p21 * r1 + p22 * r2
                v0, v1, v2 = a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0
                c = a0 * b0 + a1 * b1 + a2 * b2
                s = 1.0 / max(1.0 + c, _MIN_ONE_PLUS_COS)
                sv0, sv1, sv2 = v0 * s, v1 * s, v2 * s
                # Swing R = c I + [v]x + v v^T / (1 + c), then the frame R @ parent.
                r00, r01, r02 = c + v0 * sv0, v0 * sv1 - v2, v0 * sv2 + v1
                r10, r11, r12 = v1 * sv0 + v2, c + v1 * sv1, v1 * sv2 - v0
                r20, r21, r22 = v2 * sv0 - v1, v2 * sv1 + v0, c + v2 * sv2
                p00, p01, p02, p10, p11, p12, p20, p21, p22 = (
                    r00 * p00 + r01 * p10 + r02 * p20, r00 * p01 + r01 * p11 + r02 * p21,
                    r00 * p02 + r01 * p12 + r02 * p22, r10 * p00 + r11 * p10 + r12 * p20,
                    r10 * p01 + r11 * p11 + r12 * p21, r10 * p02 + r11 * p12 + r12 * p22,
                    r20 * p00 + r21 * p10 + r22 * p20, r20 * p01 + r21 * p11 + r22 * p21,
                    r20 * p02 + r21 * p12 + r22 * p22)  # fmt: skip
                frames[child] = (p00, p01, p02, p10, p11, p12, p20, p21, p22)
                parent = child
        return frames

    def to_ours(self, kp: list[float], left: bool) -> np.ndarray:
        """Flat finite source keypoints (63,) -> our model's (21, 3), metres."""
        if left:
            kp = kp.copy()
            kp[0::3] = [-v for v in kp[0::3]]
        frames = self.frames(kp)
        d0, d1, d2 = kp[27] - kp[0], kp[28] - kp[1], kp[29] - kp[2]
        scale = math.sqrt(d0 * d0 + d1 * d1 + d2 * d2) * self.inv_ref
        out = kp.copy()
        for k, terms in enumerate(self.terms):
            o0 = o1 = o2 = 0.0
            for f, e0, e1, e2 in terms:
                m = frames[f]
                o0 += m[0] * e0 + m[1] * e1 + m[2] * e2
                o1 += m[3] * e0 + m[4] * e1 + m[5] * e2
                o2 += m[6] * e0 + m[7] * e1 + m[8] * e2
            i = 3 * k
            out[i] -= o0 * scale
            out[i + 1] -= o1 * scale
            out[i + 2] -= o2 * scale
        if left:
            out[0::3] = [-v for v in out[0::3]]
        return np.array(out).reshape(NUM_KEYPOINTS, 3)


@dataclass
class KeypointConvention:
    """One source's keypoint convention (see the module docstring).

    Attributes:
        name: the convention's name.
        offsets: (21, 2, 3) metres, per keypoint and anchor slot, in the anchor's frame.
        rest_dirs: (20, 3) unit rest directions of the bones in their parent frames.
        ref_length: wrist -> middle MCP length (metres) at which ``offsets`` hold.
        anchors: (21, 2) frame index per slot (``default_anchors``).
        manifest: what the data was fitted on (source, split, seed, fit error).
        model_offsets: (21, 3) the same convention on the model side (``from_model``),
            fitted on the same data, or None.
    """

    name: str
    offsets: np.ndarray
    rest_dirs: np.ndarray
    ref_length: float
    anchors: np.ndarray = field(default_factory=default_anchors)
    manifest: dict = field(default_factory=dict)
    model_offsets: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.offsets = np.asarray(self.offsets, dtype=np.float64)
        self.rest_dirs = np.asarray(self.rest_dirs, dtype=np.float64)
        if self.offsets.shape != (NUM_KEYPOINTS, 2, 3) or not np.isfinite(self.offsets).all():
            raise ValueError(f"offsets must be finite (21, 2, 3), got {self.offsets.shape}")
        if self.rest_dirs.shape != (NUM_KEYPOINTS - 1, 3):
            raise ValueError(f"rest_dirs must be (20, 3), got {self.rest_dirs.shape}")
        if not self.ref_length > 0:
            raise ValueError(f"ref_length must be > 0, got {self.ref_length}")
        self.identity = not np.any(self.offsets)
        self._fast = _FastMap(self.rest_dirs, self.anchors, self.offsets, self.ref_length)
        if self.model_offsets is not None:
            self.model_offsets = np.asarray(self.model_offsets, dtype=np.float64)
            if self.model_offsets.shape != (NUM_KEYPOINTS, 3):
                raise ValueError(f"model_offsets must be (21, 3), got {self.model_offsets.shape}")

    def from_model(self, keypoints: np.ndarray, world: np.ndarray) -> np.ndarray:
        """The model side: posed keypoints (..., 21, 3) and joint rotations (..., 16, 3, 3)
        (right-hand form) -> this source's keypoints ``ours_k + R_j(k) @ o_k``, metres.

        For a fit that applies the convention to the model's keypoints in its residual.
        """
        if self.identity:
            return np.array(keypoints, dtype=np.float64)
        if self.model_offsets is None:
            raise ValueError(f"convention {self.name!r} has no model-side offsets")
        rot = world[..., model_anchor_joints(), :, :]
        return keypoints + (rot @ self.model_offsets[:, :, None])[..., 0]

    def offset(self, keypoints: np.ndarray) -> np.ndarray:
        """(..., 21, 3) offsets (metres) of this convention at keypoints (..., 21, 3)."""
        frames = bone_frames(keypoints, self.rest_dirs)
        total = np.zeros(keypoints.shape)
        for slot in range(2):
            used = self.anchors[:, slot] >= 0
            if used.any():
                picked = frames[..., self.anchors[used, slot], :, :]
                total[..., used, :] += (picked @ self.offsets[used, slot, :, None])[..., 0]
        scale = np.sqrt(((keypoints[..., 9, :] - keypoints[..., 0, :]) ** 2).sum(-1))
        return total * (scale / self.ref_length)[..., None, None]

    def to_ours(self, keypoints, handedness: str = "right") -> np.ndarray:
        """This source's keypoints (..., 21, 3) -> our model's, metres, same frame.

        One evaluation (the frames are the source keypoints'). A keypoint whose frames
        need a missing (NaN) keypoint keeps its source position; missing ones stay NaN.
        """
        keypoints = np.asarray(keypoints, dtype=np.float64)
        if self.identity:
            _mirror(handedness)  # validates the name
            return keypoints.copy()
        if keypoints.shape == (NUM_KEYPOINTS, 3):  # one hand (the IK's per-frame case)
            flat = keypoints.ravel().tolist()
            if math.isfinite(sum(flat)):
                left = handedness == "left"
                if not left and handedness != "right":
                    _mirror(handedness)  # raises, naming the value
                return self._fast.to_ours(flat, left)
        mirror = _mirror(handedness)
        source = keypoints * mirror
        with np.errstate(invalid="ignore"):
            offset = self.offset(source)
        # NaN frames (from a missing keypoint) give no correction rather than NaN.
        offset = np.where(np.isfinite(offset), offset, 0.0)
        return (source - offset) * mirror

    def from_ours(self, keypoints, handedness: str = "right",
                  rounds: int = INVERSE_ROUNDS) -> np.ndarray:  # fmt: skip
        """Our model's keypoints (..., 21, 3) -> this source's, metres, same frame.

        Solves ``to_ours(source) = ours`` by Newton's method with a central-difference
        Jacobian (63 x 63 per hand): for benchmarks, tests and synthetic data (the IK
        needs only ``to_ours``). Finite input only.
        """
        keypoints = np.asarray(keypoints, dtype=np.float64)
        mirror = _mirror(handedness)
        if self.identity:
            return keypoints.copy()
        if not np.isfinite(keypoints).all():
            raise ValueError("from_ours needs finite keypoints")
        ours = (keypoints * mirror).reshape(-1, NUM_KEYPOINTS * 3)
        source = ours + self.offset(ours.reshape(-1, NUM_KEYPOINTS, 3)).reshape(len(ours), -1)
        eye = np.eye(NUM_KEYPOINTS * 3) * _NEWTON_STEP_M
        for _ in range(rounds):
            def residual(x):
                pts = x.reshape(*x.shape[:-1], NUM_KEYPOINTS, 3)
                return x - self.offset(pts).reshape(x.shape) - ours.reshape(
                    (len(ours),) + (1,) * (x.ndim - 2) + (-1,))
            value = residual(source)
            jac = (residual(source[:, None] + eye) - residual(source[:, None] - eye)) / (
                2 * _NEWTON_STEP_M)  # (N, 63 perturbed, 63): row i = d residual / d x_i
            source = source - np.linalg.solve(np.swapaxes(jac, 1, 2), value[..., None])[..., 0]
        return source.reshape(keypoints.shape) * mirror


def fit_offsets(ours: np.ndarray, source: np.ndarray, rest_dirs: np.ndarray,
                anchors: np.ndarray, ref_length: float, ridge: float = 0.1) -> np.ndarray:
    """Least-squares offsets (21, 2, 3) with ``source ~= ours + offset(source)``.

    Args:
        ours: (N, 21, 3) our model's posed keypoints, metres.
        source: (N, 21, 3) the source's keypoints of the same hands, same frame.
        rest_dirs, anchors, ref_length: as in ``KeypointConvention``.
        ridge: Tikhonov weight relative to one frame's data term (the penalty is
            ``ridge^2 * N * |d_k|^2``): resolves the two slots of a straight finger, where
            both frames agree, and keeps the map well conditioned for ``from_ours``.
    """
    mat = anchor_matrix(source, rest_dirs, anchors, ref_length)  # (N, 21, 3, 6)
    diff = source - ours
    offsets = np.zeros((NUM_KEYPOINTS, 6))
    n = len(ours)
    for k in range(NUM_KEYPOINTS):
        used = np.repeat(anchors[k] >= 0, 3)
        a = mat[:, k][..., used].reshape(3 * n, -1)
        b = diff[:, k].reshape(-1)
        ok = np.isfinite(b) & np.isfinite(a).all(-1)
        lhs = a[ok].T @ a[ok] + (ridge**2) * n * np.eye(a.shape[1])
        offsets[k, used] = np.linalg.solve(lhs, a[ok].T @ b[ok])
    return offsets.reshape(NUM_KEYPOINTS, 2, 3)


def model_anchor_joints() -> np.ndarray:
    """(21,) the model joint (MANO internal order) whose rotation carries each keypoint's
    model-side offset: the root for the wrist and the first joints, else the joint that
    turns the keypoint's incoming bone (the parent keypoint's joint)."""
    joints = np.zeros(NUM_KEYPOINTS, dtype=np.int64)
    for k in range(1, NUM_KEYPOINTS):
        if k not in _FIRST_JOINTS:
            joints[k] = KEYPOINT_GATHER[KEYPOINT_PARENTS[k]]
    return joints


def fit_model_offsets(ours: np.ndarray, source: np.ndarray, world: np.ndarray) -> np.ndarray:
    """Least-squares model-side offsets (21, 3): ``source_k ~= ours_k + R_j(k) @ o_k``.

    Args:
        ours: (N, 21, 3) the model's posed keypoints; source: (N, 21, 3) the source's.
        world: (N, 16, 3, 3) the model's posed joint rotations (MANO internal order).

    Returns:
        (21, 3) metres in the model's rest frame: the mean of ``R^T (source - ours)``
        (R orthonormal, so that is the least-squares solution).
    """
    rot = world[:, model_anchor_joints()]  # (N, 21, 3, 3)
    local = (np.swapaxes(rot, -1, -2) @ (source - ours)[..., None])[..., 0]
    return np.nanmean(local, axis=0)


def _mirror(handedness: str) -> np.ndarray:
    if handedness not in ("right", "left"):
        raise ValueError(f"handedness must be 'right' or 'left', got {handedness!r}")
    return np.array([-1.0 if handedness == "left" else 1.0, 1.0, 1.0])


def identity_convention(rest_keypoints: np.ndarray | None = None) -> KeypointConvention:
    """``ours``: zero offsets (today's behaviour)."""
    rest_dirs = (rest_bone_directions(rest_keypoints) if rest_keypoints is not None
                 else np.tile([0.0, 1.0, 0.0], (NUM_KEYPOINTS - 1, 1)))  # fmt: skip
    return KeypointConvention("ours", np.zeros((NUM_KEYPOINTS, 2, 3)), rest_dirs, 0.09,
                              manifest={"what": "our hand model's own keypoints (identity)"})


def rest_bone_directions(rest_keypoints: np.ndarray) -> np.ndarray:
    """(20, 3) unit bone directions of a rest hand (21, 3) in their parent frames."""
    rest = np.asarray(rest_keypoints, dtype=np.float64)
    dirs = np.zeros((NUM_KEYPOINTS - 1, 3))
    frames = np.empty((NUM_KEYPOINTS, 3, 3))
    frames[0] = palm_frame(rest)
    for child in range(1, NUM_KEYPOINTS):
        parent = KEYPOINT_PARENTS[child]
        bone = rest[child] - rest[parent]
        bone = bone / np.linalg.norm(bone)
        parent_frame = frames[0 if parent == 0 else parent]
        dirs[child - 1] = parent_frame.T @ bone
        frames[child] = parent_frame  # rest: the swing is the identity
    return dirs


def save_convention(convention: KeypointConvention, folder: Path = CONVENTION_DIR) -> Path:
    """Write ``NAME.npz`` (arrays) and ``NAME.json`` (the manifest); returns the npz path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{convention.name}.npz"
    extra = {} if convention.model_offsets is None else {"model_offsets": convention.model_offsets}
    np.savez(path, offsets=convention.offsets, rest_dirs=convention.rest_dirs,
             ref_length=np.float64(convention.ref_length), anchors=convention.anchors, **extra)
    (folder / f"{convention.name}.json").write_text(
        json.dumps(convention.manifest, indent=1, sort_keys=False) + "\n")  # fmt: skip
    return path


def load_convention(name: str, folder: Path = CONVENTION_DIR) -> KeypointConvention:
    """A convention by name (``ours`` is built in; the others are fitted files)."""
    if name not in CONVENTION_NAMES:
        raise ValueError(f"unknown keypoint convention {name!r}; valid: {list(CONVENTION_NAMES)}")
    if name == "ours":
        return identity_convention()
    path = folder / f"{name}.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: convention {name!r} is not fitted "
                                "(scripts/fit_keypoint_convention.py)")  # fmt: skip
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    manifest_path = path.with_suffix(".json")
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    return KeypointConvention(name, arrays["offsets"], arrays["rest_dirs"],
                              float(arrays["ref_length"]), arrays["anchors"].astype(np.int64),
                              manifest, arrays.get("model_offsets"))  # fmt: skip
