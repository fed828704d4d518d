"""hand_ik: ROS-free hand model, biomechanical kinematics, IK and retargeting."""

from hand_ik.keypoints import (
    FINGER_NAMES,
    KEYPOINT_NAMES,
    NUM_KEYPOINTS,
    SKELETON_EDGES,
)

__all__ = ["FINGER_NAMES", "KEYPOINT_NAMES", "NUM_KEYPOINTS", "SKELETON_EDGES"]
