"""Wrist pose node: /hand/state -> each hand's smoothed wrist pose, for an arm to follow.

Per side (the state's ``handedness``, ``right`` or ``left``) the wrist pose of every hand
state (the hand_root frame of the fitted keypoints in the camera optical frame) is
smoothed by a :class:`hand_ik.pose_filter.WristPoseFilter` and published as

- ``geometry_msgs/PoseStamped`` on ``/hand/<side>/wrist_pose`` (``header.frame_id``: the
  state's camera optical frame, stamp: the state's image stamp), and
- the transform camera optical frame -> ``hand_<side>_wrist`` on ``/tf`` (the same pose
  and stamp).

Hand lost (no state of that side for ``hand_lost_timeout_s``): a timer republishes the
held pose, stamped now, until ``filter.hold_s`` after the last state, then nothing more
is published for that side and /diagnostics reports it lost. The wrist has no neutral
pose to ease to: after the hold the arm's controller decides what to do.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped, TransformStamped
from rclpy.node import Node
from rclpy.qos import QoSProfile
from tf2_msgs.msg import TFMessage

from hand_ik.pose_filter import WristPose, WristPoseFilter, WristPoseFilterConfig, checked_pose
from hand_pose_ros.msg import HandState
from hand_pose_ros.nodes.callback_guard import CallbackGuard
from hand_pose_ros.nodes.config_params import (
    declare_config_parameters,
    read_config_parameters,
    replace_config,
)
from hand_pose_ros.nodes.diagnostics import RateMeter, diagnostic_array
from hand_pose_ros.nodes.live_params import live_parameters_callback
from hand_pose_ros.nodes.qos import RESULT_PUB_QOS, RESULT_SUB_QOS, TF_QOS
from hand_pose_ros.nodes.spin import spin_node
from hand_pose_ros.scene_frames import CAMERA_FRAME

#: The hand sides this node publishes, as in ``HandState.handedness``.
SIDES: tuple[str, ...] = ("right", "left")
#: /hand/state, newest only, but one per side: both hands of a frame arrive back to back.
STATE_SUB_QOS = QoSProfile(history=RESULT_SUB_QOS.history, depth=len(SIDES),
                           reliability=RESULT_SUB_QOS.reliability,
                           durability=RESULT_SUB_QOS.durability)  # fmt: skip


def pose_topic(side: str) -> str:
    """The PoseStamped topic of one side's wrist."""
    return f"/hand/{side}/wrist_pose"


def wrist_frame(side: str) -> str:
    """The TF child frame of one side's wrist."""
    return f"hand_{side}_wrist"


