"""Faults across processes (real rclpy, one process per node, this session's isolated
ROS domain): stages killed and restarted while the demo runs, a burst of 1,000 messages,
a 1 kHz flood, an 8K image. The robot side must hold, ease and resume without a jump,
and no node may die."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import JointState

from hand_pose_ros.benchmarks.soak import dump_stacks, start_node_process, stop_node_processes
from hand_pose_ros.nodes.qos import COMMAND_QOS, RESULT_PUB_QOS, RESULT_SUB_QOS

#: The demo graph on the demo's own keypoints (the estimator has its own tests).
GRAPH = (("demo_source", {"publish_keypoints": True, "fps": 20.0}), ("ik_node", {}),
         ("retarget_node", {}))  # fmt: skip


class Listener:
    """Records /hand/joint_states and /hand/state arrival times in this process."""

    def __init__(self, context) -> None:
        from hand_pose_ros.msg import HandState

        self.node = Node("fault_listener", context=context)
        self.commands: list[tuple[float, np.ndarray]] = []
        self.states: list[float] = []
        self.node.create_subscription(JointState, "/hand/joint_states", lambda m: self.commands
                                      .append((time.monotonic(), np.array(m.position))),
                                      COMMAND_QOS)  # fmt: skip
        self.node.create_subscription(HandState, "/hand/state",
                                      lambda m: self.states.append(time.monotonic()),
                                      RESULT_SUB_QOS)  # fmt: skip
        self.tracking: list[float] = []
        """Arrival times of the retarget node's "tracking" diagnostics (driven by a hand)."""
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name == "hand_pose_ros/retarget" and status.message == "tracking":
                self.tracking.append(time.monotonic())

    def spin(self, seconds: float, until=None) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.02)
            if until is not None and until():
                return True
        return until is None

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


@pytest.fixture(scope="module")
def graph():
    """One graph for the module's tests (start-up costs about 20 s on this CPU); a test that
    kills a stage restarts it."""
    import rclpy

    context = rclpy.context.Context()
    rclpy.init(context=context)
    env = dict(os.environ)
    procs = {name: start_node_process(name, params, env) for name, params in GRAPH}
    listener = Listener(context)
    try:
        # Both ends observed: hand states (IK -> here) and commands (retarget -> here). The
        # retarget node commands from its start, but this listener can match its publisher
        # after the states' (discovery on a busy machine): a test must not start before.
        flowing = lambda: len(listener.states) >= 5 and len(listener.commands) >= 5  # noqa: E731
        assert listener.spin(90.0, until=flowing), \
            {n: p.stderr.read()[-500:] for n, p in procs.items() if p.poll() is not None}
        yield procs, listener, env
    finally:
        listener.close()
        codes = stop_node_processes(procs)
        rclpy.shutdown(context=context)
    assert all(code == 0 for code in codes.values()), codes


def _no_jumps(commands, since: float, max_step: float = 0.5) -> None:
    """Consecutive commands after ``since`` differ by at most ``max_step`` rad per joint
    (the filter's velocity limits at 30 Hz are far below this; a jump would exceed it)."""
    q = np.array([c for t, c in commands if t >= since])
    assert np.isfinite(q).all()
    if len(q) > 1:
        assert np.abs(np.diff(q, axis=0)).max() <= max_step


@pytest.mark.parametrize("stage", ["ik_node", "demo_source"])
def test_a_killed_stage_is_held_then_eased_and_resumes_after_restart(graph, stage):
    procs, listener, env = graph
    params = dict(GRAPH)[stage]
    procs[stage].send_signal(signal.SIGKILL)
    procs[stage].wait(10)
    killed_at = time.monotonic()
    listener.spin(4.0)  # hand lost: the retarget node holds, then eases
    # >= 20 commands in 4 s (30 Hz): a stall of 1-2 s after the kill (see the retarget test
    # below) is allowed, a robot side that stops is not.
    during = [t for t, _ in listener.commands if t > killed_at]
    assert len(during) >= 20, "the robot side stopped publishing while a stage was down: " \
        + dump_stacks(procs["retarget_node"])
    assert not [t for t in listener.states if t > killed_at + 0.5]
    procs[stage] = start_node_process(stage, params, env)
    restarted_at = time.monotonic()
    assert listener.spin(90.0, until=lambda: listener.states[-1] > restarted_at), \
        f"no hand state since the restart: {dump_stacks(procs[stage])}"
    first_state = listener.states[-1]
    listener.spin(2.0)
    # Commands follow the hand again within 2 s of the restarted stage's first message.
    resumed = [t for t in listener.states if t > first_state]
    assert resumed and resumed[0] - first_state < 2.0
    print(f"{stage}: first hand state {first_state - restarted_at:.1f} s after the restart")
    _no_jumps(listener.commands, killed_at)
    assert all(p.poll() is None for p in procs.values())


