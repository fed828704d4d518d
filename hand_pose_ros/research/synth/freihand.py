"""FreiHAND (Zimmermann et al. 2019) in our sample format, for users who have the dataset.

Reads the public layout (FreiHAND_pub_v2)::

    ROOT/training/rgb/%08d.jpg        224x224 RGB; 4 x N images (green screen and 3 composites)
    ROOT/training/mask/%08d.jpg       hand masks of the first N (optional)
    ROOT/training_xyz.json            N x 21 x 3 joints, metres, camera frame, FreiHAND order
    ROOT/training_K.json              N x 3 x 3 intrinsics
    ROOT/training_mano.json           N x 1 x 61: pose 48 (global 3 + 45, MANO axis-angle),
                                      shape 10, translation 3
    ROOT/training_verts.json          N x 778 x 3 vertices, metres, camera frame (optional)

Image ``i`` uses the labels of ``i % N``. Items match
:class:`hand_pose_ros.research.synth.shards.SynthDataset` crops: ``pose`` is MANO's (not our
open model's) and ``bio`` is NaN (unknown); all keypoints count as visible.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from hand_pose_ros.research.synth.shards import item_to_tensors


def _load_json(path: Path):
    if not path.exists():
        raise FileNotFoundError(f"FreiHAND file missing: {path}")
    with path.open() as f:
        return json.load(f)


class FreiHANDDataset:
    """FreiHAND training images with labels, as a torch-style Dataset of dicts of tensors.

    Args:
        root: folder holding ``training/`` and ``training_*.json``.
        split: ``training`` (the evaluation split has the same layout with the
            ``evaluation`` prefix).
        versions: which of the 4 image versions to use (0 = green screen).
        with_masks: also read ``mask/`` (first version only).
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "training",
        versions: tuple[int, ...] = (0, 1, 2, 3),
        with_masks: bool = False,
    ) -> None:
        self.root = Path(root)
        if split not in ("training", "evaluation"):
            raise ValueError(f"split must be 'training' or 'evaluation', got {split!r}")
        self.split = split
        self.xyz = np.asarray(_load_json(self.root / f"{split}_xyz.json"), np.float32)
        self.K = np.asarray(_load_json(self.root / f"{split}_K.json"), np.float32)
        n = len(self.xyz)
        if self.xyz.shape[1:] != (21, 3) or self.K.shape != (n, 3, 3):
            raise ValueError(
                f"{self.root}: unexpected label shapes xyz {self.xyz.shape}, K {self.K.shape}"
            )
        mano_path = self.root / f"{split}_mano.json"
        self.mano = (
            np.asarray(_load_json(mano_path), np.float32).reshape(n, -1)
            if mano_path.exists()
            else None
        )
        verts_path = self.root / f"{split}_verts.json"
        self.verts = np.asarray(_load_json(verts_path), np.float32) if verts_path.exists() else None
        self.image_dir = self.root / split / "rgb"
        if not self.image_dir.is_dir():
            raise FileNotFoundError(f"FreiHAND images missing: {self.image_dir}")
        available = len(list(self.image_dir.glob("*.jpg")))
        self.versions = tuple(v for v in versions if (v + 1) * n <= available)
        if not self.versions:
            raise ValueError(
                f"{self.image_dir}: {available} images for {n} labels; no full version"
            )
        self.num_labels = n
        self.with_masks = with_masks

    def __len__(self) -> int:
        return self.num_labels * len(self.versions)

    def numpy_item(self, i: int) -> dict[str, np.ndarray]:
        """Item ``i`` as numpy arrays (image (224, 224, 3) uint8 RGB)."""
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} samples")
        n = self.num_labels
        label = i % n
        image_id = self.versions[i // n] * n + label
        path = self.image_dir / f"{image_id:08d}.jpg"
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise FileNotFoundError(f"cannot read {path}")
        K = self.K[label]
        joints = self.xyz[label]
        p = joints @ K.T
        kp2d = p[:, :2] / p[:, 2:3]
        verts = (
            self.verts[label] if self.verts is not None else np.full((778, 3), np.nan, np.float32)
        )
        pts = (
            np.concatenate([kp2d, (verts @ K.T)[:, :2] / (verts @ K.T)[:, 2:3]])
            if self.verts is not None
            else kp2d
        )
        mano = self.mano[label] if self.mano is not None else np.full(61, np.nan, np.float32)
        out = {
            "image": np.ascontiguousarray(img[..., ::-1]),
            "K": K.copy(),
            "index": np.int64(i),
            "kp2d": kp2d.astype(np.float32),
            "joints_cam": joints.copy(),
            "verts_cam": verts.copy(),
            "betas": mano[48:58].copy(),
            "pose": mano[3:48].copy(),
            "bio": np.full(23, np.nan, np.float32),
            "global_orient": mano[0:3].copy(),
            "transl": mano[58:61].copy(),
            "handedness": np.int8(0),
            "box_xyxy": np.array([*pts.min(0), *pts.max(0)], np.float32),
            "visibility": np.ones(21, bool),
            "view": np.full(3, np.nan, np.float32),
        }
        if self.with_masks:
            mask_path = self.root / self.split / "mask" / f"{label:08d}.jpg"
            mask = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE)
            if mask is None:
                raise FileNotFoundError(f"cannot read {mask_path}")
            out["mask"] = (mask > 127).astype(np.uint8)
        return out

    def __getitem__(self, i: int) -> dict:
        return item_to_tensors(self.numpy_item(i))
