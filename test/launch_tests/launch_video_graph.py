"""Launch test: a real video through the default image estimator (test/test_launch.py).

source:=video:<HAND_POSE_ROS_VIDEO> with no estimator argument: the estimator node runs
config/teleop.yaml's default estimator, finds the hand, and the robot follows it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import launch_testing
import numpy as np
import pytest
from _common import LAUNCH_T0, GraphTestCase, assert_clean_exit, record, teleop_launch

from hand_pose_ros.params import load_node_parameters

DEFAULT_ESTIMATOR = load_node_parameters()["estimator_node"]["estimator"]

#: ros2 CLI without a daemon, patient with discovery on a loaded machine.
DISCOVERY = ("--no-daemon", "--spin-time", "3", "--timeout", "15")


@pytest.mark.launch_test
def generate_test_description():
    return teleop_launch(source=f"video:{os.environ['HAND_POSE_ROS_VIDEO']}", use_rviz="false")


class TestVideoGraph(GraphTestCase):
    def test_default_estimator_drives_the_robot(self):
        lis = self.listener
        self.assertTrue(lis.wait_for(lambda: len(lis.get("/hand/state")) >= 15, 55.0),
                        f"keypoints {len(lis.get('/hand/keypoints'))}, "
                        f"hand states {len(lis.get('/hand/state'))}")  # fmt: skip
        got = subprocess.run(["ros2", "param", "get", *DISCOVERY, "/estimator_node",
                              "estimator"], capture_output=True, text=True, timeout=30)  # fmt: skip
        self.assertIn(f"String value is: {DEFAULT_ESTIMATOR}", got.stdout, got.stderr)
        keypoints = lis.get("/hand/keypoints")
        self.assertEqual(lis.node.count_publishers("/hand/keypoints"), 1)  # the estimator
        right = sum(m.handedness == "right" for _, m in keypoints)
        self.assertGreater(right / len(keypoints), 0.5, "the video shows a right hand")
        commands = [(t, m) for t, m in lis.get("/hand/joint_states")
                    if t >= lis.get("/hand/state")[0][0]]  # fmt: skip
        positions = np.array([m.position for _, m in commands])
        self.assertTrue(np.isfinite(positions).all())
        self.assertGreater(np.ptp(positions, axis=0).max(), 0.05, "the robot does not move")
        est = [v for _, _, v in lis.diagnostics("estimator")]
        record(video_estimator=DEFAULT_ESTIMATOR,
               video_first_state_s=round(lis.get("/hand/state")[0][0] - LAUNCH_T0[0], 2),
               video_estimator_ms_median=round(float(np.median(
                   [float(v["estimator_ms"]) for v in est])), 1),
               video_hand_rate=float(est[-1]["hand_rate"]))  # fmt: skip


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_every_process_exits_0_without_traceback(self, proc_info, proc_output):
        assert_clean_exit(self, proc_info, proc_output)