def test_burst_and_flood_of_keypoints_do_not_stop_the_graph(graph):
    from hand_pose_ros.msg import HandKeypoints

    from hand_pose_ros.nodes.conversions import keypoints_to_msg
    from hand_pose_ros.pipeline.demo import DemoHand

    procs, listener, _ = graph
    talker = Node("flooder", context=listener.node.context)
    pub = talker.create_publisher(HandKeypoints, "/hand/keypoints", RESULT_PUB_QOS)
    joints = DemoHand().frame_at(0).joints_cam
    rng = np.random.default_rng(0)
    msgs = [keypoints_to_msg(joints + rng.normal(0, 0.002, joints.shape), stamp=talker
                             .get_clock().now().to_msg(), frame_id="cam") for _ in range(50)]
    start = time.monotonic()
    for i in range(1000):  # a burst: 1,000 messages at once
        pub.publish(msgs[i % len(msgs)])
    flood_end = time.monotonic() + 3.0
    while time.monotonic() < flood_end:  # then about 1 kHz for 3 s
        pub.publish(msgs[int(time.monotonic() * 1000) % len(msgs)])
        listener.executor.spin_once(timeout_sec=0.0)
        time.sleep(0.001)
    talker.destroy_node()
    listener.spin(3.0)
    assert all(p.poll() is None for p in procs.values()), "a node died under the flood"
    assert [t for t in listener.states if t > flood_end + 1.0], "no hand state after the flood"
    _no_jumps(listener.commands, start)


def test_an_8k_image_is_handled_by_the_estimator_node(rclpy_context):
    """The estimator node on one 7680 x 4320 image (called directly: 100 MB through DDS is
    a transport test, not ours): no crash, bounded memory, the next image still works."""
    from hand_pose_ros.handnets.registry import WheelNotInstalledError, locate_tflite
    from hand_pose_ros.nodes.estimator_node import EstimatorNode
    from hand_pose_ros.nodes.image_conversion import image_to_msg

    try:
        locate_tflite("palm_full")
    except WheelNotInstalledError as exc:
        pytest.skip(f"hand networks not available: {exc}")
    node = EstimatorNode(context=rclpy_context)
    try:
        stamp = node.get_clock().now().to_msg()
        big = image_to_msg(np.full((4320, 7680, 3), 90, np.uint8), stamp=stamp, frame_id="c")
        node.on_image(big)
        del big
        node.on_image(image_to_msg(np.zeros((480, 640, 3), np.uint8), stamp=stamp,
                                   frame_id="c"))  # fmt: skip
        assert node.images == 2 and node.rejected == 0 and not node.guard.errors
    finally:
        node.destroy_node()


