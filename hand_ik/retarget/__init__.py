"""Retargeting the human hand onto robot hand URDFs (config, joint mapping, vector optimizer)."""

from hand_ik.retarget.command import RobotCommand
from hand_ik.retarget.config import (
    OptimizerConfig,
    RetargetingConfig,
    available_robot_configs,
    load_retargeting_config,
)
from hand_ik.retarget.joint_map import JointMap
from hand_ik.retarget.retargeter import Retargeter
from hand_ik.retarget.vector_optimizer import TaskVector, VectorOptimizer

__all__ = [
    "JointMap",
    "OptimizerConfig",
    "Retargeter",
    "RetargetingConfig",
    "RobotCommand",
    "TaskVector",
    "VectorOptimizer",
    "available_robot_configs",
    "load_retargeting_config",
]
