"""Training samples for the mesh estimator: crops -> model input + lixel targets.

A sample of any source (our synthetic crops, FreiHAND) becomes, in right-hand
canonical form (left hands mirrored: image flipped, ``u -> W - 1 - u``):

- ``image``: (3, S, S) float32, ImageNet-normalised;
- ``joints_lixel``: (21, 3) and ``verts_lixel``: (V, 3) lixel targets (x, y over the
  model input, z = root-relative camera depth, :mod:`hand_pose_ros.estimation.lixel`);
- ``mesh_valid``: () float32, 1 where a mesh label exists.

Augmentation (train only) is drawn from ``SeedSequence([seed, epoch, index])`` so a
sample is the same whatever the number of loader workers or where a run resumed:
a small rotation / scale / shift of the crop (one affine warp, labels mapped by the
same affine; depth is unchanged: a 2D similarity of the crop keeps root-relative
depth), colour jitter (brightness, contrast, saturation, per-channel gain, gamma),
Gaussian or motion blur, sensor noise and grey-scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from hand_pose_ros.estimation.prepost import IMAGENET_MEAN, IMAGENET_STD
from hand_pose_ros.research.synth.freihand import FreiHANDDataset
from hand_pose_ros.research.synth.shards import SynthDataset


@dataclass
class TrainAugment:
    """Strength of the training augmentation (all off: :meth:`off`)."""

    rotation_deg: float = 25.0
    """Max in-plane rotation of the crop, degrees (uniform in +-)."""
    scale: float = 0.12
    """Max relative zoom of the crop (uniform in 1 +- scale)."""
    shift: float = 0.06
    """Max shift of the crop, fraction of its side."""
    color_prob: float = 0.9
    """Chance of colour jitter."""
    blur_prob: float = 0.3
    """Chance of Gaussian or motion blur."""
    noise_prob: float = 0.3
    """Chance of additive Gaussian noise."""
    gray_prob: float = 0.05
    """Chance of a grey-scale image."""

    def __post_init__(self) -> None:
        for name in ("color_prob", "blur_prob", "noise_prob", "gray_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name}: must be in [0, 1], got {getattr(self, name)}")
        for name in ("rotation_deg", "scale", "shift"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be >= 0, got {getattr(self, name)}")

    @classmethod
    def off(cls) -> TrainAugment:
        return cls(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(N, 3) camera points, (3, 3) intrinsics -> (N, 2) pixels."""
    p = points @ np.asarray(K, np.float64).T
    # Points are in front of the camera (z > 0.1 m for every source); the guard only keeps
    # a corrupt label from dividing by zero.
    return p[:, :2] / np.maximum(p[:, 2:3], 1e-6)


def crop_affine(size_in: tuple[int, int], size_out: int, rng: np.random.Generator | None,
                aug: TrainAugment) -> np.ndarray:  # fmt: skip
    """2x3 affine from crop pixels (H, W) to model-input pixels, with a random similarity."""
    h, w = size_in
    s = size_out / max(h, w)
    angle, zoom, tx, ty = 0.0, 1.0, 0.0, 0.0
    if rng is not None:
        angle = rng.uniform(-aug.rotation_deg, aug.rotation_deg)
        zoom = 1.0 + rng.uniform(-aug.scale, aug.scale)
        tx, ty = rng.uniform(-aug.shift, aug.shift, 2) * size_out
    c_in = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    c_out = (size_out - 1) / 2.0
    m = cv2.getRotationMatrix2D((0.0, 0.0), angle, zoom * s)  # rotation + scale about 0
    m[:, 2] = -m[:, :2] @ c_in + c_out + np.array([tx, ty])
    return m


