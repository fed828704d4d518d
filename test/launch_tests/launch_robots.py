"""Launch test: teleop.launch.py with robot:= every shipped robot config (test/test_launch.py).

Each config is launched with its URDF (our hand's from urdf/, the others from the dex-urdf
robots folder in HAND_POSE_ROS_ROBOTS_DIR): the retargeting node publishes commands with
exactly the URDF's movable joints, finite and within the limits (the hand-lost neutral
pose until the IK is up), and the launch shuts down cleanly, even while a node is still
importing.
"""

from __future__ import annotations

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import launch_testing
import numpy as np
import pytest
from _common import GraphListener, assert_clean_exit, teleop_launch, urdf_joints

from hand_ik.retarget import available_robot_configs, load_retargeting_config

ROBOTS_DIR = os.environ.get("HAND_POSE_ROS_ROBOTS_DIR", "")
#: left | right: only that side's configs (the driver runs the two halves separately).
SIDE = os.environ.get("HAND_POSE_ROS_ROBOT_SIDE", "")
ROBOTS = [r for r in available_robot_configs()
          if not SIDE or r.endswith("_left") == (SIDE == "left")]  # fmt: skip


def domain_id(robot: str) -> int:
    """One ROS domain per launch (120-131: the launch tests' range is 100-140)."""
    return 120 + available_robot_configs().index(robot)


@pytest.mark.launch_test
@launch_testing.parametrize("robot", ROBOTS)
def generate_test_description(robot):
    urdf = "" if robot.startswith("hand_pose_ros_hand") else ROBOTS_DIR
    # The demo's own keypoints: this checks every robot's commands, not the estimator.
    return teleop_launch(domain_id(robot), robot=robot, urdf=urdf, use_rviz="false",
                         estimator="truth")


class TestRobot(unittest.TestCase):
    def test_commands_carry_the_urdf_joints_within_limits(self, robot):
        lis = GraphListener(domain_id(robot))
        self.addCleanup(lis.close)
        self.assertTrue(lis.wait_for(lambda: len(lis.get("/hand/joint_states")) >= 5, 40.0),
                        f"{robot}: no commands")  # fmt: skip
        urdf = "" if robot.startswith("hand_pose_ros_hand") else ROBOTS_DIR
        limits = urdf_joints(load_retargeting_config(robot, urdf=urdf or None).require_urdf())
        for _, msg in lis.get("/hand/joint_states"):
            self.assertEqual(sorted(msg.name), sorted(limits), robot)
            q = np.asarray(msg.position)
            lower = np.array([limits[n][0] for n in msg.name])
            upper = np.array([limits[n][1] for n in msg.name])
            self.assertTrue(np.isfinite(q).all(), robot)
            self.assertTrue(((q >= lower - 1e-6) & (q <= upper + 1e-6)).all(), robot)


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_every_process_exits_0_without_traceback(self, proc_info, proc_output):
        assert_clean_exit(self, proc_info, proc_output)
