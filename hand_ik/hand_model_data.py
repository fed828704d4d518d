"""Lookup tables of the MANO-layout hand model: joint order, tree, keypoint mapping.

MANO's 16 internal joints (also our open model's, so the two are interchangeable):
0 wrist; 1-3 index MCP, PIP, DIP; 4-6 middle; 7-9 little; 10-12 ring;
13-15 thumb CMC, MCP, IP. Fingertips are mesh vertices (``tip_vertex_ids``,
thumb..little). The public 21-keypoint order is ``hand_ik.keypoints`` (FreiHAND).
"""

from __future__ import annotations

from hand_ik.keypoints import KEYPOINT_NAMES, NUM_KEYPOINTS, TIP_KEYPOINTS

NUM_JOINTS16 = 16
NUM_POSE_JOINTS = 15
NUM_POSE_PARAMS = 45

MANO_JOINT_NAMES: tuple[str, ...] = (
    "wrist",
    "index_mcp", "index_pip", "index_dip",
    "middle_mcp", "middle_pip", "middle_dip",
    "little_mcp", "little_pip", "little_dip",
    "ring_mcp", "ring_pip", "ring_dip",
    "thumb_cmc", "thumb_mcp", "thumb_ip",
)  # fmt: skip

#: Parent of each internal joint (-1 for the wrist): MANO's kinematic tree.
MANO_PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)

#: Keypoint index (FreiHAND order) of each internal joint.
MANO_TO_KEYPOINT: tuple[int, ...] = tuple(KEYPOINT_NAMES.index(n) for n in MANO_JOINT_NAMES)

#: Fingertip vertex ids of the official MANO mesh (smplx ``VERTEX_IDS['mano']``),
#: thumb, index, middle, ring, little.
MANO_TIP_VERTEX_IDS: tuple[int, ...] = (744, 320, 443, 554, 671)

#: Gather index building the 21 keypoints from ``cat(joints16, tips5)``.
KEYPOINT_GATHER: tuple[int, ...] = tuple(
    MANO_TO_KEYPOINT.index(k) if k in MANO_TO_KEYPOINT else NUM_JOINTS16 + TIP_KEYPOINTS.index(k)
    for k in range(NUM_KEYPOINTS)
)

#: Keys and shapes (V vertices, F faces, K betas) a MANO-layout model must hold.
REQUIRED_KEYS: dict[str, str] = {
    "v_template": "(V, 3)",
    "shapedirs": "(V, 3, K)",
    "posedirs": "(V, 3, 135)",
    "J_regressor": "(16, V)",
    "weights": "(V, 16)",
    "kintree_table": "(2, 16)",
    "faces": "(F, 3) ('f' in MANO pickles)",
    "hands_mean": "(45,)",
    "hands_components": "(N, 45)",
}
