"""Bimanual teleop on real rclpy: two hands drive two robots, each on its own topic.

The graph is built from the graph plan (``robot_left``) with the runner's own node
factory, so what runs here is what ``hand-teleop run --robot-left`` and the launch file
start: one IK node solving both hands, one retarget node per side.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REALDATA, spin_until
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import JointState

from hand_pose_ros.graph_plan import joint_states_topic, plan_graph
from hand_pose_ros.nodes.qos import COMMAND_QOS

SIDES = ("right", "left")
#: The demo's rate here: both hands are solved per frame on a shared 2-core machine.
RATE_HZ = 10.0


class Listener:
    """Every JointState on the single-robot topic and on each side's topic, timestamped."""

    def __init__(self, context) -> None:
        self.node = Node("bimanual_listener", context=context)
        self.received: dict[str | None, list[tuple[float, JointState]]] = {}
        for side in (None, *SIDES):
            self.received[side] = []
            self.node.create_subscription(
                JointState, joint_states_topic(side),
                lambda m, side=side: self.received[side].append((time.monotonic(), m)),
                COMMAND_QOS)  # fmt: skip


def _graph(context, options: dict, names: tuple[str, ...]):
    """The plan's nodes ``names`` (in plan order), a listener and an executor."""
    from hand_pose_ros.cli.run import _create_node

    plan = plan_graph(options)
    assert plan.bimanual
    nodes = {name: _create_node(name, plan, context) for name in plan.node_names
             if name in names}  # fmt: skip
    listener = Listener(context)
    executor = SingleThreadedExecutor(context=context)
    for node in [*nodes.values(), listener.node]:
        executor.add_node(node)
    return plan, nodes, listener, executor


def _close(nodes: dict, listener: Listener, executor) -> None:
    executor.shutdown()
    for node in [*nodes.values(), listener.node]:
        node.destroy_node()


def _left_robot() -> tuple[str, str]:
    """(robot_left, urdf_left): the Allegro left hand, whose joint names differ from our
    hand's, where the real robot URDFs are available; else our left hand."""
    urdf = REALDATA / "robots"
    return ("allegro_left", str(urdf)) if urdf.is_dir() else ("hand_pose_ros_hand_left", "")


@pytest.fixture
def demo_graph(rclpy_context):
    """Demo (two hands, true keypoints) -> IK -> right and left retarget nodes."""
    robot_left, urdf_left = _left_robot()
    options = {"estimator": "truth", "robot_left": robot_left, "urdf_left": urdf_left,
               "rate": RATE_HZ}  # fmt: skip
    built = _graph(rclpy_context, options, ("demo_source", "ik_node", "retarget_node",
                                            "retarget_left_node"))  # fmt: skip
    yield built
    _close(*built[1:])


def test_both_robots_follow_their_own_hand_with_their_own_joint_names(demo_graph):
    plan, nodes, listener, executor = demo_graph
    ik = nodes["ik_node"]
    robots = {side: nodes[plan.robot_nodes[side]] for side in SIDES}
    received = listener.received
    source = nodes["demo_source"]
    # 3 s of the script (the right hand: open, fist, open; the left one half a pass later),
    # both hands solved on at least 15 frames (the IK keeps up with neither at 10 Hz here).
    spin_until(executor, 120.0, until=lambda: source.frames_published >= 3 * RATE_HZ
               and min(ik.states_by_side[s] for s in SIDES) >= 15)  # fmt: skip
    spin_until(executor, 0.2)  # the last commands
    # The IK solves and publishes both hands (left ones mirrored, reported as left), fairly:
    # neither starves behind the other.
    assert ik.states_by_side["right"] >= 15 and ik.states_by_side["left"] >= 15, ik.states_by_side
    assert received[None] == [], "bimanual commands must not go to the single-robot topic"
    motion = {}
    for side in SIDES:
        robot = robots[side].stage.retargeter.robot
        assert robots[side].hand_side == side
        assert len(received[side]) >= 15, side
        positions = []
        for _, msg in received[side]:
            assert list(msg.name) == list(robot.joint_names), side
            q = np.asarray(msg.position)
            assert np.isfinite(q).all()
            assert (q >= robot.lower - 1e-9).all() and (q <= robot.upper + 1e-9).all()
            positions.append(q)
        motion[side] = float(np.ptp(np.array(positions), axis=0).max())
    # Both robots move: both hands of the demo perform the script.
    assert motion["right"] > 0.02 and motion["left"] > 0.02, motion
    if robots["right"].joint_names != robots["left"].joint_names:
        assert set(robots["right"].joint_names).isdisjoint(robots["left"].joint_names)


