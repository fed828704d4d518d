"""Image-space effects: compositing, occluders, camera noise, blur, JPEG, colour jitter.

All functions take and return float32 RGB images in [0, 1] (H, W, 3) unless
stated, and draw every random choice from the given generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .backgrounds import random_color


@dataclass
class AugmentConfig:
    """Probabilities and strengths of the image effects."""

    occluder_prob: float = 0.25
    """Chance of 1-2 occluding objects over a hand."""
    blur_prob: float = 0.25
    """Chance of defocus (Gaussian) blur."""
    motion_blur_prob: float = 0.12
    """Chance of linear motion blur."""
    noise_prob: float = 0.7
    """Chance of sensor noise (shot + read)."""
    jpeg_prob: float = 0.5
    """Chance of an extra low/mid quality JPEG round trip."""
    downscale_prob: float = 0.15
    """Chance of a down-then-up resample (low resolution cameras)."""
    color_jitter: float = 1.0
    """Strength of brightness/contrast/saturation/white-balance jitter (0 disables)."""

    def __post_init__(self) -> None:
        for name in (
            "occluder_prob",
            "blur_prob",
            "motion_blur_prob",
            "noise_prob",
            "jpeg_prob",
            "downscale_prob",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.color_jitter < 0:
            raise ValueError(f"color_jitter must be >= 0, got {self.color_jitter}")


def composite(rgba_premultiplied: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Rendered layer over a background.

    Args:
        rgba_premultiplied: (H, W, 4) float32, colour premultiplied by coverage.
        background: (H, W, 3) uint8.
    """
    out = background.astype(np.float32) * (1.0 / 255.0)
    alpha = rgba_premultiplied[..., 3]
    x, y, w, h = cv2.boundingRect((alpha > 0).astype(np.uint8))  # work only where drawn
    if w and h:
        a = alpha[y : y + h, x : x + w, None]
        out[y : y + h, x : x + w] = (
            rgba_premultiplied[y : y + h, x : x + w, :3] + (1.0 - a) * out[y : y + h, x : x + w]
        )
    return out


