"""Robot state node: the robot's tf tree from /hand/joint_states (robot_state_publisher's job).

A Python stand-in for robot_state_publisher plus the two static transform publishers of
the launch file, for the in-process ``hand-teleop run`` (where no ROS install provides
them); ``ros2 launch`` starts the real ones instead, never this node. It publishes

- ``/robot_description`` (std_msgs/String, transient-local): the URDF text;
- ``/tf_static`` (transient-local, once): every fixed URDF joint, world -> camera and
  world -> robot root link (``hand_pose_ros.scene_frames``);
- ``/tf``, for every joint state: every movable URDF joint, parent link -> child link,
  stamped with the joint state's stamp.

Bimanual teleop runs one per robot: ``side`` "right" reads ``/hand/right/joint_states``;
``side`` "left" reads ``/hand/left/joint_states``, publishes ``/left/robot_description``,
prefixes its link frames with ``left/`` and places its root at the left robot's place
(``hand_pose_ros.scene_frames``), as the launch file's namespaced robot_state_publisher
with ``frame_prefix`` does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import TransformStamped
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from tf2_msgs.msg import TFMessage

from hand_ik.robot.link_transforms import LinkTransform, LinkTransforms
from hand_ik.robot.robot_model import RobotModel
from hand_pose_ros.graph_plan import joint_states_topic
from hand_pose_ros.nodes.qos import COMMAND_QOS, LATCHED_QOS, TF_QOS
from hand_pose_ros.scene_frames import (
    CAMERA_IN_WORLD,
    LEFT_ROBOT_FRAME_PREFIX,
    StaticPlacement,
    robot_base_in_world,
)


def robot_description_topic(side: str | None = None) -> str:
    """Where a robot's URDF text is published: the left robot's (bimanual) in namespace
    ``left``, as its robot_state_publisher does under ``ros2 launch``."""
    return "/left/robot_description" if side == "left" else "/robot_description"


def transform_msg(link: LinkTransform, stamp: Time, prefix: str = "") -> TransformStamped:
    """A parent -> child link transform as a TransformStamped (metres, xyzw); ``prefix``
    goes before both link names."""
    msg = TransformStamped()
    msg.header.stamp = stamp
    msg.header.frame_id = prefix + link.parent
    msg.child_frame_id = prefix + link.child
    t, q = link.translation, link.quaternion_xyzw
    msg.transform.translation.x, msg.transform.translation.y, msg.transform.translation.z = (
        float(t[0]), float(t[1]), float(t[2]))  # fmt: skip
    r = msg.transform.rotation
    r.x, r.y, r.z, r.w = float(q[0]), float(q[1]), float(q[2]), float(q[3])
    return msg


def placement_transform(placement: StaticPlacement) -> LinkTransform:
    """A scene placement (translation only) as a LinkTransform."""
    return LinkTransform(placement.parent, placement.child,
                         np.array([placement.x, placement.y, placement.z]),
                         np.array([0.0, 0.0, 0.0, 1.0]))  # fmt: skip


class RobotStateNode(Node):
    """Publishes the robot description, the static frames and the links' /tf.

    Args:
        urdf: the robot URDF that the retarget node drives (its joint names are the
            joint states').
        side: None (one robot), or "right" / "left": that robot of two (bimanual).

    Attributes:
        tf_published: /tf messages published (one per usable joint state).
        skipped: joint states that did not name every movable joint, or held a
            non-finite position (no /tf for them).
    """

    def __init__(self, *, urdf: Path, side: str | None = None, **kwargs) -> None:
        if side not in (None, "right", "left"):
            raise ValueError(f"side must be None, 'right' or 'left', got {side!r}")
        super().__init__("robot_state_left_node" if side == "left" else "robot_state_node",
                         **kwargs)  # fmt: skip
        self.side = side
        self.frame_prefix = LEFT_ROBOT_FRAME_PREFIX if side == "left" else ""
        self.topic = joint_states_topic(side)
        self.urdf_path = Path(urdf)
        self.links = LinkTransforms(RobotModel(self.urdf_path))
        self.joint_names = self.links.robot.joint_names
        self.tf_published = 0
        self.skipped = 0
        description = robot_description_topic(side)
        self.description_pub = self.create_publisher(String, description, LATCHED_QOS)
        self.static_pub = self.create_publisher(TFMessage, "/tf_static", LATCHED_QOS)
        self.tf_pub = self.create_publisher(TFMessage, "/tf", TF_QOS)
        self.description_pub.publish(String(data=self.urdf_path.read_text(encoding="utf-8")))
        stamp = self.get_clock().now().to_msg()
        static = [transform_msg(t, stamp, self.frame_prefix) for t in self.links.fixed]
        # The placements carry their own (prefixed) frame names; the camera's only once.
        placements = [robot_base_in_world(self.links.root_link, side)]
        if side != "left":
            placements.insert(0, CAMERA_IN_WORLD)
        static += [transform_msg(placement_transform(p), stamp) for p in placements]
        self.static_pub.publish(TFMessage(transforms=static))
        self.create_subscription(JointState, self.topic, self._on_joint_state,
                                 COMMAND_QOS)  # fmt: skip

    def _on_joint_state(self, msg: JointState) -> None:
        positions = dict(zip(msg.name, msg.position, strict=False))
        if any(name not in positions for name in self.joint_names):
            self.skipped += 1
            self.get_logger().warning(
                f"{self.topic} does not name every joint of {self.urdf_path.name}: "
                "no /tf for it", throttle_duration_sec=5.0)  # fmt: skip
            return
        q = np.array([positions[name] for name in self.joint_names], dtype=float)
        if not np.isfinite(q).all():
            self.skipped += 1
            return
        transforms = self.links.movable(q)
        self.tf_pub.publish(TFMessage(
            transforms=[transform_msg(t, msg.header.stamp, self.frame_prefix)
                        for t in transforms]))  # fmt: skip
        self.tf_published += 1