@pytest.fixture
def ik_graph(rclpy_context):
    """IK -> right and left retarget nodes (short hold, fast ease), fed by the test."""
    from rclpy.parameter import Parameter

    from hand_pose_ros.cli.run import _create_node

    plan = plan_graph({"robot_left": "hand_pose_ros_hand_left", "source": "ros"})
    listener = Listener(rclpy_context)
    executor = SingleThreadedExecutor(context=rclpy_context)
    nodes = {}
    for name in ("ik_node", "retarget_node", "retarget_left_node"):
        nodes[name] = _create_node(name, plan, rclpy_context)
        executor.add_node(nodes[name])
    for side in SIDES:
        results = nodes[plan.robot_nodes[side]].set_parameters([
            Parameter("filter.hold_s", value=HOLD_S),
            Parameter("filter.ease_velocity_fraction", value=1.0)])  # fmt: skip
        assert all(r.successful for r in results)
    executor.add_node(listener.node)
    yield plan, nodes, listener, executor
    _close(nodes, listener, executor)


#: The hand-lost hold in the hand-lost test, seconds (config/teleop.yaml: 0.5).
HOLD_S = 0.4


def test_a_lost_hand_holds_then_eases_its_robot_while_the_other_keeps_tracking(ik_graph):
    from hand_pose_ros.msg import HandKeypoints

    from hand_pose_ros.nodes.conversions import keypoints_to_msg
    from hand_pose_ros.pipeline.demo import DemoHand

    plan, nodes, listener, executor = ik_graph
    ik = nodes["ik_node"]
    robots = {side: nodes[plan.robot_nodes[side]] for side in SIDES}
    received = listener.received
    demo = DemoHand(hands=2)
    demo.render = lambda *vertices: None  # keypoints only
    frames = [demo.frame_at(i) for i in range(0, 160, 4)]
    pub = listener.node.create_publisher(HandKeypoints, "/hand/keypoints", 10)
    spin_until(executor, 5.0, until=lambda: pub.get_subscription_count() > 0)

    def feed(frame, sides) -> None:
        """Publish the keypoints of the hands of ``sides``; spin until the IK solved them."""
        stamp = listener.node.get_clock().now().to_msg()
        for hand in frame.hands:
            if hand.handedness in sides:
                pub.publish(keypoints_to_msg(hand.joints_cam, stamp=stamp,
                                             frame_id="camera_optical_frame",
                                             handedness=hand.handedness, image_points=hand.uv,
                                             track_id=hand.track_id))  # fmt: skip
        before = ik.frames + len(sides)
        spin_until(executor, 10.0, until=lambda: ik.frames >= before)
        spin_until(executor, 0.01)  # the states reach the retarget nodes

    for frame in frames[:10]:  # both hands tracked
        feed(frame, SIDES)
    assert ik.states_by_side["right"] >= 8 and ik.states_by_side["left"] >= 8, ik.states_by_side
    assert all(robots[s].last_state_t is not None for s in SIDES)
    n_left, n_right = len(received["left"]), len(received["right"])
    lost_at = time.monotonic()
    k = 10
    while time.monotonic() - lost_at < HOLD_S + 1.5:  # the left hand is gone; the right
        feed(frames[k], ("right",))                  # one keeps moving, at about 15 Hz
        k = 10 + (k - 9) % (len(frames) - 10)
        spin_until(executor, 1.0 / 15.0)

    # The right robot kept tracking its moving hand.
    assert robots["right"].stage.hand_lost_s is not None
    assert robots["right"].stage.hand_lost_s < HOLD_S
    right = np.array([m.position for _, m in received["right"][n_right:]])
    assert len(right) >= 5 and np.ptp(right, axis=0).max() > 0.02
    # The left robot: its hand-lost policy's commands, held, then eased to neutral.
    assert robots["left"].stage.hand_lost_s > HOLD_S + 0.5
    neutral = robots["left"].stage.filter.neutral
    left = np.array([m.position for _, m in received["left"][n_left:]])
    assert len(left) >= 10
    distance = np.abs(left - neutral).max(axis=1)  # radians, the farthest joint
    assert distance[0] > 0.05, "the left hand's pose was neutral already: nothing to ease"
    steps = np.abs(np.diff(left, axis=0)).max(axis=1)
    # Held: the same command repeated (after at most the tracked hand's last commands) ...
    hold = int(np.flatnonzero(steps <= 1e-9)[0])
    assert (steps[hold:hold + 2] <= 1e-9).all(), steps
    # ... then eased, only toward neutral, ending closer than where the hand was lost.
    assert (np.diff(distance[hold:]) <= 1e-9).all()
    assert distance[-1] < distance[hold] - 0.02


def test_single_robot_graph_is_unchanged_by_the_bimanual_options():
    plan = plan_graph({"estimator": "truth"})
    assert not plan.bimanual and plan.robot_nodes == {None: "retarget_node"}
    assert "hand_side" not in plan.node("retarget_node").overrides
    assert plan.parameters("retarget_node")["joint_states_topic"] == "/hand/joint_states"
    assert plan.parameters("retarget_node")["hand_side"] == "any"
    assert plan.parameters("ik_node")["max_hands"] == 1
    assert plan.parameters("demo_source")["hands"] == 1