def color_augment(img: np.ndarray, rng: np.random.Generator, aug: TrainAugment) -> np.ndarray:
    """Photometric jitter of a float32 (H, W, 3) image in [0, 1] (returned clipped)."""
    if rng.random() < aug.color_prob:
        img = img * rng.uniform(0.6, 1.4) * rng.uniform(0.85, 1.15, 3).astype(np.float32)
        mean = img.mean()
        img = (img - mean) * rng.uniform(0.6, 1.4) + mean
        gray = img.mean(-1, keepdims=True)
        img = (img - gray) * rng.uniform(0.5, 1.5) + gray
        img = np.clip(img, 0.0, 1.0) ** rng.uniform(0.7, 1.4)
    if rng.random() < aug.blur_prob:
        if rng.random() < 0.6:
            img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 2.0))
        else:
            k = int(rng.integers(3, 10))
            kernel = np.zeros((k, k), np.float32)
            kernel[k // 2] = 1.0 / k
            rot = cv2.getRotationMatrix2D(((k - 1) / 2, (k - 1) / 2), rng.uniform(0, 180), 1.0)
            kernel = cv2.warpAffine(kernel, rot, (k, k))
            img = cv2.filter2D(img, -1, kernel / max(kernel.sum(), 1e-6))
    if rng.random() < aug.noise_prob:
        img = img + rng.normal(0.0, rng.uniform(0.01, 0.05), img.shape).astype(np.float32)
    if rng.random() < aug.gray_prob:
        img = np.repeat(img.mean(-1, keepdims=True), 3, axis=-1)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def make_sample(item: dict, input_size: int, depth_range: float,
                rng: np.random.Generator | None = None,
                aug: TrainAugment | None = None) -> dict[str, np.ndarray]:  # fmt: skip
    """One source item (numpy, ``image`` (H, W, 3) uint8 RGB, ``K``, ``joints_cam``,
    ``verts_cam`` (NaN: no mesh), ``handedness``) -> model input and lixel targets.

    ``rng`` None: no augmentation (evaluation / deterministic tests).
    """
    aug = aug or TrainAugment()
    img = item["image"]
    h, w = img.shape[:2]
    K = np.asarray(item["K"], np.float64)
    joints = np.asarray(item["joints_cam"], np.float64)
    verts = np.asarray(item["verts_cam"], np.float64)
    mesh_valid = bool(np.isfinite(verts).all())
    uv_j = project(joints, K)
    uv_v = project(verts, K) if mesh_valid else np.zeros((len(verts), 2))
    z_j = joints[:, 2] - joints[0, 2]
    z_v = verts[:, 2] - joints[0, 2] if mesh_valid else np.zeros(len(verts))
    if int(item.get("handedness", 0)) == 1:  # left hand: mirror into right-hand canonical form
        img = img[:, ::-1]
        uv_j[:, 0] = w - 1 - uv_j[:, 0]
        uv_v[:, 0] = w - 1 - uv_v[:, 0]
    m = crop_affine((h, w), input_size, rng, aug)
    out = cv2.warpAffine(np.ascontiguousarray(img), m, (input_size, input_size),
                         flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)  # fmt: skip
    out = out.astype(np.float32) / 255.0
    if rng is not None:
        out = color_augment(out, rng, aug)
    out = (out - IMAGENET_MEAN) / IMAGENET_STD
    stride = input_size / (input_size // 4)
    bins = input_size // 4

    def lixel(uv: np.ndarray, z: np.ndarray) -> np.ndarray:
        uv_in = uv @ m[:, :2].T + m[:, 2]
        xy = (uv_in + 0.5) / stride - 0.5
        zl = (z / depth_range + 1.0) * 0.5 * bins - 0.5
        return np.concatenate([xy, zl[:, None]], axis=1).astype(np.float32)

    return {
        "image": np.ascontiguousarray(out.transpose(2, 0, 1), dtype=np.float32),
        "joints_lixel": lixel(uv_j, z_j),
        "verts_lixel": lixel(uv_v, z_v),
        "mesh_valid": np.float32(mesh_valid),
    }


class LixelTrainSet:
    """A dataset with ``numpy_item(i)`` (SynthDataset, FreiHANDDataset) as training samples.

    Args:
        base: the source dataset.
        input_size: S, the model input side.
        depth_range: the estimator's ``depth_range_m``.
        seed: augmentation seed; ``augment`` None disables augmentation.
    """

    def __init__(self, base, input_size: int, depth_range: float, seed: int = 0,
                 augment: TrainAugment | None = None) -> None:  # fmt: skip
        self.base, self.input_size, self.depth_range = base, input_size, depth_range
        self.seed, self.augment, self.epoch = seed, augment, 0

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict:
        import torch

        rng = None
        if self.augment is not None:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch, int(i)]))
        s = make_sample(self.base.numpy_item(int(i)), self.input_size, self.depth_range, rng,
                        self.augment)  # fmt: skip
        return {k: torch.from_numpy(np.asarray(v)) for k, v in s.items()}


def open_dataset(spec: str):
    """``DIR`` (our synthetic crops) or ``freihand:PATH`` -> a dataset with ``numpy_item``."""
    from pathlib import Path

    if spec.startswith("freihand:"):
        return FreiHANDDataset(spec.split(":", 1)[1])

    ds = SynthDataset(Path(spec))
    if ds.meta.get("kind") != "crops":
        raise ValueError(f"{spec}: a crops dataset is needed, got kind {ds.meta.get('kind')!r}")
    return ds