def test_a_killed_retarget_node_resumes_commands_after_restart(graph):
    """The robot side killed: nothing drives the robot while it is down (upstream goes on);
    the restarted node follows the hand again (tracking) and its commands have no jump."""
    procs, listener, env = graph
    assert listener.spin(60.0, until=lambda: bool(listener.tracking)), "never tracked"
    listener.spin(0.5)
    procs["retarget_node"].send_signal(signal.SIGKILL)
    procs["retarget_node"].wait(10)
    killed_at = time.monotonic()
    # Upstream goes on, though not at once: a process killed mid-transfer can hold up the DDS
    # traffic of the processes it talked to (measured: in 1 of 8 kills, no hand state here
    # for 1-2 s).
    upstream = listener.spin(5.0, until=lambda: listener.states[-1] > killed_at + 0.5)
    assert not [t for t, _ in listener.commands if t > killed_at + 0.3]
    assert upstream, f"upstream stopped too: {dump_stacks(procs['ik_node'])}"
    procs["retarget_node"] = start_node_process("retarget_node", dict(GRAPH)["retarget_node"], env)
    restarted_at = time.monotonic()
    proc = procs["retarget_node"]
    tracking = lambda: bool(listener.tracking) and listener.tracking[-1] > restarted_at  # noqa: E731
    # Both: the "tracking" diagnostic can be taken before the commands published with it.
    commanding = lambda: any(t > restarted_at for t, _ in listener.commands)  # noqa: E731
    assert listener.spin(60.0, until=lambda: tracking() and commanding()), \
        f"not tracking since the restart: {dump_stacks(proc)}"
    tracking_at = listener.tracking[-1]
    first_command = min(t for t, _ in listener.commands if t > restarted_at)
    listener.spin(2.0)
    after = np.array([q for t, q in listener.commands if t >= tracking_at])
    assert len(after) >= 20, "commands did not resume at the state rate"
    assert np.ptp(after, axis=0).max() > 0.01, "the commands do not follow the moving hand"
    # Not asserted: with no robot driver publishing /joint_states (this graph), a restarted
    # node does not know where the robot is, so the first command may step away from it.
    last_before = [q for t, q in listener.commands if t <= killed_at][-1]
    first_after = next(q for t, q in listener.commands if t >= first_command)
    print(f"retarget_node: first command {first_command - restarted_at:.1f} s, tracking "
          f"{tracking_at - restarted_at:.1f} s after the restart, {len(after) / 2.0:.0f} "
          f"commands/s in the next 2 s; first command - last before the kill: "
          f"{np.abs(first_after - last_before).max():.2f} rad")
    _no_jumps(listener.commands, first_command)
    assert all(p.poll() is None for p in procs.values())


def test_a_killed_estimator_node_resumes_hand_states_after_restart(graph):
    """The graph switched to the estimator (demo images -> estimator -> IK -> retarget; it
    stays so for the module's end), then the estimator killed: no hand states while it is
    down; the restarted node's keypoints give hand states again, steadily within 2 s."""
    from hand_pose_ros.handnets.registry import WheelNotInstalledError, locate_tflite

    try:
        locate_tflite("palm_full")
    except WheelNotInstalledError as exc:
        pytest.skip(f"hand networks not available: {exc}")
    procs, listener, env = graph
    stop_node_processes({"demo_source": procs.pop("demo_source")})
    procs["demo_source"] = start_node_process(
        "demo_source", {**dict(GRAPH)["demo_source"], "publish_keypoints": False}, env)
    procs["estimator_node"] = start_node_process("estimator_node", {}, env)
    switched_at = time.monotonic()
    assert listener.spin(60.0, until=lambda: listener.states[-1] > switched_at + 1.0), \
        {n: p.stderr.read()[-500:] for n, p in procs.items() if p.poll() is not None}
    procs["estimator_node"].send_signal(signal.SIGKILL)
    procs["estimator_node"].wait(10)
    killed_at = time.monotonic()
    listener.spin(1.0)
    assert not [t for t in listener.states if t > killed_at + 0.5]
    procs["estimator_node"] = start_node_process("estimator_node", {}, env)
    restarted_at = time.monotonic()
    proc = procs["estimator_node"]
    assert listener.spin(60.0, until=lambda: listener.states[-1] > restarted_at), \
        proc.stderr.read()[-500:] if proc.poll() is not None else "no state"
    first_state = listener.states[-1]
    listener.spin(2.0)
    resumed = [t for t in listener.states if t > first_state]
    assert len(resumed) >= 5 and resumed[0] - first_state < 2.0
    assert listener.tracking[-1] > first_state, "the robot side does not follow the hand"
    print(f"estimator_node: first hand state {first_state - restarted_at:.1f} s after the "
          f"restart, {len(resumed) / 2.0:.0f} states/s in the next 2 s")
    _no_jumps(listener.commands, killed_at)
    assert all(p.poll() is None for p in procs.values())
