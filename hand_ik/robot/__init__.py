"""Robot hand kinematics: a small pinocchio wrapper (URDF, limits, mimic joints, FK, Jacobians)."""

from hand_ik.robot.robot_model import MimicJoint, RobotModel

__all__ = ["MimicJoint", "RobotModel"]
