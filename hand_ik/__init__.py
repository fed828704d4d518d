"""hand_ik: ROS-free hand model, biomechanical kinematics, IK and retargeting.

The names below load on first use (PEP 562): importing ``hand_ik.retarget.config`` or
``hand_ik.keypoints`` does not import torch; ``hand_ik.load_hand_model`` does.
"""

from importlib import import_module
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

#: Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    "BIO_DOF_NAMES": "hand_ik.bio_dofs",
    "NUM_BIO_DOFS": "hand_ik.bio_dofs",
    "pose_to_bio": "hand_ik.bio_fit",
    "bio_to_pose": "hand_ik.biomech",
    "HandModel": "hand_ik.hand_model",
    "HandOutput": "hand_ik.hand_model",
    "load_hand_model": "hand_ik.hand_model",
    "MANO_TO_KEYPOINT": "hand_ik.hand_model_data",
    "FINGER_NAMES": "hand_ik.keypoints",
    "KEYPOINT_NAMES": "hand_ik.keypoints",
    "NUM_KEYPOINTS": "hand_ik.keypoints",
    "SKELETON_EDGES": "hand_ik.keypoints",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'hand_ik' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
