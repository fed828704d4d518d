"""Load 21-keypoint sequences (motion capture, gloves, other trackers) from .npz / .npy."""

from __future__ import annotations

import tokenize
import zipfile
import zlib
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
    try:
        joints = _read_array(path, key)
    except _NoKeypointArray as error:
        raise ValueError(str(error)) from None
    except _READ_ERRORS as error:
        raise ValueError(
            f"{path}: not a readable .npy / .npz keypoint file ({type(error).__name__}: {error})"
        ) from error
    if joints.dtype.kind not in "biuf":
        raise ValueError(f"{path}: keypoints must be real numbers, got dtype {joints.dtype}")
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim == 2 and joints.shape == (NUM_KEYPOINTS, 3):
        joints = joints[None]
    if joints.ndim != 3 or joints.shape[1:] != (NUM_KEYPOINTS, 3) or len(joints) == 0:
        raise ValueError(f"{path}: expected (N, 21, 3) keypoints, got {joints.shape}")
    if not np.isfinite(joints).all():
        raise ValueError(f"{path}: keypoints contain NaN or inf")
    return joints


#: What numpy and zipfile raise on a truncated, corrupted or foreign file.
_READ_ERRORS = (ValueError, TypeError, KeyError, EOFError, OSError, RuntimeError,
                NotImplementedError, SyntaxError, tokenize.TokenError, zipfile.BadZipFile,
                zlib.error)  # fmt: skip


def _read_array(path: Path, key: str | None) -> np.ndarray:
    """The file's array (a .npy) or the chosen array of a .npz, whatever the file's suffix."""
    loaded = np.load(path, allow_pickle=False)
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        return np.asarray(loaded)
    with loaded as archive:
        names = [key] if key else [k for k in KEYPOINT_ARRAY_KEYS if k in archive.files]
        if not names or names[0] not in archive.files:
            raise _NoKeypointArray(
                f"{path}: no keypoint array {key or KEYPOINT_ARRAY_KEYS} "
                f"(arrays in file: {archive.files})"
            )
        return np.asarray(archive[names[0]])


class _NoKeypointArray(Exception):
    """A readable .npz without the keypoint array (its message is the user's error)."""
