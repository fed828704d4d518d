"""Retargeting node: /hand/state -> safe robot joint commands on /hand/joint_states.

Every hand state is retargeted and filtered (One Euro, joint and velocity limits); a
timer applies the hand-lost policy (hold, then ease to the neutral pose) when no state
arrived for ``hand_lost_timeout_s``. Joint names come from the robot URDF.
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.time import Time
from sensor_msgs.msg import JointState

from hand_ik.command_filter import CommandFilterConfig
from hand_pose_ros.msg import HandState
from hand_pose_ros.nodes.callback_guard import CallbackGuard
from hand_pose_ros.nodes.conversions import hand_state_from_msg, joint_state_to_msg
from hand_pose_ros.nodes.diagnostics import RateMeter, diagnostic_array
from hand_pose_ros.nodes.live_params import in_range, live_parameters_callback
from hand_pose_ros.nodes.qos import COMMAND_QOS, RESULT_SUB_QOS
from hand_pose_ros.nodes.spin import spin_node
from hand_pose_ros.pipeline.stages import RobotStage, RobotStageConfig

FILTER_FIELDS = tuple(f.name for f in dataclasses.fields(CommandFilterConfig))


class RetargetNode(Node):
    """Publishes the robot command for every hand state, and while the hand is lost."""

    def __init__(self, **kwargs) -> None:
        super().__init__("retarget_node", **kwargs)
        self.declare_parameter("robot", "hand_pose_ros_hand")
        self.declare_parameter("urdf", "")
        self.declare_parameter("hand_model", "open")
        self.declare_parameter("rate_hz", 30.0)
        self.declare_parameter("hand_lost_timeout_s", 0.2)
        filter_defaults = CommandFilterConfig()
        for name in FILTER_FIELDS:
            self.declare_parameter(f"filter.{name}", float(getattr(filter_defaults, name)))
        filter_config = CommandFilterConfig(
            **{n: float(self.get_parameter(f"filter.{n}").value) for n in FILTER_FIELDS})
        self.stage = RobotStage(RobotStageConfig(
            robot=self.get_parameter("robot").value, urdf=self.get_parameter("urdf").value,
            hand_model=self.get_parameter("hand_model").value, filter=filter_config))  # fmt: skip
        rate_hz = float(self.get_parameter("rate_hz").value)
        if not rate_hz > 0:
            raise ValueError(f"parameter 'rate_hz' must be > 0, got {rate_hz}")
        self.timeout_s = float(self.get_parameter("hand_lost_timeout_s").value)
        self.joint_names = list(self.stage.joint_names)
        self.pub = self.create_publisher(JointState, "/hand/joint_states", COMMAND_QOS)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.guard = CallbackGuard(self, "retarget")
        self.create_subscription(HandState, "/hand/state", self.guard.wrap(self.on_state),
                                 RESULT_SUB_QOS)  # fmt: skip
        self.timer = self.create_timer(1.0 / rate_hz, self.guard.wrap(self.on_timer))
        self.t0 = time.monotonic()
        self.last_state_t: float | None = None
        self.rate = RateMeter()
        self.latency_ms = 0.0
        self.latencies_ms: deque[float] = deque(maxlen=10000)
        self.commands_published = 0
        live_filter = ("min_cutoff_hz", "beta", "d_cutoff_hz", "hold_s", "ease_velocity_fraction",
                       "max_dt_s")  # read per step by the command filter
        self.add_on_set_parameters_callback(live_parameters_callback(
            ("robot", "urdf", "hand_model", "rate_hz",
             *(f"filter.{n}" for n in FILTER_FIELDS if n not in live_filter)),
            {"hand_lost_timeout_s": in_range(0.0, 60.0),
             **{f"filter.{n}": self._filter_check(n) for n in live_filter}},
            self.apply_parameters))  # fmt: skip
        self.get_logger().info(f"robot {self.get_parameter('robot').value}: "
                               f"{len(self.joint_names)} joints from {self.stage.urdf_path}")

    def _filter_check(self, name: str):
        """A check of a new ``filter.<name>``: the config's own validation gives the reason."""

        def check(value) -> str | None:
            try:
                dataclasses.replace(self.stage.filter.config, **{name: float(value)})
            except (TypeError, ValueError) as exc:
                return str(exc)
            return None

        return check

    def apply_parameters(self, params) -> None:
        """Live changes (checked by the callback): hand-lost timeout and filter settings."""
        for p in params:
            if p.name == "hand_lost_timeout_s":
                self.timeout_s = float(p.value)
            elif p.name.startswith("filter."):
                self.stage.filter.config = dataclasses.replace(
                    self.stage.filter.config, **{p.name.removeprefix("filter."): float(p.value)})

    def _now(self) -> float:
        return time.monotonic() - self.t0

    def _publish(self, positions) -> None:
        self.pub.publish(joint_state_to_msg(self.joint_names, positions,
                                            stamp=self.get_clock().now().to_msg()))  # fmt: skip
        self.commands_published += 1

    def on_state(self, msg: HandState) -> None:
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
        if lost:
            self._publish(self.stage.step(t, None, None))
        lost_s = self.stage.hand_lost_s
        errors, level = self.guard.diagnostics()
        self.diag_pub.publish(diagnostic_array(
            self.get_clock().now().to_msg(), "retarget",
            {"retarget_ms": self.stage.last_retarget_ms, "rate_hz": self.rate.hz,
             "latency_image_to_command_ms": self.latency_ms,
             "hand_lost_s": -1.0 if lost_s is None else float(lost_s), **errors},
            level=max(level, 1 if lost else 0),
            message="hand lost" if lost else "tracking"))  # fmt: skip


def main(args: list[str] | None = None) -> None:
    spin_node(RetargetNode, args)


if __name__ == "__main__":
    main()
