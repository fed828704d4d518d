"""The 21 hand keypoints: the one place that defines their order and skeleton.

Public order everywhere (FreiHAND / MediaPipe):
0 wrist; 1-4 thumb CMC, MCP, IP, tip; 5-8 index MCP, PIP, DIP, tip;
9-12 middle; 13-16 ring; 17-20 little.
"""

from __future__ import annotations

NUM_KEYPOINTS = 21

FINGER_NAMES: tuple[str, ...] = ("thumb", "index", "middle", "ring", "little")

KEYPOINT_NAMES: tuple[str, ...] = (
    "wrist",
    "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip",
    "index_mcp", "index_pip", "index_dip", "index_tip",
    "middle_mcp", "middle_pip", "middle_dip", "middle_tip",
    "ring_mcp", "ring_pip", "ring_dip", "ring_tip",
    "little_mcp", "little_pip", "little_dip", "little_tip",
)  # fmt: skip

#: Keypoint indices of each finger from its base joint to its tip.
FINGER_KEYPOINTS: dict[str, tuple[int, int, int, int]] = {
    name: (1 + 4 * i, 2 + 4 * i, 3 + 4 * i, 4 + 4 * i) for i, name in enumerate(FINGER_NAMES)
}

#: Index of each keypoint's parent (-1 for the wrist): the 20 bones.
KEYPOINT_PARENTS: tuple[int, ...] = (
    -1,
    *(0 if k % 4 == 1 else k - 1 for k in range(1, NUM_KEYPOINTS)),
)

#: Bones as (parent, child) keypoint index pairs.
SKELETON_EDGES: tuple[tuple[int, int], ...] = tuple(
    (KEYPOINT_PARENTS[k], k) for k in range(1, NUM_KEYPOINTS)
)

#: Fingertip keypoint indices, thumb to little.
TIP_KEYPOINTS: tuple[int, ...] = (4, 8, 12, 16, 20)

#: Palm keypoints (wrist and the four finger MCPs) that move rigidly with the hand root.
PALM_KEYPOINTS: tuple[int, ...] = (0, 5, 9, 13, 17)

