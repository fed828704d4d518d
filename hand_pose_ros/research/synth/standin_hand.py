"""A procedural stand-in hand: tubes along a 21-keypoint skeleton, with UVs.

Used by tests (and as a fallback while no hand model is installed): it has the
same interface as the real model wrapper
(:class:`hand_pose_ros.research.synth.hand_source.HandSource`),
a fixed topology, an open wrist (one boundary loop) and fingertip keypoints
on the surface (each finger ends in a cap whose apex is the tip keypoint).

Frame: the ``hand_root`` convention of :mod:`hand_ik.frames` for a right hand
(x radial/thumb side, y from the wrist to the fingers, z out of the palm),
metres, wrist at the origin.
"""

from __future__ import annotations

import numpy as np

from hand_ik.keypoints import FINGER_KEYPOINTS, FINGER_NAMES

_RING = 10  # vertices per tube ring
_CAP = 3  # cap rings before the apex

#: Rest keypoints (21, 3) of an adult-sized upright right hand, hand_root frame.
_REST = np.array(
    [
        [0.0, 0.0, 0.0],
        [0.022, 0.028, 0.012], [0.042, 0.052, 0.018], [0.058, 0.074, 0.021], [0.07, 0.094, 0.022],
        [0.024, 0.092, 0.0], [0.028, 0.134, 0.0], [0.030, 0.159, 0.0], [0.031, 0.180, 0.0],
        [0.005, 0.096, 0.0], [0.005, 0.142, 0.0], [0.005, 0.170, 0.0], [0.005, 0.193, 0.0],
        [-0.014, 0.091, 0.0], [-0.017, 0.134, 0.0], [-0.018, 0.160, 0.0], [-0.019, 0.181, 0.0],
        [-0.031, 0.082, 0.0], [-0.037, 0.114, 0.0], [-0.040, 0.134, 0.0], [-0.042, 0.151, 0.0],
    ]
)  # fmt: skip
_RADII = {"thumb": 0.0095, "index": 0.0085, "middle": 0.0088, "ring": 0.0082, "little": 0.0072}


