"""Launch test: the demo graph from the real teleop.launch.py (run by test/test_launch.py).

The demo hand drives IK and retargeting; the robot commands carry the URDF's joint names,
are finite and within the limits, arrive at the IK's rate with no silence longer than the
hand-lost policy allows; every topic is alive; `ros2 param set` applies a live parameter
and refuses invalid ones with a reason; every process exits 0 without a traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import launch_testing
import numpy as np
import pytest
from _common import (
    LAUNCH_T0,
    GraphTestCase,
    assert_clean_exit,
    record,
    teleop_launch,
    urdf_joints,
)

from hand_pose_ros.params import load_node_parameters

RETARGET = load_node_parameters()["retarget_node"]
IK = load_node_parameters()["ik_node"]
URDF = os.path.join(os.path.dirname(__file__), "..", "..", "urdf", "hand_pose_ros_hand_right.urdf")

#: ros2 CLI without a daemon, patient with discovery on a loaded machine.
DISCOVERY = ("--no-daemon", "--spin-time", "2", "--timeout", "15")


@pytest.mark.launch_test
def generate_test_description():
    return teleop_launch()  # every default: demo source, our hand, RViz etc. where installed


def ros2(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ros2", *args], capture_output=True, text=True, timeout=30)


class TestDemoGraph(GraphTestCase):
    def test_1_commands_follow_the_demo_hand(self):
        lis = self.listener
        self.assertTrue(lis.wait_for(lambda: len(lis.get("/hand/state")) >= 40, 50.0),
                        f"hand states: {len(lis.get('/hand/state'))}")  # fmt: skip
        commands = lis.get("/hand/joint_states")
        states = lis.get("/hand/state")
        t_state0 = states[0][0]
        # Launch to first command, and to the first command that follows a hand state.
        first_any = commands[0][0] - LAUNCH_T0[0]
        first_tracking = next(t for t, _ in commands if t >= t_state0) - LAUNCH_T0[0]
        # Rate and gaps over the tracking part (the first hand state onwards).
        window = [(t, m) for t, m in commands if t >= t_state0]
        times = np.array([t for t, _ in window])
        rate = (len(times) - 1) / (times[-1] - times[0])
        state_times = np.array([t for t, _ in states])
        state_rate = (len(state_times) - 1) / (state_times[-1] - state_times[0])
        # Gaps once warm (the first second of tracking includes first-call set-up).
        gaps = np.diff(times[times >= t_state0 + 1.0])
        limits = urdf_joints(URDF)
        for _, msg in commands:
            self.assertEqual(set(msg.name), set(limits))
            q = np.asarray(msg.position)
            self.assertTrue(np.isfinite(q).all())
            lower = np.array([limits[n][0] for n in msg.name])
            upper = np.array([limits[n][1] for n in msg.name])
            self.assertTrue(((q >= lower - 1e-6) & (q <= upper + 1e-6)).all())
        # One command per hand state (at least), and (95 % of the time: the machine is shared)
        # no silence longer than the hand-lost timeout plus one policy tick.
        self.assertGreaterEqual(rate, 0.9 * state_rate)
        max_gap = RETARGET["hand_lost_timeout_s"] + 1.0 / RETARGET["rate_hz"] + 0.15
        worst = int(np.argmax(gaps))
        self.assertLessEqual(np.percentile(gaps, 95), max_gap,
                             f"gap {worst} of {len(gaps)}; "
                             f"gaps: {np.round(np.sort(gaps)[-8:], 3)}")  # fmt: skip
        positions = np.array([m.position for _, m in window])
        self.assertGreater(np.ptp(positions, axis=0).max(), 0.05, "the robot does not move")
        retarget = [v for _, _, v in self.listener.diagnostics("retarget")][-20:]
        latency = [float(v["latency_image_to_command_ms"]) for v in retarget]
        ik = [v for _, _, v in self.listener.diagnostics("ik")][-20:]
        record(first_command_s=round(first_any, 2),
               first_tracking_command_s=round(first_tracking, 2),
               command_rate_hz=round(rate, 2), hand_state_rate_hz=round(state_rate, 2),
               max_command_gap_s=round(float(gaps.max()), 3),
               latency_image_to_command_ms_median=round(float(np.median(latency)), 1),
               ik_ms_median=round(float(np.median([float(v["ik_ms"]) for v in ik])), 1),
               diag_retarget_rate_hz=float(retarget[-1]["rate_hz"]))  # fmt: skip

    def test_2_topics_alive(self):
        lis = self.listener
        for topic in ("/hand/keypoints", "/hand/markers", "/diagnostics", "/hand/state"):
            self.assertTrue(lis.wait_for(lambda t=topic: len(lis.get(t)) >= 5, 20.0), topic)
        names = {s.name for _, m in lis.get("/diagnostics") for s in m.status}
        self.assertLessEqual({"hand_pose_ros/ik", "hand_pose_ros/retarget"}, names)
        # /hand/keypoints has exactly one publisher: the estimator on the demo's image (the
        # demo source publishes none unless estimator:=truth).
        self.assertEqual(lis.node.count_publishers("/hand/keypoints"), 1)

    def test_3_param_set_applies_or_refuses(self):
        lis = self.listener
        done = ros2("param", "set", *DISCOVERY, "/ik_node", "publish_markers", "false")
        self.assertIn("Set parameter successful", done.stdout, done.stdout + done.stderr)
        time.sleep(1.0)  # markers in flight
        before = len(lis.get("/hand/markers"))
        states = len(lis.get("/hand/state"))
        lis.wait_for(lambda: len(lis.get("/hand/state")) >= states + 10, 10.0)
        self.assertGreaterEqual(len(lis.get("/hand/state")), states + 10)
        self.assertEqual(len(lis.get("/hand/markers")), before, "markers still published")
        refused = {
            ("/ik_node", "min_score", "2.0"): "must be a number in [0, 1]",
            ("/retarget_node", "robot", "allegro"): "restart the node",
            ("/retarget_node", "filter.hold_s", "-1.0"): "hold_s",
        }
        for (node, name, value), reason in refused.items():
            out = ros2("param", "set", *DISCOVERY, node, name, value)
            self.assertIn(f"Setting parameter failed: {name}: ", out.stderr, out.stderr)
            self.assertIn(reason, out.stderr)
        got = ros2("param", "get", *DISCOVERY, "/ik_node", "min_score")
        self.assertIn(f"Double value is: {IK['min_score']}", got.stdout)  # unchanged


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_every_process_exits_0_without_traceback(self, proc_info, proc_output):
        assert_clean_exit(self, proc_info, proc_output)
