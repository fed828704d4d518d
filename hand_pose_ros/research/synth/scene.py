"""Scene pieces around a posed hand: forearm and sleeve meshes, lights, visibility.

All geometry here is in the camera optical frame (metres).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .augment import color_temperature_rgb
from .gl_renderer import DrawItem, Lighting, Material, vertex_normals


def boundary_loops(faces: np.ndarray) -> list[np.ndarray]:
    """Closed loops of boundary edges (edges used by one face), as ordered vertex ids."""
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    key = np.sort(edges, axis=1)
    _, inverse, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    boundary = edges[counts[inverse.reshape(-1)] == 1]
    nxt: dict[int, int] = {}
    for a, b in boundary:
        nxt[int(a)] = int(b)
    loops, seen = [], set()
    for start in list(nxt):
        if start in seen:
            continue
        loop, v = [], start
        while v not in seen and v in nxt:
            seen.add(v)
            loop.append(v)
            v = nxt[v]
        if len(loop) >= 3:
            loops.append(np.asarray(loop, np.int64))
    return loops


def wrist_loop(verts: np.ndarray, faces: np.ndarray, wrist: np.ndarray) -> np.ndarray:
    """The boundary loop closest to the wrist keypoint (the hand mesh's wrist opening).

    Raises:
        ValueError: when the mesh has no open boundary.
    """
    loops = [lp for lp in boundary_loops(faces) if np.ptp(verts[lp], axis=0).max() > 1e-3]
    if not loops:
        raise ValueError("hand mesh has no open boundary: cannot attach a forearm")
    return min(loops, key=lambda lp: float(np.linalg.norm(verts[lp].mean(0) - wrist)))


def _tube_item(
    rings: np.ndarray, material: Material, object_id: int, v0: float, v1: float
) -> DrawItem:
    """Un-indexed draw item of a tube given rings (R, N, 3) (open at both ends)."""
    n_r, n = rings.shape[:2]
    verts = rings.reshape(-1, 3)
    faces = []
    for r in range(n_r - 1):
        for k in range(n):
            a, b = r * n + k, r * n + (k + 1) % n
            faces += [(a, b, b + n), (a, b + n, a + n)]
    faces = np.asarray(faces, np.int64)
    normals = vertex_normals(verts, faces)
    axis_pts = np.repeat(rings.mean(1), n, axis=0)
    if np.mean(np.sum(normals * (verts - axis_pts), 1)) < 0:  # make normals point outward
        normals = -normals
    u = np.tile(np.arange(n) / n, n_r)
    v = np.repeat(np.linspace(v0, v1, n_r), n)
    uv = np.stack([u, v], 1)
    flat = faces.reshape(-1)
    return DrawItem(
        verts[flat].astype(np.float32),
        normals[flat].astype(np.float32),
        uv[flat].astype(np.float32),
        material,
        object_id,
    )


@dataclass
class ArmStyle:
    """How the forearm looks: bare skin, then optionally a sleeve."""

    length: float = 0.25
    """Forearm length shown, metres."""
    taper: float = 1.15
    """Radius growth toward the elbow (x wrist radius)."""
    sleeve: bool = False
    sleeve_start: float = 0.04
    """Distance from the wrist opening to the sleeve's end, metres (< 0: over the hand)."""
    sleeve_scale: float = 1.5
    """Sleeve radius (x forearm radius)."""


def sample_arm_style(
    rng: np.random.Generator, length: tuple[float, float] = (0.25, 0.45)
) -> ArmStyle:
    """A random arm: length range in metres, 60% with a sleeve."""
    sleeve = bool(rng.random() < 0.6)
    return ArmStyle(
        length=float(rng.uniform(*length)),
        taper=float(rng.uniform(1.05, 1.3)),
        sleeve=sleeve,
        sleeve_start=float(rng.uniform(-0.005, 0.09)),
        sleeve_scale=float(rng.uniform(1.25, 1.8)),
    )


def arm_items(
    verts: np.ndarray,
    loop: np.ndarray,
    direction: np.ndarray,
    style: ArmStyle,
    skin: Material,
    cloth: Material,
    object_id: int,
) -> list[DrawItem]:
    """Forearm (and sleeve) meshes continuing the hand's wrist opening.

    Args:
        verts: (V, 3) posed hand vertices, camera frame.
        loop: ordered vertex ids of the wrist opening.
        direction: (3,) unit vector from the wrist toward the elbow.
        style: shape of the arm and sleeve.
        skin: material of the bare forearm. cloth: material of the sleeve.
        object_id: label-pass id of the arm.
    """
    ring0 = verts[loop]
    c0 = ring0.mean(0)
    rel = ring0 - c0
    flat = rel - np.outer(rel @ direction, direction)  # the opening projected across the arm
    n_rings = 8
    ts = np.linspace(0, 1, n_rings + 1)[1:]
    rings = [ring0]
    for t in ts:
        s = 1 + (style.taper - 1) * t
        blend = min(1.0, t * n_rings)  # first ring: leave the (slanted) opening smoothly
        rings.append(c0 + ((1 - blend) * rel + blend * flat) * s + direction * style.length * t)
    rings.append(np.repeat(rings[-1].mean(0, keepdims=True), len(ring0), axis=0))  # close the end
    items = [_tube_item(np.stack(rings), skin, object_id, 0.0, 1.0)]
    if style.sleeve:
        start = max(style.sleeve_start, -0.01)
        s_rings = []
        for t in np.linspace(0, 1, 6):
            d = start + (style.length - start) * t
            s = (1 + (style.taper - 1) * max(d, 0) / style.length) * style.sleeve_scale
            s_rings.append(c0 + flat * s + direction * d)
        s_rings.append(np.repeat(s_rings[-1].mean(0, keepdims=True), len(ring0), axis=0))
        items.append(_tube_item(np.stack(s_rings), cloth, object_id, 0.0, 1.0))
    return items


def sample_lighting(rng: np.random.Generator, background_mean: np.ndarray) -> Lighting:
    """Random key + fill lights (colour temperature 2700-7500 K) and ambient tinted by the scene."""

    def direction(back_prob: float) -> tuple[float, float, float]:
        d = rng.normal(size=3)
        d[2] = abs(d[2]) + 0.3
        if rng.random() < back_prob:
            d[2] = -d[2]  # light from behind the hand
        d /= np.linalg.norm(d)
        return tuple(float(x) for x in d)

    key = color_temperature_rgb(rng.uniform(2700, 7500)) * rng.uniform(0.5, 0.85)
    fill = color_temperature_rgb(rng.uniform(2700, 9000)) * rng.uniform(0.0, 0.3)
    # Ambient light takes a little of the scene's colour (light bounced off the background).
    env = np.asarray(background_mean, np.float32) / max(float(np.max(background_mean)), 1e-3)
    amb = (0.8 + 0.2 * env) * rng.uniform(0.2, 0.42)
    up = np.array([rng.normal(0, 0.3), -1.0, rng.normal(0, 0.3)])
    up /= np.linalg.norm(up)
    return Lighting(
        ambient_sky=tuple(float(x) for x in amb),
        ambient_ground=tuple(float(x) for x in amb * rng.uniform(0.4, 0.8)),
        up_dir=tuple(float(x) for x in up),
        light_dirs=(direction(0.15), direction(0.3)),
        light_colors=(tuple(float(x) for x in key), tuple(float(x) for x in fill)),
    )


#: Depth slack (metres) between a keypoint and the surface in front of it that still counts
#: as visible. Keypoints sit inside the hand, nearer the back: seen from the palm side the
#: surface is up to ~16 mm (fingers) and ~30 mm (palm, wrist) in front of them (measured on
#: the open hand model, flat pose). Order: wrist, then per finger base, middle, distal, tip.
VISIBILITY_SLACK = np.array([0.04] + [0.035, 0.026, 0.022, 0.015] + [0.032, 0.024, 0.02, 0.015] * 4)


def keypoint_visibility(
    uv: np.ndarray,
    joints_cam: np.ndarray,
    depth: np.ndarray,
    ids: np.ndarray,
    object_id: int,
    occluded: np.ndarray | None = None,
    arm_id: int | None = None,
) -> np.ndarray:
    """Whether each keypoint is seen: inside the image, on its own hand, not behind other surfaces.

    Args:
        uv: (21, 2) pixels. joints_cam: (21, 3) metres. depth: (H, W) nearest
            surface z (inf on background). ids: (H, W) object ids.
        object_id: this hand's id. occluded: optional (H, W) bool occluder mask.
        arm_id: id of this hand's forearm, which also counts for the wrist keypoint.

    Returns:
        (21,) bool.
    """
    h, w = depth.shape
    px = np.rint(uv).astype(np.int64)
    inside = (
        (px[:, 0] >= 0) & (px[:, 0] < w) & (px[:, 1] >= 0) & (px[:, 1] < h) & (joints_cam[:, 2] > 0)
    )
    vis = np.zeros(len(uv), bool)
    for k in np.flatnonzero(inside):
        u, v = px[k]
        y0, y1, x0, x1 = max(v - 1, 0), min(v + 2, h), max(u - 1, 0), min(u + 2, w)
        d = depth[y0:y1, x0:x1]
        own = ids[y0:y1, x0:x1] == object_id
        if k == 0 and arm_id is not None:
            own |= ids[y0:y1, x0:x1] == arm_id
        # Visible if a pixel of the 3x3 neighbourhood shows this hand within the slack in front.
        ok = own & (joints_cam[k, 2] - d < VISIBILITY_SLACK[k])
        if occluded is not None:
            ok &= ~occluded[y0:y1, x0:x1]
        vis[k] = bool(ok.any())
    return vis
