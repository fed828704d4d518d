"""Launch test: bimanual teleop from the real teleop.launch.py (run by test/test_bimanual.py).

``robot_left:=hand_pose_ros_hand_left`` with the demo's two hands (true keypoints): both
hands are solved, the right robot's commands arrive on /hand/right/joint_states and the
left robot's on /hand/left/joint_states, each with its URDF's joint names and within its
limits, both moving; nothing goes to the single-robot /hand/joint_states; each retarget
node reports its own side on /diagnostics; every process exits 0 without a traceback.
"""

from __future__ import annotations

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import launch_testing
import numpy as np
import pytest
from _common import GraphListener, assert_clean_exit, record, teleop_launch, urdf_joints
from sensor_msgs.msg import JointState

from hand_pose_ros.graph_plan import joint_states_topic
from hand_pose_ros.nodes.qos import COMMAND_QOS

URDF_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "urdf")
URDF = {side: os.path.join(URDF_DIR, f"hand_pose_ros_hand_{side}.urdf")
        for side in ("right", "left")}  # fmt: skip
SIDES = ("right", "left")


@pytest.mark.launch_test
def generate_test_description():
    return teleop_launch(robot="hand_pose_ros_hand", robot_left="hand_pose_ros_hand_left",
                         estimator="truth", rate="10", use_rviz="false")  # fmt: skip


class BimanualListener(GraphListener):
    TOPICS = (*GraphListener.TOPICS,
              *((joint_states_topic(side), JointState, COMMAND_QOS) for side in SIDES))


class TestBimanualGraph(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.listener = BimanualListener()

    @classmethod
    def tearDownClass(cls):
        cls.listener.close()

    def test_both_robots_follow_their_own_hand(self):
        lis = self.listener

        def states(side: str) -> int:
            return sum(m.handedness == side for _, m in lis.get("/hand/state"))

        def commands(side: str) -> int:
            return len(lis.get(joint_states_topic(side)))

        def moved(side: str) -> float:
            q = [m.position for _, m in lis.get(joint_states_topic(side))]
            return float(np.ptp(np.array(q), axis=0).max()) if len(q) > 1 else 0.0

        # Commands are counted from when the listener matched each retarget node (started
        # at its own pace on a loaded machine), so both counts are waited for, and both
        # robots' motion: a late match can catch a side's hand in a still phase of the demo.
        self.assertTrue(lis.wait_for(lambda: min(states(s) for s in SIDES) >= 15
                                     and min(commands(s) for s in SIDES) >= 15
                                     and min(moved(s) for s in SIDES) > 0.02, 90.0),
                        f"hand states right {states('right')}, left {states('left')}; "
                        f"commands right {commands('right')}, left {commands('left')}; "
                        f"motion right {moved('right'):.3f}, left {moved('left'):.3f} rad")
        motion = {}
        for side in SIDES:
            commands = lis.get(joint_states_topic(side))
            self.assertGreaterEqual(len(commands), 15, side)
            limits = urdf_joints(URDF[side])
            positions = []
            for _, msg in commands:
                self.assertEqual(set(msg.name), set(limits), side)
                q = np.asarray(msg.position)
                lower = np.array([limits[n][0] for n in msg.name])
                upper = np.array([limits[n][1] for n in msg.name])
                self.assertTrue(np.isfinite(q).all())
                self.assertTrue(((q >= lower - 1e-6) & (q <= upper + 1e-6)).all(), side)
                positions.append(q)
            motion[side] = float(np.ptp(np.array(positions), axis=0).max())
        self.assertEqual(lis.get("/hand/joint_states"), [], "the single-robot topic is unused")
        self.assertGreater(min(motion.values()), 0.02, motion)
        names = {s.name for _, m in lis.get("/diagnostics") for s in m.status}
        self.assertLessEqual({"hand_pose_ros/retarget_right", "hand_pose_ros/retarget_left"},
                             names)  # fmt: skip
        record(hand_states={s: states(s) for s in SIDES},
               commands={s: len(lis.get(joint_states_topic(s))) for s in SIDES},
               motion_rad=motion)  # fmt: skip


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_every_process_exits_0_without_traceback(self, proc_info, proc_output):
        assert_clean_exit(self, proc_info, proc_output)
