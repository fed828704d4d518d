"""Retargeting node: /hand/state -> safe robot joint commands on /hand/joint_states.

Every hand state is retargeted and filtered (One Euro, joint and velocity limits); a
timer applies the hand-lost policy (hold, then ease to the neutral pose) when no state
arrived for ``hand_lost_timeout_s``. Joint names come from the robot URDF.

Bimanual teleop runs one node per robot: ``hand_side`` (``right`` | ``left``) keeps the
states of that side only, so each side has its own hand-lost policy, and
``joint_states_topic`` gives each robot its own topic (``/hand/<side>/joint_states``, see
:func:`hand_pose_ros.graph_plan.joint_states_topic`). The default, ``any``, takes every
state, as a single robot always has.

The human hand is re-posed from the state's shape and DoF with ``hand_model``, which must
be the IK node's: at start-up the node asks ``ik_node`` for its ``hand_model`` and, if
they differ, drives nothing (every state counts as no hand, /diagnostics reports ERROR).
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.parameter_client import AsyncParameterClient
from rclpy.time import Time
from sensor_msgs.msg import JointState

from hand_pose_ros.graph_plan import JOINT_STATES_TOPIC
from hand_pose_ros.msg import HandState
from hand_pose_ros.nodes.callback_guard import CallbackGuard
from hand_pose_ros.nodes.config_params import (
    STARTUP_ONLY_NOTE,
    declare_config_parameters,
    read_config_parameters,
    replace_config,
)
from hand_pose_ros.nodes.conversions import hand_state_from_msg, joint_state_to_msg
from hand_pose_ros.nodes.diagnostics import RateMeter, diagnostic_array
from hand_pose_ros.nodes.live_params import in_range, live_parameters_callback
from hand_pose_ros.nodes.qos import COMMAND_QOS, PER_HAND_SUB_QOS, RESULT_SUB_QOS
from hand_pose_ros.nodes.queued import take_queued
from hand_pose_ros.nodes.spin import spin_node
from hand_pose_ros.pipeline.stages import RobotStage, RobotStageConfig, operator_flexion

#: The node whose ``hand_model`` parameter this node's must equal (name in our namespace).
IK_NODE = "ik_node"
#: Seconds between attempts to ask the IK node for its hand model, until it answers.
HAND_MODEL_CHECK_PERIOD_S = 1.0

#: ``hand_side`` values: every hand state, or those of one side (``HandState.handedness``).
HAND_SIDE_FILTERS: tuple[str, ...] = ("any", "right", "left")

#: Why each parameter the robot stage is built from cannot change live.
STARTUP_REASONS = {
    "robot": "the retargeter, joint names and limits are built from it",
    "urdf": "the retargeter, joint names and limits are built from it",
    "hand_model": "the human hand model is loaded once (and must match the IK node's)",
    "filter.velocity_fraction": "the command filter's velocity limits are set when it is built",
    "filter.default_velocity_rad_s": "the command filter's velocity limits are set when it "
                                     "is built",
    "robot_state_topic": "subscribed once at start-up",
    "hand_side": "the /hand/state subscription's queue depth is set from it",
    "joint_states_topic": "the command publisher is created once at start-up",
}  # fmt: skip


def same_hand_model(a: str, b: str) -> bool:
    """Whether two ``hand_model`` values name the same model (a name, or the same file)."""
    if a == b:
        return True
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    return pa.is_file() and pb.is_file() and pa.resolve() == pb.resolve()


class RetargetNode(Node):
    """Publishes the robot command for every hand state, and while the hand is lost.

    Parameters: every field of :class:`RobotStageConfig` (``filter.*``: the command
    filter), live except those in :data:`STARTUP_REASONS`, plus ``rate_hz``,
    ``hand_lost_timeout_s``, ``robot_state_wait_s`` (live), ``robot_state_topic``,
    ``hand_side`` and ``joint_states_topic`` (start-up).

    Where the robot driver publishes its measured joints (``robot_state_topic``), the
    first command starts from them and moves on at the velocity limits: a restarted node
    does not jump the robot to the hand's pose (or to neutral) in one step.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__("retarget_node", **kwargs)
        declare_config_parameters(self, RobotStageConfig(), startup_only=STARTUP_REASONS)
        self.declare_parameter("rate_hz", 30.0, ParameterDescriptor(
            description="Rate of the hand-lost policy and diagnostics timer, Hz."))  # fmt: skip
        self.declare_parameter("hand_lost_timeout_s", 0.2, ParameterDescriptor(
            description="No hand state for this long, seconds: the hand is lost."))  # fmt: skip
        self.declare_parameter("robot_state_topic", "/joint_states", ParameterDescriptor(
            description="The robot driver's measured sensor_msgs/JointState; the first "
                        "command starts from it (empty: none)" + STARTUP_ONLY_NOTE))  # fmt: skip
        self.declare_parameter("robot_state_wait_s", 1.0, ParameterDescriptor(
            description="While robot_state_topic has a publisher, wait this long, seconds, "
                        "for its first message before the first command."))  # fmt: skip
        self.declare_parameter("hand_side", "any", ParameterDescriptor(
            description="Hand states driving this robot: any (every state: one robot) | "
                        "right | left (that side only: one node per robot in bimanual "
                        "teleop)" + STARTUP_ONLY_NOTE))  # fmt: skip
        self.declare_parameter("joint_states_topic", JOINT_STATES_TOPIC, ParameterDescriptor(
            description="Topic of this robot's commands (sensor_msgs/JointState); bimanual: "
                        "/hand/<side>/joint_states" + STARTUP_ONLY_NOTE))  # fmt: skip
        self.hand_side = str(self.get_parameter("hand_side").value)
        if self.hand_side not in HAND_SIDE_FILTERS:
            raise ValueError(f"parameter 'hand_side' must be one of {HAND_SIDE_FILTERS}, "
                             f"got {self.hand_side!r}")  # fmt: skip
        self.joint_states_topic = str(self.get_parameter("joint_states_topic").value)
        if not self.joint_states_topic:
            raise ValueError("parameter 'joint_states_topic' must not be empty")
        self.stage = RobotStage(read_config_parameters(self, RobotStageConfig))
        rate_hz = float(self.get_parameter("rate_hz").value)
        if not rate_hz > 0:
            raise ValueError(f"parameter 'rate_hz' must be > 0, got {rate_hz}")
        self.timeout_s = float(self.get_parameter("hand_lost_timeout_s").value)
        self.joint_names = list(self.stage.joint_names)
        self.pub = self.create_publisher(JointState, self.joint_states_topic, COMMAND_QOS)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.diagnostic_name = ("retarget" if self.hand_side == "any"
                                else f"retarget_{self.hand_side}")  # fmt: skip
        self.guard = CallbackGuard(self, self.diagnostic_name)
        # One side of two: the other side's state of the same frame must not push ours out.
        self.state_sub = self.create_subscription(
            HandState, "/hand/state", self.guard.wrap(self.on_state),
            RESULT_SUB_QOS if self.hand_side == "any" else PER_HAND_SUB_QOS)  # fmt: skip
        self.states_of_other_side = 0
        """Hand states skipped because their handedness is not ``hand_side``."""
        self.timer = self.create_timer(1.0 / rate_hz, self.guard.wrap(self.on_timer))
        self.t0 = time.monotonic()
        self.last_state_t: float | None = None
        self.rate = RateMeter()
        self.latency_ms = 0.0
        self.latencies_ms: deque[float] = deque(maxlen=10000)
        self.commands_published = 0
        self.hand_model_error: str | None = None
        """Why hand states are not retargeted (the IK node's hand model differs), or None."""
        self.ik_params = AsyncParameterClient(self, IK_NODE)
        self._ik_hand_model_pending = False
        self.robot_state_topic = str(self.get_parameter("robot_state_topic").value)
        self.started_from_robot_state = False
        """Whether the first command started from the robot's measured joints."""
        if self.robot_state_topic:
            self.create_subscription(JointState, self.robot_state_topic,
                                     self.guard.wrap(self.on_robot_state), COMMAND_QOS)  # fmt: skip
        self.hand_model_timer = self.create_timer(
            HAND_MODEL_CHECK_PERIOD_S, self.guard.wrap(self.ask_ik_hand_model))  # fmt: skip
        self.add_on_set_parameters_callback(live_parameters_callback(
            STARTUP_REASONS,
            {"hand_lost_timeout_s": in_range(0.0, 60.0), "rate_hz": in_range(0.1, 1000.0),
             "robot_state_wait_s": in_range(0.0, 60.0)},
            self.apply_parameters))  # fmt: skip
        self.get_logger().info(
            f"robot {self.stage.config.robot}: {len(self.joint_names)} joints from "
            f"{self.stage.urdf_path}, {self.hand_side} hand -> {self.joint_states_topic}")

    def ask_ik_hand_model(self) -> None:
        """Ask the IK node for its hand model (once it is up and until it answers)."""
        if self._ik_hand_model_pending or not self.ik_params.services_are_ready():
            return
        self._ik_hand_model_pending = True
        self.ik_params.get_parameters(["hand_model"]).add_done_callback(self._on_ik_hand_model)

    def _on_ik_hand_model(self, future) -> None:
        self._ik_hand_model_pending = False
        response = None if future.exception() is not None else future.result()
        if response is None or not response.values:
            return  # asked again at the next tick
        self.hand_model_timer.cancel()
        theirs, ours = response.values[0].string_value, self.stage.config.hand_model
        if same_hand_model(theirs, ours):
            self.hand_model_error = None
            return
        self.hand_model_error = (f"hand_model {ours!r} differs from {IK_NODE}'s {theirs!r}: "
                                 "hand states are not retargeted; give both nodes the same "
                                 "hand_model and restart")  # fmt: skip
        self.get_logger().error(self.hand_model_error)

    def apply_parameters(self, params) -> None:
        """Live changes: hand-lost timeout, timer rate, the command filter's smoothing
        and hand-lost timing, and the operator profile (its flexion calibration is loaded
        on the spot) (validated together; ValueError names the parameter)."""
        config = replace_config(self.stage.config, {p.name: p.value for p in params})
        flexion = self.stage.flexion
        if any(p.name == "operator_profile" for p in params):  # set again: read it again
            try:
                flexion = operator_flexion(config.operator_profile)
            except (OSError, ValueError) as error:
                raise ValueError(f"operator_profile: {error}") from None
        for p in params:
            if p.name == "hand_lost_timeout_s":
                self.timeout_s = float(p.value)
            elif p.name == "rate_hz":
                self.timer.timer_period_ns = int(1e9 / float(p.value))
        self.stage.config = config
        self.stage.filter.config = config.filter
        self.stage.flexion = flexion

    def _now(self) -> float:
        return time.monotonic() - self.t0

    def _publish(self, positions) -> None:
        if self.commands_published == 0 and not self.started_from_robot_state:
            self.get_logger().info(
                f"first command without the robot's measured joints (nothing usable on "
                f"'{self.robot_state_topic}'): it is not rate-limited from where the robot "
                "is; a robot driver publishing its joints there makes a restart jump-free")
        self.pub.publish(joint_state_to_msg(self.joint_names, positions,
                                            stamp=self.get_clock().now().to_msg()))  # fmt: skip
        self.commands_published += 1

    def on_robot_state(self, msg: JointState) -> None:
        """Before the first command: start the filter from the robot's measured joints."""
        if self.stage.filter.started:
            return
        measured = dict(zip(msg.name, msg.position, strict=False))
        try:
            q = [float(measured[name]) for name in self.joint_names]
            self.stage.filter.start_from(self._now(), q)
        except (KeyError, ValueError):
            return  # another robot's joints, or not finite: wait for a usable message
        self.started_from_robot_state = True
        self.get_logger().info(f"starting from the robot's joints on {self.robot_state_topic}")

    def _waiting_for_robot_state(self) -> bool:
        """No command yet, the driver publishes its joints, and the wait is not over."""
        if self.stage.filter.started or not self.robot_state_topic:
            return False
        wait_s = float(self.get_parameter("robot_state_wait_s").value)
        return self._now() < wait_s and self.count_publishers(self.robot_state_topic) > 0

    def on_state(self, msg: HandState) -> None:
        """Drive the robot from this hand state; one side only: from the newest state of our
        side among this one and the one queued behind it (taken now: nodes/queued.py)."""
        if self.hand_side != "any":
            ours = [m for m in [msg, *take_queued(self.state_sub, PER_HAND_SUB_QOS.depth - 1)]
                    if m.handedness == self.hand_side]  # fmt: skip
            if not ours:
                self.states_of_other_side += 1
                return  # the other robot's hand: not a state of ours, so not "tracking" either
            msg = ours[-1]
        if self._waiting_for_robot_state():
            return  # the first command must start where the robot is
        if self.hand_model_error is not None:
            return  # posed with the wrong model: the hand-lost policy drives the robot
        try:
            betas, bio = hand_state_from_msg(msg)
        except ValueError as exc:
            self.get_logger().error(f"dropping hand state: {exc}")
            return
        t = self._now()
        self.last_state_t = t
        self._publish(self.stage.step(t, betas, bio))
        self.rate.tick()
        now = self.get_clock().now()
        self.latency_ms = (now - Time.from_msg(msg.header.stamp)).nanoseconds * 1e-6
        self.latencies_ms.append(self.latency_ms)

    def on_timer(self) -> None:
        t = self._now()
        lost = self.last_state_t is None or t - self.last_state_t > self.timeout_s
        if lost and not self._waiting_for_robot_state():
            self._publish(self.stage.step(t, None, None))
        lost_s = self.stage.hand_lost_s
        errors, level = self.guard.diagnostics()
        self.diag_pub.publish(diagnostic_array(
            self.get_clock().now().to_msg(), self.diagnostic_name,
            {"retarget_ms": self.stage.last_retarget_ms, "rate_hz": self.rate.hz,
             "latency_image_to_command_ms": self.latency_ms,
             "hand_lost_s": -1.0 if lost_s is None else float(lost_s), **errors},
            level=2 if self.hand_model_error else max(level, 1 if lost else 0),
            message=self.hand_model_error or ("hand lost" if lost else "tracking")))  # fmt: skip


def main(args: list[str] | None = None) -> None:
    spin_node(RetargetNode, args)


if __name__ == "__main__":
    main()
