"""hand_ik: ROS-free hand model, biomechanical kinematics, IK and retargeting."""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)


from hand_ik.bio_dofs import BIO_DOF_NAMES, NUM_BIO_DOFS
from hand_ik.bio_fit import pose_to_bio
from hand_ik.biomech import bio_to_pose
from hand_ik.hand_model import HandModel, HandOutput, load_hand_model
from hand_ik.hand_model_data import MANO_TO_KEYPOINT
from hand_ik.keypoints import (
    FINGER_NAMES,
    KEYPOINT_NAMES,
    NUM_KEYPOINTS,
    SKELETON_EDGES,
)

__all__ = [
    "BIO_DOF_NAMES",
    "FINGER_NAMES",
    "KEYPOINT_NAMES",
    "MANO_TO_KEYPOINT",
    "NUM_BIO_DOFS",
    "NUM_KEYPOINTS",
    "SKELETON_EDGES",
    "HandModel",
    "HandOutput",
    "bio_to_pose",
    "load_hand_model",
    "pose_to_bio",
]
