"""Hand mesh / keypoint estimation: the I2L MeshNet family (seed 002 §3.2) and its runtimes.

Import-light: torch is imported by the submodules that need it.
"""

from hand_pose_ros.estimation.config import EstimatorConfig
from hand_pose_ros.estimation.observation import HandObservation
from hand_pose_ros.estimation.registry import (
    create_mesh_net,
    estimator_config,
    list_estimators,
    register_estimator,
)

__all__ = [
    "EstimatorConfig",
    "HandObservation",
    "create_mesh_net",
    "estimator_config",
    "list_estimators",
    "register_estimator",
]