def _frame(direction: np.ndarray, hint: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = direction / np.linalg.norm(direction)
    a = np.cross(d, hint)
    if np.linalg.norm(a) < 1e-6:  # hint parallel to the bone: any perpendicular will do
        a = np.cross(d, np.array([1.0, 0.0, 0.0]))
    a /= np.linalg.norm(a)
    return a, np.cross(d, a)


def _rot(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


def posed_keypoints(flex: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Keypoints with per-joint flexion.

    Args:
        flex: (5, 3) flexion angles, radians, per finger (thumb..little) and
            joint (base, middle, distal); positive bends toward the palm (+z).
        scale: uniform size factor.

    Returns:
        (21, 3) keypoints, metres, hand_root frame.
    """
    joints = _REST.copy() * scale
    for f, name in enumerate(FINGER_NAMES):
        ids = FINGER_KEYPOINTS[name]
        for j in range(3):
            d = joints[ids[j + 1]] - joints[ids[j]]
            axis = np.cross(d, np.array([0.0, 0.0, 1.0]))  # bone x palm normal: flexion axis
            R = _rot(axis, float(flex[f, j]))
            base = joints[ids[j]]
            for k in ids[j + 1 :]:
                joints[k] = base + R @ (joints[k] - base)
    return joints


def _tube(points: np.ndarray, radius: float, hint: np.ndarray, cap: bool) -> np.ndarray:
    """Rings (R, _RING, 3) along a polyline, optionally closed by a cap ending at the last point."""
    rings = []
    n = len(points)
    end = points[-1]
    for i, p in enumerate(points):
        d = points[min(i + 1, n - 1)] - points[max(i - 1, 0)]
        a, b = _frame(d, hint)
        c = p
        if cap and i == n - 1:
            c = p - radius * d / np.linalg.norm(d)
        ang = np.linspace(0, 2 * np.pi, _RING, endpoint=False)
        rings.append(c + radius * (np.cos(ang)[:, None] * a + np.sin(ang)[:, None] * b))
    if cap:
        d = points[-1] - points[-2]
        d /= np.linalg.norm(d)
        a, b = _frame(d, hint)
        for k in range(1, _CAP + 1):
            t = k / (_CAP + 1) * np.pi / 2
            c = end - radius * d + radius * np.sin(t) * d
            ang = np.linspace(0, 2 * np.pi, _RING, endpoint=False)
            rings.append(
                c + radius * np.cos(t) * (np.cos(ang)[:, None] * a + np.sin(ang)[:, None] * b)
            )
        rings.append(np.repeat(end[None], _RING, axis=0))
    return np.stack(rings)


def _tube_faces(n_rings: int, offset: int) -> np.ndarray:
    faces = []
    for r in range(n_rings - 1):
        for k in range(_RING):
            a = offset + r * _RING + k
            b = offset + r * _RING + (k + 1) % _RING
            c, d = a + _RING, b + _RING
            faces += [(a, b, d), (a, d, c)]
    return np.asarray(faces, np.int64)


def standin_mesh(joints: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Procedural mesh around 21 keypoints (fixed topology).

    Args:
        joints: (21, 3) keypoints, hand_root frame, metres.

    Returns:
        verts (V, 3), faces (F, 3) (outward winding), uv (V, 2) per-vertex texture
        coordinates in [0, 1] (each tube gets its own strip of the texture).
    """
    z = np.array([0.0, 0.0, 1.0])
    parts = [_palm_rings(joints, z)]
    for name in FINGER_NAMES:
        ids = FINGER_KEYPOINTS[name]
        pts = joints[list(ids)]
        if name != "thumb":
            pts = np.concatenate(
                [pts[:1] - 0.012 * (pts[1] - pts[0]) / np.linalg.norm(pts[1] - pts[0]), pts]
            )
        else:
            pts = np.concatenate([joints[:1] * 0.5 + pts[:1] * 0.5, pts])
        parts.append(_tube(pts, _RADII[name], z, cap=True))
    verts, faces, uvs = [], [], []
    offset = 0
    for p_i, rings in enumerate(parts):
        n_rings = len(rings)
        verts.append(rings.reshape(-1, 3))
        faces.append(_tube_faces(n_rings, offset))
        u = (p_i + 0.1 + 0.8 * np.tile(np.arange(_RING) / (_RING - 1), n_rings)) / len(parts)
        v = np.repeat(np.linspace(0.05, 0.95, n_rings), _RING)
        uvs.append(np.stack([u, v], 1))
        offset += n_rings * _RING
    verts = np.concatenate(verts)
    faces = np.concatenate(faces)
    return verts, _outward(verts, faces, parts), np.concatenate(uvs)


def _palm_rings(joints: np.ndarray, z: np.ndarray) -> np.ndarray:
    """(6, _RING, 3) rings of the palm: a flattened tube from below the wrist to the
    knuckles, open at the wrist (hand_root frame, metres)."""
    wrist = joints[0]
    knuckle = joints[[5, 9, 13, 17]].mean(0)
    ys = np.linspace(-0.015, 1.0, 6)
    palm_rings = []
    for t in ys:
        c = wrist + t * (knuckle - wrist)
        half_w = 0.03 + 0.015 * np.clip(t, 0, 1)
        ang = np.linspace(0, 2 * np.pi, _RING, endpoint=False)
        x_axis = joints[5] - joints[17]
        x_axis = x_axis / np.linalg.norm(x_axis)
        # (z, x) order: rings wind the same way around the bone as the finger tubes.
        palm_rings.append(
            c + 0.014 * np.cos(ang)[:, None] * z + half_w * np.sin(ang)[:, None] * x_axis
        )
    return np.stack(palm_rings)


def _outward(verts: np.ndarray, faces: np.ndarray, parts: list[np.ndarray]) -> np.ndarray:
    """``faces``, flipped as a whole if their mean normal points into the parts (inward)."""
    tri = verts[faces]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    centre = tri.mean(1)
    part_centre = np.zeros_like(centre)
    start = 0
    for rings in parts:
        n_f = (len(rings) - 1) * _RING * 2
        part_centre[start : start + n_f] = rings.reshape(-1, 3).mean(0)
        start += n_f
    if np.mean(np.sum(fn * (centre - part_centre), 1)) < 0:
        faces = faces[:, ::-1].copy()
    return faces