@dataclass
class WristPoseNodeConfig:
    """Parameters of the wrist pose node (all live)."""

    rate_hz: float = 30.0
    """Rate of the hand-lost policy and diagnostics timer, Hz."""
    hand_lost_timeout_s: float = 0.2
    """No hand state of a side for this long, seconds: that hand is lost (held, then dropped)."""
    publish_tf: bool = True
    """Publish camera optical frame -> hand_<side>_wrist on /tf."""
    camera_frame_id: str = CAMERA_FRAME
    """Parent frame for hand states whose header has no frame_id."""
    filter: WristPoseFilterConfig = field(default_factory=WristPoseFilterConfig)
    """Smoothing and hold time (hand_ik/pose_filter.py)."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate_hz) and 0.1 <= self.rate_hz <= 1000.0):
            raise ValueError(f"rate_hz must be in [0.1, 1000], got {self.rate_hz}")
        if not (math.isfinite(self.hand_lost_timeout_s) and self.hand_lost_timeout_s >= 0):
            raise ValueError(f"hand_lost_timeout_s must be finite and >= 0, "
                             f"got {self.hand_lost_timeout_s}")  # fmt: skip
        if not self.camera_frame_id:
            raise ValueError("camera_frame_id must not be empty")


def wrist_pose_from_msg(msg: HandState) -> WristPose:
    """The measured wrist pose of a HandState (camera frame, metres, quaternion x y z w)."""
    p, o = msg.wrist_pose.position, msg.wrist_pose.orientation
    return WristPose(np.array([p.x, p.y, p.z]), np.array([o.x, o.y, o.z, o.w]))


def pose_stamped_to_msg(pose: WristPose, *, stamp, frame_id: str) -> PoseStamped:
    """A filtered wrist pose as PoseStamped in ``frame_id``."""
    msg = PoseStamped()
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (
        float(v) for v in pose.position)  # fmt: skip
    o = msg.pose.orientation
    o.x, o.y, o.z, o.w = (float(v) for v in pose.orientation)
    return msg


def transform_from_pose(pose: PoseStamped, child_frame_id: str) -> TransformStamped:
    """The TF transform header.frame_id -> ``child_frame_id`` equal to ``pose``."""
    tf = TransformStamped()
    tf.header = pose.header
    tf.child_frame_id = child_frame_id
    p = pose.pose.position
    tf.transform.translation.x, tf.transform.translation.y, tf.transform.translation.z = (
        p.x, p.y, p.z)  # fmt: skip
    tf.transform.rotation = pose.pose.orientation
    return tf


class WristPoseNode(Node):
    """Publishes each hand's smoothed wrist pose (PoseStamped and TF), holding it briefly
    when the hand is lost.

    Parameters: every field of :class:`WristPoseNodeConfig` (``filter.*``: the pose
    filter, ``filter.position.*`` / ``filter.orientation.*`` its One Euro settings); all
    live, validated by the config.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__("wrist_pose_node", **kwargs)
        declare_config_parameters(self, WristPoseNodeConfig())
        self.config: WristPoseNodeConfig = read_config_parameters(self, WristPoseNodeConfig)
        self.filters = {side: WristPoseFilter(self.config.filter) for side in SIDES}
        self.pose_pubs = {side: self.create_publisher(PoseStamped, pose_topic(side),
                                                      RESULT_PUB_QOS)
                          for side in SIDES}  # fmt: skip
        self.tf_pub = self.create_publisher(TFMessage, "/tf", TF_QOS)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.guard = CallbackGuard(self, "wrist_pose")
        self.create_subscription(HandState, "/hand/state", self.guard.wrap(self.on_state),
                                 STATE_SUB_QOS)  # fmt: skip
        self.timer = self.create_timer(1.0 / self.config.rate_hz, self.guard.wrap(self.on_timer))
        self.t0 = time.monotonic()
        self.last_state_t: dict[str, float] = {}
        self.frame_ids = dict.fromkeys(SIDES, self.config.camera_frame_id)
        self.rates = {side: RateMeter() for side in SIDES}
        self.poses_published = dict.fromkeys(SIDES, 0)
        self.add_on_set_parameters_callback(
            live_parameters_callback((), apply=self.apply_parameters)
        )

    def apply_parameters(self, params) -> None:
        """Live changes, validated together by the config (ValueError names the parameter)."""
        config = replace_config(self.config, {p.name: p.value for p in params})
        if config.rate_hz != self.config.rate_hz:
            self.timer.timer_period_ns = int(1e9 / config.rate_hz)
        self.config = config
        for f in self.filters.values():
            f.config = config.filter

    def _now(self) -> float:
        return time.monotonic() - self.t0

    def _publish(self, side: str, pose: WristPose, stamp) -> None:
        msg = pose_stamped_to_msg(pose, stamp=stamp, frame_id=self.frame_ids[side])
        self.pose_pubs[side].publish(msg)
        if self.config.publish_tf:
            self.tf_pub.publish(TFMessage(transforms=[transform_from_pose(msg, wrist_frame(side))]))
        self.poses_published[side] += 1

    def on_state(self, msg: HandState) -> None:
        side = msg.handedness
        if side not in SIDES:
            raise ValueError(f"hand state with handedness {side!r}, expected one of {SIDES}")
        measured = checked_pose(wrist_pose_from_msg(msg))
        if measured is None:
            raise ValueError("hand state with a non-finite wrist pose or a zero quaternion")
        t = self._now()
        pose = self.filters[side].update(t, measured)
        self.last_state_t[side] = t
        self.frame_ids[side] = msg.header.frame_id or self.config.camera_frame_id
        self._publish(side, pose, msg.header.stamp)
        self.rates[side].tick()

    def on_timer(self) -> None:
        t = self._now()
        stamp = self.get_clock().now().to_msg()
        values: dict[str, float | str] = {}
        states = []
        for side in SIDES:
            last = self.last_state_t.get(side)
            lost = last is None or t - last > self.config.hand_lost_timeout_s
            if lost:
                pose = self.filters[side].update(t, None)
                if pose is not None:
                    self._publish(side, pose, stamp)
            lost_s = self.filters[side].hand_lost_s
            state = "lost" if self.filters[side].lost else "held" if lost else "tracking"
            states.append(f"{side} {state}")
            values[f"{side}_hand_lost_s"] = -1.0 if lost_s is None else float(lost_s)
            values[f"{side}_rate_hz"] = self.rates[side].hz
            values[f"{side}_poses_published"] = self.poses_published[side]
        errors, level = self.guard.diagnostics()
        tracked = any(s.endswith(("tracking", "held")) for s in states)
        self.diag_pub.publish(diagnostic_array(
            stamp, "wrist_pose", {**values, **errors},
            level=max(level, 0 if tracked else 1), message=", ".join(states)))  # fmt: skip


def main(args: list[str] | None = None) -> None:
    spin_node(WristPoseNode, args)


if __name__ == "__main__":
    main()
