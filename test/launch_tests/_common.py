"""Helpers of the launch tests (run by `launch_test`, driven from test/test_launch.py).

Not collected by pytest: the launch tests import ROS' launch packages, which plain
`pytest` never loads (pytest.ini disables the launch_testing plugin).
"""

from __future__ import annotations

import json
import os
import threading
import time
import unittest
import xml.etree.ElementTree as ET
from collections import defaultdict

import launch
import launch_testing.actions
import rclpy
from ament_index_python.packages import get_package_share_directory
from diagnostic_msgs.msg import DiagnosticArray
from hand_pose_ros.msg import HandKeypoints, HandState
from launch.actions import IncludeLaunchDescription, SetEnvironmentVariable
from launch.launch_description_sources import PythonLaunchDescriptionSource
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import JointState
from visualization_msgs.msg import MarkerArray

from hand_pose_ros.nodes.qos import COMMAND_QOS, RESULT_SUB_QOS

#: Wall-clock time when the test's launch description was made (the launch starts then).
LAUNCH_T0: list[float] = []


def teleop_launch(domain_id: int | None = None, **arguments: str) -> launch.LaunchDescription:
    """The installed launch/teleop.launch.py with ``arguments``, then ReadyToTest.

    ``domain_id``: a ROS_DOMAIN_ID for this launch's processes (several launches of one
    test file must not hear each other's late messages); default: the environment's.
    """
    LAUNCH_T0[:] = [time.monotonic()]
    path = os.path.join(get_package_share_directory("hand_pose_ros"), "launch",
                        "teleop.launch.py")  # fmt: skip
    domain = [] if domain_id is None else [SetEnvironmentVariable("ROS_DOMAIN_ID",
                                                                  str(domain_id))]  # fmt: skip
    return launch.LaunchDescription([
        *domain,
        IncludeLaunchDescription(PythonLaunchDescriptionSource(path),
                                 launch_arguments=list(arguments.items())),
        launch_testing.actions.ReadyToTest(),
    ])  # fmt: skip


def urdf_joints(path: str) -> dict[str, tuple[float, float]]:
    """Movable (non-fixed) joints of a URDF: name -> (lower, upper) in radians."""
    joints = {}
    for joint in ET.parse(path).getroot().findall("joint"):
        if joint.get("type") in ("fixed", "floating", "planar"):
            continue
        limit = joint.find("limit")
        lower = float(limit.get("lower", "-inf")) if limit is not None else float("-inf")
        upper = float(limit.get("upper", "inf")) if limit is not None else float("inf")
        if joint.get("type") == "continuous":
            lower, upper = float("-inf"), float("inf")
        joints[joint.get("name")] = (lower, upper)
    return joints


class GraphListener:
    """Subscribes to the teleop topics in its own context and records (time, message)."""

    TOPICS = (("/hand/joint_states", JointState, COMMAND_QOS),
              ("/hand/state", HandState, RESULT_SUB_QOS),
              ("/hand/keypoints", HandKeypoints, RESULT_SUB_QOS),
              ("/hand/markers", MarkerArray, RESULT_SUB_QOS),
              ("/diagnostics", DiagnosticArray, 10))  # fmt: skip

    def __init__(self, domain_id: int | None = None) -> None:
        self.context = rclpy.context.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = Node("launch_test_listener", context=self.context)
        self.messages: dict[str, list] = defaultdict(list)
        self.lock = threading.Lock()
        for topic, msg_type, qos in self.TOPICS:
            self.node.create_subscription(msg_type, topic, self._recorder(topic), qos)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _recorder(self, topic: str):
        def record(msg) -> None:
            with self.lock:
                self.messages[topic].append((time.monotonic(), msg))
        return record

    def _spin(self) -> None:
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # the context shut down under us: done
                return

    def get(self, topic: str) -> list:
        with self.lock:
            return list(self.messages[topic])

    def wait_for(self, condition, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.05)
        return condition()

    def diagnostics(self, name: str) -> list[tuple[float, str, dict[str, str]]]:
        """(time, message, values) of the ``hand_pose_ros/<name>`` statuses received."""
        out = []
        for t, msg in self.get("/diagnostics"):
            for status in msg.status:
                if status.name == f"hand_pose_ros/{name}":
                    out.append((t, status.message, {kv.key: kv.value for kv in status.values}))
        return out

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)
        self.thread.join(timeout=2.0)


def assert_clean_exit(test_case, proc_info, proc_output) -> None:
    """Every process exited with 0 and printed no traceback."""
    launch_testing.asserts.assertExitCodes(proc_info)
    for process in proc_output.processes():
        text = "".join(event.text.decode(errors="replace") for event in proc_output[process])
        test_case.assertNotIn("Traceback", text, f"{process}: {text[-2000:]}")


def record(**values) -> None:
    """Add measured values to the JSON file the pytest driver reads (if it asked for one)."""
    path = os.environ.get("HAND_POSE_ROS_LAUNCH_RESULTS")
    if not path:
        return
    data = json.loads(open(path).read()) if os.path.exists(path) else {}
    data.update(values)
    with open(path, "w") as fh:
        json.dump(data, fh, indent=1)


class GraphTestCase(unittest.TestCase):
    """A launch test case with one :class:`GraphListener` for the whole class."""

    @classmethod
    def setUpClass(cls):
        cls.listener = GraphListener()

    @classmethod
    def tearDownClass(cls):
        cls.listener.close()
