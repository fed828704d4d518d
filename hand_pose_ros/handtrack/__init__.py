"""Hand tracking on the real-trained palm detector and landmark networks (ROS-free)."""

from hand_pose_ros.handtrack.config import HandTrackConfig
from hand_pose_ros.handtrack.graph import HandTrackGraph, create_hand_tracker

__all__ = ["HandTrackConfig", "HandTrackGraph", "create_hand_tracker"]