def smooth_edges(image: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Cheap anti-aliasing for single-sample renders: box-filter a band around object edges.

    Args:
        image: (H, W, 3) float32 composite. ids: (H, W) uint8 object ids (0 background).

    Returns:
        The image with the 1-pixel band on both sides of every id change replaced by its
        3x3 average (a stand-in for multisampling at a fraction of its cost on llvmpipe).
    """
    x, y, w, h = cv2.boundingRect((ids > 0).astype(np.uint8))
    if not (w and h):
        return image
    # Work in the objects' bounding box grown by 2 pixels.
    x0, y0 = max(x - 2, 0), max(y - 2, 0)
    x1, y1 = min(x + w + 2, ids.shape[1]), min(y + h + 2, ids.shape[0])
    roi_ids, roi = ids[y0:y1, x0:x1], image[y0:y1, x0:x1]
    kernel = np.ones((3, 3), np.uint8)
    edges = cv2.dilate(roi_ids, kernel) != cv2.erode(roi_ids, kernel)
    blurred = cv2.blur(roi, (3, 3))
    out = image.copy()
    out[y0:y1, x0:x1] = np.where(edges[..., None], 0.5 * (blurred + roi), roi)
    return out


def add_occluders(
    rng: np.random.Generator,
    image: np.ndarray,
    box_xyxy: np.ndarray,
    textures: list[np.ndarray] | None = None,
) -> np.ndarray:
    """Paint 1-2 objects overlapping ``box_xyxy``; returns the (H, W) bool occluder mask.

    ``image`` is modified in place.
    """
    h, w = image.shape[:2]
    x0, y0, x1, y1 = box_xyxy
    bw, bh = max(x1 - x0, 4.0), max(y1 - y0, 4.0)
    mask_total = np.zeros((h, w), bool)
    for _ in range(int(rng.integers(1, 3))):
        layer = np.zeros((h, w), np.uint8)
        cx = int(rng.uniform(x0 - 0.2 * bw, x1 + 0.2 * bw))
        cy = int(rng.uniform(y0 - 0.2 * bh, y1 + 0.2 * bh))
        size = rng.uniform(0.15, 0.5) * max(bw, bh)
        _draw_occluder_shape(rng, layer, cx, cy, size)
        col = random_color(rng)
        use_texture = bool(textures) and rng.random() < 0.4
        tex = textures[int(rng.integers(len(textures)))] if use_texture else None
        shade = rng.uniform(-0.3, 0.3)
        rx, ry, rw, rh = cv2.boundingRect(layer)  # blend only inside the object's box
        if not (rw and rh):
            continue
        alpha = layer[ry : ry + rh, rx : rx + rw].astype(np.float32)[..., None] / 255.0
        if tex is not None:
            fill = cv2.resize(tex, (rw, rh), interpolation=cv2.INTER_LINEAR)
        else:
            fill = np.broadcast_to(col, (rh, rw, 3))
        # Simple shading across the object so it is not a flat sticker.
        yy = np.linspace(-1, 1, rh, dtype=np.float32)[:, None, None]
        fill = np.clip(fill * (1.0 + shade * yy), 0, 1)
        roi = image[ry : ry + rh, rx : rx + rw]
        roi *= 1 - alpha
        roi += fill * alpha
        mask_total |= layer > 127
    return mask_total


def _draw_occluder_shape(rng: np.random.Generator, layer: np.ndarray, cx: int, cy: int,
                         size: float) -> None:  # fmt: skip
    """Draw a random rod, ball or box of ``size`` pixels at (cx, cy) into ``layer`` (255)."""
    kind = rng.integers(3)
    if kind == 0:  # rod / pen / cable
        ang = rng.uniform(0, np.pi)
        d = np.array([np.cos(ang), np.sin(ang)]) * size * 1.5
        cv2.line(
            layer,
            (int(cx - d[0]), int(cy - d[1])),
            (int(cx + d[0]), int(cy + d[1])),
            255,
            max(2, int(size * rng.uniform(0.1, 0.3))),
            cv2.LINE_AA,
        )
    elif kind == 1:  # ball / cup seen from the side
        cv2.ellipse(
            layer,
            (cx, cy),
            (int(size / 2), int(size / 2 * rng.uniform(0.5, 1.2))),
            float(rng.uniform(0, 180)),
            0,
            360,
            255,
            -1,
            cv2.LINE_AA,
        )
    else:  # box / phone
        pts = cv2.boxPoints(
            ((cx, cy), (size, size * rng.uniform(0.3, 1.0)), float(rng.uniform(0, 180)))
        )
        cv2.fillPoly(layer, [pts.astype(np.int32)], 255, cv2.LINE_AA)


def _color_temperature_gains(kelvin: float) -> np.ndarray:
    """Approximate RGB white-balance multipliers of a black body at ``kelvin`` (normalised to G)."""
    t = kelvin / 100.0
    r = 255.0 if t <= 66 else 329.7 * (t - 60) ** -0.1332
    g = 99.47 * np.log(t) - 161.1 if t <= 66 else 288.1 * (t - 60) ** -0.0755
    b = 255.0 if t >= 66 else (0.0 if t <= 19 else 138.5 * np.log(t - 10) - 305.0)
    rgb = np.clip(np.array([r, g, b], np.float32), 1.0, 255.0)
    return rgb / rgb[1]


def color_temperature_rgb(kelvin: float) -> np.ndarray:
    """Light colour (3,) with max component 1 for a colour temperature in kelvin."""
    g = _color_temperature_gains(kelvin)
    return (g / g.max()).astype(np.float32)


_NOISE_TILE: np.ndarray | None = None


def _noise_patch(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Unit Gaussian noise of ``shape`` (H, W, 3): a random window of a resident tile.

    Drawing fresh normals for a 640x480 frame costs more than the rest of the camera
    model; a 1024x1024 tile with random offsets and flips is as good for training.
    """
    global _NOISE_TILE
    h, w = shape[:2]
    if _NOISE_TILE is None:
        _NOISE_TILE = np.random.default_rng(0x401).standard_normal(
            (1024, 1024, 3), dtype=np.float32
        )
    tile = _NOISE_TILE
    if h > tile.shape[0] or w > tile.shape[1]:
        return rng.standard_normal(shape, dtype=np.float32)
    y, x = int(rng.integers(tile.shape[0] - h + 1)), int(rng.integers(tile.shape[1] - w + 1))
    patch = tile[y : y + h, x : x + w]
    if rng.random() < 0.5:
        patch = patch[::-1]
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    return patch[..., rng.permutation(3)]


def _gamma_lut(gamma: float) -> np.ndarray:
    return (np.clip((np.arange(256) / 255.0) ** gamma, 0, 1) * 255 + 0.5).astype(np.uint8)


def camera_effects(rng: np.random.Generator, image: np.ndarray, cfg: AugmentConfig) -> np.ndarray:
    """Colour jitter, blur, noise, resampling and JPEG artefacts; returns uint8 (H, W, 3)."""
    img = image
    h, w = img.shape[:2]
    gamma = 1.0
    if cfg.color_jitter > 0:
        # White balance, exposure, contrast and saturation as one 3x4 colour matrix.
        s = cfg.color_jitter
        G = np.diag(1.0 + s * rng.normal(0, 0.04, 3)) * np.exp(s * rng.normal(0, 0.25))
        c = 1.0 + s * rng.uniform(-0.25, 0.25)
        sat = 1.0 + s * rng.uniform(-0.4, 0.3)
        S = sat * np.eye(3) + (1 - sat) / 3.0 * np.ones((3, 3))
        m = (G @ img[::8, ::8].reshape(-1, 3).mean(0)).mean()
        M = np.concatenate([S @ (c * G), ((1 - c) * m * np.ones(3))[:, None]], axis=1)
        img = cv2.transform(img, M.astype(np.float32))
        gamma = float(np.exp(s * rng.normal(0, 0.12)))
    if rng.random() < cfg.downscale_prob:
        f = rng.uniform(0.3, 0.7)
        small = cv2.resize(
            img, (max(8, int(w * f)), max(8, int(h * f))), interpolation=cv2.INTER_AREA
        )
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    if rng.random() < cfg.blur_prob:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.8))
    if rng.random() < cfg.motion_blur_prob:
        k = int(rng.integers(3, 10))
        kernel = np.zeros((k, k), np.float32)
        kernel[k // 2, :] = 1.0 / k
        M = cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), rng.uniform(0, 180), 1.0)
        kernel = cv2.warpAffine(kernel, M, (k, k))
        img = cv2.filter2D(img, -1, kernel / max(float(kernel.sum()), 1e-6))
    if rng.random() < cfg.noise_prob:
        # Read noise plus shot noise growing with the signal.
        read = rng.uniform(0.002, 0.02)
        shot = rng.uniform(0.0, 0.03)
        sigma = cv2.sqrt(np.clip(img, 0, 1) * np.float32(shot**2) + np.float32(read**2))
        img = img + sigma * _noise_patch(rng, img.shape)
    out = cv2.convertScaleAbs(np.clip(img, 0, 1), alpha=255.0)
    if gamma != 1.0:
        out = cv2.LUT(out, _gamma_lut(gamma))
    if rng.random() < cfg.jpeg_prob:
        ok, buf = cv2.imencode(
            ".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(25, 90))]
        )
        if ok:
            out = np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])
    return out
