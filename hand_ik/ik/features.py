"""IK net input: normalised bone directions and bone lengths (seed 002 Fig. 6A)."""

from __future__ import annotations

import numpy as np
import torch

from hand_ik.keypoints import SKELETON_EDGES

_PARENTS = torch.tensor([p for p, _ in SKELETON_EDGES])
_CHILDREN = torch.tensor([c for _, c in SKELETON_EDGES])
_PARENTS_NP = _PARENTS.numpy()
_CHILDREN_NP = _CHILDREN.numpy()
NUM_BONES = len(SKELETON_EDGES)
NUM_FEATURES = NUM_BONES * 4


def bone_features(joints: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """Bone directions (unit, in the input frame) and bone lengths (metres).

    Invariant to translation; the lengths are also invariant to rotation. The IK
    expresses joints in the hand root frame first, so the directions describe the
    articulation only.

    Args:
        joints: (..., 21, 3) keypoints, FreiHAND order.

    Returns:
        (..., 80): 20 unit directions (x, y, z interleaved per bone) then 20 lengths.
    """
    bones = joints[..., _CHILDREN, :] - joints[..., _PARENTS, :]
    lengths = bones.norm(dim=-1)
    # A zero-length bone has no direction: clamp to avoid NaN (the direction is then 0).
    directions = bones / lengths.clamp_min(eps)[..., None]
    return torch.cat([directions.flatten(-2), lengths], dim=-1)


def bone_features_np(joints: np.ndarray, eps: float = 1e-9) -> np.ndarray:
    """:func:`bone_features` in numpy: (..., 21, 3) keypoints -> (..., 80), same layout."""
    bones = joints[..., _CHILDREN_NP, :] - joints[..., _PARENTS_NP, :]
    lengths = np.sqrt((bones * bones).sum(-1))
    # A zero-length bone has no direction: clamp to avoid NaN (the direction is then 0).
    directions = bones / np.maximum(lengths, eps)[..., None]
    return np.concatenate([directions.reshape(*directions.shape[:-2], -1), lengths], axis=-1)
