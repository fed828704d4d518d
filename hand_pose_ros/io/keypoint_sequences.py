"""Load 21-keypoint sequences (motion capture, gloves, other trackers) from .npz / .npy."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hand_ik.keypoints import NUM_KEYPOINTS

#: Array names tried in order when a .npz holds several arrays.
KEYPOINT_ARRAY_KEYS: tuple[str, ...] = (
    "joints_wristlocal_aligned",
    "joints",
    "keypoints",
    "joints_world",
)


def load_keypoint_sequence(path: str | Path, key: str | None = None) -> np.ndarray:
    """Load an (N, 21, 3) keypoint sequence in metres, FreiHAND / MediaPipe order.

    Args:
        path: a ``.npy`` array or a ``.npz`` archive.
        key: array name inside a ``.npz``; default: the first of
            ``KEYPOINT_ARRAY_KEYS`` present.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: no suitable array, wrong shape, or non-finite values.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"keypoint file not found: {path}")
    if path.suffix == ".npy":
        joints = np.load(path, allow_pickle=False)
    else:
        with np.load(path, allow_pickle=False) as archive:
            names = [key] if key else [k for k in KEYPOINT_ARRAY_KEYS if k in archive.files]
            if not names or names[0] not in archive.files:
                raise ValueError(
                    f"{path}: no keypoint array {key or KEYPOINT_ARRAY_KEYS} "
                    f"(arrays in file: {archive.files})"
                )
            joints = archive[names[0]]
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim == 2 and joints.shape == (NUM_KEYPOINTS, 3):
        joints = joints[None]
    if joints.ndim != 3 or joints.shape[1:] != (NUM_KEYPOINTS, 3) or len(joints) == 0:
        raise ValueError(f"{path}: expected (N, 21, 3) keypoints, got {joints.shape}")
    if not np.isfinite(joints).all():
        raise ValueError(f"{path}: keypoints contain NaN or inf")
    return joints
