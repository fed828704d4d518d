"""Backgrounds: procedural scenes, photos shipped with scikit-image, and user folders.

Nothing is downloaded: the photos are the sample images inside the
scikit-image wheel (``skimage/data/*.png|jpg``); a user folder (e.g. COCO
images, as seed 002 used) is read when given.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import cv2
import numpy as np

from .skin import fractal_noise

logger = logging.getLogger(__name__)

#: scikit-image sample images usable as backgrounds (colour photos and textures).
SKIMAGE_IMAGES: tuple[str, ...] = (
    "astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
    "motorcycle_right.png", "brick.png", "grass.png", "gravel.png", "camera.png",
    "page.png", "text.png", "coins.png", "moon.png", "hubble_deep_field.jpg", "color.png",
)  # fmt: skip

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def skimage_data_dir() -> Path | None:
    """The ``skimage/data`` folder of the installed wheel, without importing scikit-image."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _read_rgb(path: Path, max_side: int = 1024) -> np.ndarray | None:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        return None
    scale = max_side / max(img.shape[:2])
    if scale < 1:
        img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(img[..., ::-1])


def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursive, sorted, so sampling is reproducible)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"background folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {folder}")
    return files


def random_color(rng: np.random.Generator) -> np.ndarray:
    """A random RGB colour in [0, 1], biased toward the muted colours of indoor scenes."""
    hsv = np.array(
        [[[rng.integers(0, 180), rng.beta(1.2, 2.5) * 255, rng.uniform(20, 250)]]], np.uint8
    )
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32) / 255


