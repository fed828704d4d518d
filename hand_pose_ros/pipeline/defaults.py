"""Defaults that several stage configs, CLI flags and launch arguments share (one place each).

Config dataclasses use these as field defaults; CLI parsers and launch files that offer the
same setting read them from here instead of repeating the literal.
"""

from __future__ import annotations

DEFAULT_ROBOT = "hand_pose_ros_hand"
"""Robot hand driven when none is named (config/robots/hand_pose_ros_hand.yaml)."""
DEFAULT_HFOV_DEG = 65.0
"""Horizontal field of view, degrees, assumed for a camera without calibration."""
DEFAULT_HAND_MODEL = "open"
"""Human hand model of the IK and of the retargeting's re-posed hand ('open': shipped)."""
