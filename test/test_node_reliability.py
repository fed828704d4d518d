"""Bad keypoint messages on real rclpy: the IK node refuses implausible hands (counted on
/diagnostics, no hand state), survives a failing stage, and goes on with good input."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import spin_until
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter

from hand_pose_ros.nodes.qos import RESULT_PUB_QOS, RESULT_SUB_QOS
from hand_pose_ros.params import load_node_parameters


def test_ik_node_refuses_implausible_hands_and_keeps_running(rclpy_context):
    from hand_pose_ros.msg import HandKeypoints, HandState

    from hand_pose_ros.nodes.conversions import keypoints_to_msg
    from hand_pose_ros.nodes.ik_node import IKNode
    from hand_pose_ros.pipeline.demo import DemoHand

    ctx = rclpy_context
    params = load_node_parameters()["ik_node"]
    node = IKNode(context=ctx, parameter_overrides=[Parameter(k, value=v)
                                                    for k, v in params.items()])  # fmt: skip
    talker = Node("keypoint_talker", context=ctx)
    pub = talker.create_publisher(HandKeypoints, "/hand/keypoints", RESULT_PUB_QOS)
    states, diags = [], []
    talker.create_subscription(HandState, "/hand/state", states.append, RESULT_SUB_QOS)
    talker.create_subscription(DiagnosticArray, "/diagnostics",
                               lambda m: diags.extend(s for s in m.status
                                                      if s.name == "hand_pose_ros/ik"), 10)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    executor.add_node(talker)
    good = DemoHand().frame_at(0).joints_cam
    stamp = talker.get_clock().now().to_msg()
    bad = {"huge": good * 1e30, "far": good + np.array([0.0, 0.0, 1e4]),
           "scattered": np.random.default_rng(0).normal(size=(21, 3)) * 100.0}  # fmt: skip
    try:
        for joints in bad.values():
            pub.publish(keypoints_to_msg(joints, stamp=stamp, frame_id="cam"))
            before = len(diags)
            spin_until(executor, 3.0, until=lambda: len(diags) > before)  # noqa: B023
        assert states == [], "an implausible hand was published as a hand state"
        last = {kv.key: kv.value for kv in diags[-1].values}
        assert int(last["hands_refused"]) == 3 and diags[-1].level == b"\x01"
        assert "refused_wrist_depth" in last and "refused_palm_length" in last
        # A failing stage drops that message only.
        original = node.stage.solve
        node.stage.solve = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("injected"))
        pub.publish(keypoints_to_msg(good, stamp=stamp, frame_id="cam"))
        spin_until(executor, 1.0, until=lambda: node.guard.errors)
        assert node.guard.errors == {"RuntimeError": 1}
        node.stage.solve = original
        pub.publish(keypoints_to_msg(good, stamp=talker.get_clock().now().to_msg(),
                                     frame_id="cam"))  # fmt: skip
        spin_until(executor, 5.0, until=lambda: states)
        assert len(states) == 1 and np.isfinite(states[0].dof_positions).all()
        # Live: a stricter depth range refuses the same good hand; a bad value is refused.
        ok = node.set_parameters([Parameter("plausibility.max_depth_m", value=0.1)])[0]
        assert ok.successful and node.stage.config.plausibility.max_depth_m == 0.1
        bad_value = node.set_parameters([Parameter("plausibility.min_depth_m", value=0.5)])[0]
        assert not bad_value.successful and "min_depth_m" in bad_value.reason
    finally:
        executor.shutdown()
        node.destroy_node()
        talker.destroy_node()


class _FailOnce:
    """Wraps a frame producer (an iterator or a callable): its first call raises."""

    def __init__(self, inner) -> None:
        self.inner, self.calls = inner, 0

    def _first(self) -> None:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("injected frame failure")

    def __call__(self, *args, **kwargs):
        self._first()
        return self.inner(*args, **kwargs)

    def __next__(self):
        self._first()
        return next(self.inner)

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


def _write_video(path, frames: int = 20) -> None:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(frames):
        writer.write(np.full((48, 64, 3), 10 * i, np.uint8))
    writer.release()


@pytest.mark.parametrize("kind", ["demo", "camera", "keypoints"])
def test_a_failing_frame_does_not_stop_a_source(rclpy_context, tmp_path, kind):
    """Each source: one frame whose production raises is dropped and counted; it goes on."""
    if kind == "demo":
        from hand_pose_ros.nodes.demo_source import DemoSource

        node = DemoSource(context=rclpy_context,
                          parameter_overrides=[Parameter("fps", value=50.0)])  # fmt: skip
        node.demo = _FailOnce(node.demo)
    elif kind == "camera":
        from hand_pose_ros.nodes.camera_source import CameraSource

        _write_video(tmp_path / "clip.avi")
        node = CameraSource(context=rclpy_context, parameter_overrides=[
            Parameter("source", value=f"video:{tmp_path / 'clip.avi'}"),
            Parameter("fps", value=50.0)])  # fmt: skip
        node.source.read = _FailOnce(node.source.read)
    else:
        from hand_pose_ros.nodes.keypoints_player import KeypointsPlayer

        np.save(tmp_path / "take.npy", np.random.default_rng(0).normal(0, 0.05, (5, 21, 3)))
        node = KeypointsPlayer(context=rclpy_context, parameter_overrides=[
            Parameter("file", value=str(tmp_path / "take.npy")),
            Parameter("rate_hz", value=50.0)])  # fmt: skip
        node.publisher.publish = _FailOnce(node.publisher.publish)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(node)
    try:
        spin_until(executor, 5.0, until=lambda: node.frames_published >= 5)
        assert node.guard.errors == {"RuntimeError": 1}
        assert node.frames_published >= 5 and not node.finished
    finally:
        executor.shutdown()
        node.destroy_node()


def test_a_restarted_retarget_node_starts_from_the_robots_measured_joints(rclpy_context):
    """With the driver's /joint_states, the first command is one velocity-limited step from
    the robot's joints, not a jump to the hand's pose (a retarget node restarted mid-run)."""
    from hand_pose_ros.msg import HandState
    from sensor_msgs.msg import JointState

    from hand_ik.bio_dofs import BIO_DOF_NAMES
    from hand_pose_ros.nodes.conversions import joint_state_to_msg
    from hand_pose_ros.nodes.qos import COMMAND_QOS
    from hand_pose_ros.nodes.retarget_node import RetargetNode

    node = RetargetNode(context=rclpy_context)
    filt = node.stage.filter
    robot = np.clip(filt.neutral + 0.6 * (filt.upper - filt.neutral), filt.lower, filt.upper)
    helper = Node("driver_and_ik", context=rclpy_context)
    driver = helper.create_publisher(JointState, "/joint_states", COMMAND_QOS)
    states = helper.create_publisher(HandState, "/hand/state", RESULT_SUB_QOS)
    commands = []
    helper.create_subscription(JointState, "/hand/joint_states",
                               lambda m: commands.append(np.array(m.position)), COMMAND_QOS)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(node)
    executor.add_node(helper)
    try:
        spin_until(executor, 5.0, until=lambda: node.count_publishers("/joint_states") > 0)
        assert node._waiting_for_robot_state()  # a driver is there: no command before its joints
        executor.spin_once(timeout_sec=0.1)
        assert not commands
        driver.publish(joint_state_to_msg(node.joint_names, robot,
                                          stamp=node.get_clock().now().to_msg()))
        spin_until(executor, 5.0, until=lambda: node.started_from_robot_state)
        hand = HandState()
        hand.handedness, hand.dof_names = "right", list(BIO_DOF_NAMES)
        hand.dof_positions = [0.0] * len(BIO_DOF_NAMES)  # a flat hand, far from `robot`
        states.publish(hand)
        spin_until(executor, 5.0, until=lambda: len(commands) >= 1)
    finally:
        executor.shutdown()
        helper.destroy_node()
        node.destroy_node()
    step = np.abs(commands[0] - robot)
    assert np.all(step <= filt.max_velocity * 0.5 + 1e-9), step.max()  # <= 0.5 s of motion
    assert np.abs(filt.neutral - robot).max() > 0.3  # the jump it did not make