class BackgroundBank:
    """Samples (H, W, 3) uint8 RGB backgrounds.

    Args:
        seed: seeds the resident procedural texture bank.
        user_dir: optional folder of images, preferred when given.
        use_skimage: include the scikit-image sample photos.
        cache_size: decoded user images kept in memory.
    """

    def __init__(
        self,
        seed: int,
        user_dir: str | Path | None = None,
        use_skimage: bool = True,
        cache_size: int = 256,
    ) -> None:
        rng = np.random.default_rng([seed, 0xB6])
        self.photos: list[np.ndarray] = []
        data_dir = skimage_data_dir() if use_skimage else None
        if data_dir is not None:
            for name in SKIMAGE_IMAGES:
                img = _read_rgb(data_dir / name)
                if img is not None:
                    self.photos.append(img)
        elif use_skimage:
            logger.warning(
                "scikit-image not installed: no photo backgrounds unless --backgrounds is given"
            )
        self.user_files = list_images(Path(user_dir)) if user_dir else []
        self._cache: dict[int, np.ndarray] = {}
        self._cache_size = cache_size
        # Resident tileable-ish textures for procedural scenes, and a bank of procedural
        # scenes that samples crop like photos (a fresh scene per sample is slower).
        self.textures = [self._make_texture(rng) for _ in range(16)]
        self._seed = seed
        self._procedural_bank: dict[int, np.ndarray] = {}  # painted on first use

    @staticmethod
    def _make_texture(rng: np.random.Generator, size: int = 256) -> np.ndarray:
        a, b = random_color(rng), random_color(rng)
        n = fractal_noise(
            rng, size, base_cells=int(rng.integers(2, 12)), octaves=int(rng.integers(2, 6))
        )
        t = (n * 0.5 + 0.5)[..., None]
        if rng.random() < 0.3:  # wood/marble-like bands
            u = np.linspace(0, rng.uniform(4, 20), size, dtype=np.float32)[None, :]
            t = (0.5 + 0.5 * np.sin(u + 6 * n))[..., None]
        return np.clip(a * (1 - t) + b * t, 0, 1).astype(np.float32)

    def _user_image(self, index: int) -> np.ndarray | None:
        if index not in self._cache:
            if len(self._cache) >= self._cache_size:
                self._cache.pop(next(iter(self._cache)))
            img = _read_rgb(self.user_files[index])
            if img is None:
                logger.warning("cannot read background image %s", self.user_files[index])
                return None
            self._cache[index] = img
        return self._cache[index]

    def sample(self, rng: np.random.Generator, width: int, height: int) -> np.ndarray:
        """One background (height, width, 3) uint8."""
        r = rng.random()
        if self.user_files and r < 0.7:
            img = self._user_image(int(rng.integers(len(self.user_files))))
            if img is not None:
                return self._crop_photo(rng, img, width, height)
        elif self.photos and r < (0.8 if self.user_files else 0.4):
            return self._crop_photo(
                rng, self.photos[int(rng.integers(len(self.photos)))], width, height
            )
        if rng.random() < 0.7:
            k = int(rng.integers(32))
            if k not in self._procedural_bank:
                bank_rng = np.random.default_rng([self._seed, 0xB6, 1, k])
                self._procedural_bank[k] = self._procedural(bank_rng, 512, 512)
            return self._crop_photo(rng, self._procedural_bank[k], width, height)
        return self._procedural(rng, width, height)

    @staticmethod
    def _crop_photo(
        rng: np.random.Generator, img: np.ndarray, width: int, height: int
    ) -> np.ndarray:
        h, w = img.shape[:2]
        # A random window (10-100% of the short side) with rotation and flip, resampled.
        side = min(h, w) * rng.uniform(0.25, 1.0)
        scale = max(width, height) / side
        angle = rng.uniform(-20, 20) if rng.random() < 0.4 else 0.0
        cx, cy = rng.uniform(side / 2, w - side / 2), rng.uniform(side / 2, h - side / 2)
        M = cv2.getRotationMatrix2D((cx, cy), angle, scale)
        M[:, 2] += np.array([width / 2 - cx, height / 2 - cy])
        out = cv2.warpAffine(
            img, M, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
        )
        if rng.random() < 0.5:
            out = out[:, ::-1]
        if np.ptp(cv2.mean(img[::16, ::16])[:3]) < 1 and rng.random() < 0.7:
            # Grey sample images: tint them so they are not all neutral.
            out = (out.astype(np.float32) * (0.6 + 0.4 * random_color(rng) / 1.0)).clip(0, 255)
        return np.ascontiguousarray(out).astype(np.uint8)

    def _procedural(self, rng: np.random.Generator, width: int, height: int) -> np.ndarray:
        """A painted background (height, width, 3) uint8: base layer, clutter, noise, blur."""
        img = np.ascontiguousarray(self._base_layer(rng, width, height), dtype=np.float32)
        self._add_clutter(rng, img)
        if rng.random() < 0.6:  # sensor-ish noise and defocus
            img += rng.normal(0, rng.uniform(0.005, 0.04), img.shape).astype(np.float32)
        if rng.random() < 0.5:
            img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 4.0))
        return cv2.convertScaleAbs(np.clip(img, 0, 1), alpha=255.0)

    def _base_layer(self, rng: np.random.Generator, width: int, height: int) -> np.ndarray:
        """(height, width, 3) float RGB in [0, 1]: a gradient, a warped texture or a wall."""
        kind = rng.random()
        if kind < 0.35:  # gradient between two colours
            a, b = random_color(rng), random_color(rng)
            ang = rng.uniform(0, 2 * np.pi)
            tx = np.cos(ang) * np.linspace(0, 1, width, dtype=np.float32)[None, :]
            ty = np.sin(ang) * np.linspace(0, 1, height, dtype=np.float32)[:, None]
            t = tx + ty
            t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
            img = a * (1 - t[..., None]) + b * t[..., None]
        elif kind < 0.7:  # a resident texture, warped
            tex = self.textures[int(rng.integers(len(self.textures)))]
            s = rng.uniform(0.5, 3.0)
            M = cv2.getRotationMatrix2D((128, 128), rng.uniform(0, 360), s)
            M[:, 2] += np.array([width / 2 - 128, height / 2 - 128])
            img = cv2.warpAffine(tex, M, (width, height), borderMode=cv2.BORDER_REFLECT)
        else:  # flat wall with vignetting
            img = np.broadcast_to(random_color(rng), (height, width, 3)).copy()
            vx = (np.linspace(0, 1, width, dtype=np.float32)[None, :] - rng.uniform(0, 1)) ** 2
            vy = (np.linspace(0, 1, height, dtype=np.float32)[:, None] - rng.uniform(0, 1)) ** 2
            img *= (1.0 - rng.uniform(0, 0.5) * np.clip(np.sqrt(vx + vy), 0, 1))[..., None]
        return img

    def _add_clutter(self, rng: np.random.Generator, img: np.ndarray) -> None:
        """Shapes, bars and lines drawn into ``img`` (float32 RGB) in place, some textured."""
        height, width = img.shape[:2]
        for _ in range(int(rng.integers(0, 14))):
            col = tuple(float(c) for c in random_color(rng))
            shape = rng.integers(4)
            cx, cy = int(rng.uniform(0, width)), int(rng.uniform(0, height))
            sz = int(rng.uniform(0.03, 0.45) * max(width, height))
            textured = rng.random() < 0.3
            target = np.zeros((height, width), np.uint8) if textured else img
            color = 255 if textured else col
            if shape == 0:
                cv2.rectangle(
                    target, (cx - sz // 2, cy - sz // 3), (cx + sz // 2, cy + sz // 3), color, -1
                )
            elif shape == 1:
                axes = (sz // 2, max(sz // int(rng.integers(1, 4)), 1))
                cv2.ellipse(
                    target,
                    (cx, cy),
                    axes,
                    float(rng.uniform(0, 180)),
                    0,
                    360,
                    color,
                    -1,
                    cv2.LINE_AA,
                )
            elif shape == 2:
                pts = (rng.uniform(-0.5, 0.5, (int(rng.integers(3, 7)), 2)) * sz + [cx, cy]).astype(
                    np.int32
                )
                cv2.fillPoly(target, [pts], color, cv2.LINE_AA)
            else:
                p2 = (cx + int(rng.normal(0, sz)), cy + int(rng.normal(0, sz)))
                cv2.line(
                    target, (cx, cy), p2, color, int(rng.integers(1, max(2, sz // 8))), cv2.LINE_AA
                )
            if textured:
                tex = self.textures[int(rng.integers(len(self.textures)))]
                fill = cv2.resize(tex, (width, height), interpolation=cv2.INTER_LINEAR)
                np.copyto(img, fill, where=(target > 127)[..., None])
