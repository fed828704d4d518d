"""The hand root frame (``hand_root``): defined once, here.

For a right hand (left hands are mirrored into right-hand canonical form first):

- origin: the wrist keypoint (index 0);
- +y: from the wrist toward the middle-finger MCP (along the fingers, distal);
- +x: toward the thumb side (radial), the index-MCP minus little-MCP direction
  made orthogonal to +y;
- +z = x cross y: out of the palm (palmar side).

Held palm toward the camera with the fingers up, a right hand has +x to the
viewer's right, +y up and +z toward the camera. The frame depends only on the
palm keypoints (wrist, index MCP, middle MCP, little MCP), which move rigidly
with the hand.
"""

from __future__ import annotations

import numpy as np
import torch

WRIST, INDEX_MCP, MIDDLE_MCP, LITTLE_MCP = 0, 5, 9, 17

#: Mirror that maps a left hand to right-hand canonical form (and back): x -> -x
#: in the camera optical frame, i.e. a horizontally flipped image.
MIRROR_X = np.diag([-1.0, 1.0, 1.0])


def hand_root_frame(joints: torch.Tensor, eps: float = 1e-9) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotation and origin of the hand root frame from 21 keypoints.

    Args:
        joints: (..., 21, 3) keypoints in any frame F (FreiHAND order), metres.
        eps: guard for degenerate palms (all palm points equal).

    Returns:
        rotation: (..., 3, 3) whose columns are the hand axes x, y, z expressed
            in F (so ``p_F = rotation @ p_hand + origin``).
        origin: (..., 3) wrist position in F.
    """
    origin = joints[..., WRIST, :]
    y = joints[..., MIDDLE_MCP, :] - origin
    # Normalising a zero vector gives NaN: clamp the norm.
    y = y / y.norm(dim=-1, keepdim=True).clamp_min(eps)
    x = joints[..., INDEX_MCP, :] - joints[..., LITTLE_MCP, :]
    x = x - (x * y).sum(-1, keepdim=True) * y
    x = x / x.norm(dim=-1, keepdim=True).clamp_min(eps)
    z = torch.linalg.cross(x, y, dim=-1)
    return torch.stack([x, y, z], dim=-1), origin


def to_hand_root(joints: torch.Tensor) -> torch.Tensor:
    """Express (..., 21, 3) keypoints in their own hand root frame."""
    rotation, origin = hand_root_frame(joints)
    return (joints - origin[..., None, :]) @ rotation