def test_two_robot_state_nodes_keep_their_robots_apart_in_tf(rclpy_context):
    """hand-teleop run's robot state nodes: the left robot's frames are prefixed and placed
    at its own base, its model on /left/robot_description; nothing collides in TF."""
    from rclpy.qos import QoSProfile
    from std_msgs.msg import String
    from tf2_msgs.msg import TFMessage

    from hand_ik.retarget import load_retargeting_config
    from hand_pose_ros.nodes.qos import LATCHED_QOS, TF_QOS
    from hand_pose_ros.nodes.robot_state_node import RobotStateNode
    from hand_pose_ros.scene_frames import LEFT_ROBOT_BASE_XYZ, ROBOT_BASE_XYZ, WORLD_FRAME

    urdf = {side: Path(load_retargeting_config(name).require_urdf()) for side, name in
            (("right", "hand_pose_ros_hand"), ("left", "hand_pose_ros_hand_left"))}  # fmt: skip
    robots = {side: RobotStateNode(context=rclpy_context, urdf=urdf[side], side=side)
              for side in SIDES}  # fmt: skip
    listener = Node("tf_listener", context=rclpy_context)
    static, tf, descriptions = [], [], {}
    # tf2's static listener keeps 100: one latched message per robot state node.
    static_qos = QoSProfile(depth=10, reliability=LATCHED_QOS.reliability,
                            durability=LATCHED_QOS.durability)  # fmt: skip
    listener.create_subscription(TFMessage, "/tf_static", static.append, static_qos)
    listener.create_subscription(TFMessage, "/tf", tf.append, TF_QOS)
    for topic in ("/robot_description", "/left/robot_description"):
        listener.create_subscription(
            String, topic, lambda m, topic=topic: descriptions.__setitem__(topic, m.data),
            LATCHED_QOS)  # fmt: skip
    pubs = {side: listener.create_publisher(JointState, joint_states_topic(side), COMMAND_QOS)
            for side in SIDES}  # fmt: skip
    executor = SingleThreadedExecutor(context=rclpy_context)
    for node in [*robots.values(), listener]:
        executor.add_node(node)
    try:
        spin_until(executor, 10.0, until=lambda: len(static) >= 2 and len(descriptions) == 2
                   and all(p.get_subscription_count() for p in pubs.values()))  # fmt: skip
        for side in SIDES:
            names = robots[side].joint_names
            pubs[side].publish(JointState(name=list(names), position=[0.1] * len(names)))
        spin_until(executor, 10.0, until=lambda: len(tf) >= 2)
    finally:
        executor.shutdown()
        for node in [*robots.values(), listener]:
            node.destroy_node()
    assert descriptions["/left/robot_description"] == urdf["left"].read_text()
    assert descriptions["/robot_description"] == urdf["right"].read_text()
    children = {side: set() for side in SIDES}
    placed = {}
    for msg in (*static, *tf):
        for t in msg.transforms:
            side = "left" if t.child_frame_id.startswith("left/") else "right"
            if t.child_frame_id == "camera_optical_frame":
                continue
            children[side].add(t.child_frame_id)
            if t.header.frame_id == WORLD_FRAME:
                placed[side] = (t.transform.translation.x, t.transform.translation.y,
                                t.transform.translation.z)  # fmt: skip
            else:  # a link's parent is a link of the same robot
                assert t.header.frame_id.startswith("left/") == (side == "left")
    assert children["left"] and all(c.startswith("left/") for c in children["left"])
    unprefixed = {c.removeprefix("left/") for c in children["left"]}
    assert unprefixed == children["right"], unprefixed ^ children["right"]
    assert placed == {"right": ROBOT_BASE_XYZ, "left": LEFT_ROBOT_BASE_XYZ}


def test_the_launch_file_runs_both_robots(tmp_path):
    """The real `ros2 launch` with robot_left:= (test/launch_tests/launch_bimanual.py)."""
    from test_launch import run_launch_test

    data = run_launch_test("launch_bimanual", 105, tmp_path)
    assert min(data["hand_states"].values()) >= 15


def test_a_bimanual_recording_holds_both_robots(tmp_path):
    """``hand-teleop run --robot-left ... --record``: each robot's commands on its own topic,
    both descriptions, and both link trees on /tf (the left one's frames prefixed)."""
    from hand_pose_ros.cli.main import main
    from hand_pose_ros.io.mcap_recorder import read_messages
    from hand_pose_ros.scene_frames import LEFT_ROBOT_FRAME_PREFIX

    path = tmp_path / "both.mcap"
    code = main(["run", "--frames", "20", "--record", str(path), "--estimator", "truth",
                 "--robot-left", "hand_pose_ros_hand_left"])  # fmt: skip
    assert code == 0
    topics: dict[str, list] = {}
    for message in read_messages(path):
        topics.setdefault(message.topic, []).append(message.msg)
    for side in SIDES:
        commands = topics.get(joint_states_topic(side), [])
        assert commands, f"no {side} commands recorded"
        assert len(commands[0].name) == len(commands[0].position) > 0
    assert "/hand/joint_states" not in topics
    assert topics["/robot_description"] and topics["/left/robot_description"]
    children = {t.child_frame_id for m in topics["/tf"] for t in m.transforms}
    assert any(c.startswith(LEFT_ROBOT_FRAME_PREFIX) for c in children)
    assert any(not c.startswith(LEFT_ROBOT_FRAME_PREFIX) for c in children)
