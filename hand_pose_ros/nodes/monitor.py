"""Teleop monitor: checks every command, and optionally writes the viz video and an MCAP bag.

Used by ``hand-teleop run``: subscribes like any other node (real topics), so what it
checks and records is what a robot driver would receive.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import String
from tf2_msgs.msg import TFMessage
from visualization_msgs.msg import MarkerArray

from hand_pose_ros.io.mcap_recorder import McapRecorder
from hand_pose_ros.msg import HandKeypoints, HandState
from hand_pose_ros.nodes.conversions import (
    hand_state_from_msg,
    keypoints_from_msg,
    vertices_from_msg,
)
from hand_pose_ros.nodes.image_conversion import msg_to_rgb
from hand_pose_ros.nodes.qos import (
    COMMAND_QOS,
    IMAGE_QOS,
    LATCHED_QOS,
    PER_HAND_SUB_QOS,
    RESULT_SUB_QOS,
    TF_QOS,
)
from hand_pose_ros.viz.hand_overlay import CameraMesh, HandPose
from hand_pose_ros.viz.teleop_viz import TeleopViz, VizFrame, VizRobot

RECORDED_TOPICS = (
    ("/camera/image_raw", Image, IMAGE_QOS),
    ("/camera/camera_info", CameraInfo, IMAGE_QOS),
    ("/hand/keypoints", HandKeypoints, RESULT_SUB_QOS),
    ("/hand/state", HandState, RESULT_SUB_QOS),
    ("/hand/markers", MarkerArray, RESULT_SUB_QOS),
    ("/hand/joint_states", JointState, COMMAND_QOS),
    ("/diagnostics", DiagnosticArray, 10),
    # The robot's tf tree and model (nodes/robot_state_node.py in `hand-teleop run`).
    ("/robot_description", String, LATCHED_QOS),
    ("/tf_static", TFMessage, LATCHED_QOS),
    ("/tf", TFMessage, TF_QOS),
)


class TeleopMonitor(Node):
    """Counts and checks /hand/joint_states; ``viz_path`` / ``record_path`` enable outputs.

    Args:
        lower, upper: (n,) joint limits of the commanded robot, for the checks.
        urdf: the robot URDF (for the viz renderer).
        extra_recorded_topics: (topic, message type, QoS) recorded besides
            :data:`RECORDED_TOPICS` (bimanual: the left robot's commands and description).
        two_hands: bimanual: the per-hand topics (keypoints, hand states) are read one
            message per hand deep (``PER_HAND_SUB_QOS``), and the video's input panel
            shows each hand side's latest keypoints and hand mesh.
        viz_label: written on this robot's panel of the video (bimanual); empty: none.
        viz_others: bimanual: (command topic, robot) of each further robot panel of the
            video, drawn in that topic's latest command.
    """

    def __init__(self, *, lower: np.ndarray, upper: np.ndarray, urdf: Path | None = None,
                 viz_path: Path | None = None, record_path: Path | None = None,
                 extra_recorded_topics: tuple[tuple[str, type, object], ...] = (),
                 two_hands: bool = False, viz_label: str = "",
                 viz_others: tuple[tuple[str, VizRobot], ...] = (),
                 **kwargs) -> None:  # fmt: skip
        super().__init__("teleop_monitor", **kwargs)
        self.lower, self.upper = np.asarray(lower), np.asarray(upper)
        self.viz_path, self.record_path = viz_path, record_path
        self.joint_states = 0
        self.commands_ok = True
        self.last_positions: np.ndarray | None = None
        self.last_message_at = time.monotonic()  # of the last message received, any topic
        self._image: np.ndarray | None = None
        self._uv: np.ndarray | None = None
        self._K: np.ndarray | None = None
        self._hands: tuple[HandPose, ...] = ()
        self._by_side = two_hands  # keypoints and hands kept per hand side
        # Both hands of a frame come back to back: a depth of one would keep one of them.
        per_hand = PER_HAND_SUB_QOS if two_hands else RESULT_SUB_QOS
        self._uv_by_side: dict[str, np.ndarray] = {}
        self._hand_by_side: dict[str, HandPose] = {}
        self._estimated_by_side: dict[str, CameraMesh] = {}  # the estimator's meshes
        self._other_commands: list[dict[str, float] | None] = [None] * len(viz_others)
        self._viz = None
        self._recorder = None
        if record_path is not None:
            self._recorder = McapRecorder(record_path).__enter__()
            for topic, msg_type, qos in RECORDED_TOPICS + tuple(extra_recorded_topics):
                qos = per_hand if qos is RESULT_SUB_QOS else qos
                if topic != "/hand/joint_states":
                    callback = self._recorder_callback(topic)
                    self.create_subscription(msg_type, topic, callback, qos)
        if viz_path is not None:
            robots = (VizRobot(Path(urdf), viz_label), *(r for _, r in viz_others))
            self._viz = TeleopViz(viz_path, robots)  # renders on its own thread
            for k, (topic, _) in enumerate(viz_others):
                self.create_subscription(JointState, topic, self._other_command_callback(k),
                                         COMMAND_QOS)  # fmt: skip
            if record_path is None:
                self.create_subscription(Image, "/camera/image_raw", self._on_image, IMAGE_QOS)
                self.create_subscription(HandKeypoints, "/hand/keypoints", self._on_keypoints,
                                         per_hand)  # fmt: skip
                self.create_subscription(CameraInfo, "/camera/camera_info", self._on_camera_info,
                                         IMAGE_QOS)  # fmt: skip
                self.create_subscription(HandState, "/hand/state", self._on_hand_state,
                                         per_hand)  # fmt: skip
        # Remapped per robot in bimanual runs; recorded under the topic it really reads.
        self._command_sub = self.create_subscription(JointState, "/hand/joint_states",
                                                     self._on_joint_state, COMMAND_QOS)  # fmt: skip

    def _other_command_callback(self, k: int):
        def on_command(msg: JointState) -> None:
            self._other_commands[k] = dict(zip(msg.name, msg.position, strict=True))
        return on_command

    def _recorder_callback(self, topic: str):
        return lambda msg: self._record(topic, msg)

    def _record(self, topic: str, msg) -> None:
        self.last_message_at = time.monotonic()
        self._recorder.write(topic, msg, self.get_clock().now().nanoseconds)
        if topic == "/camera/image_raw" and self._viz is not None:
            self._on_image(msg)
        elif topic == "/hand/keypoints" and self._viz is not None:
            self._on_keypoints(msg)
        elif topic == "/camera/camera_info" and self._viz is not None:
            self._on_camera_info(msg)
        elif topic == "/hand/state" and self._viz is not None:
            self._on_hand_state(msg)

    def _on_image(self, msg: Image) -> None:
        try:
            self._image = msg_to_rgb(msg)
        except ValueError:
            self._image = None

    def _on_keypoints(self, msg: HandKeypoints) -> None:
        try:
            vertices = vertices_from_msg(msg)
        except ValueError:  # a malformed mesh is not drawn
            vertices = None
        if not self._by_side:
            self._estimated_by_side.clear()
        if vertices is not None and msg.handedness in ("right", "left"):
            self._estimated_by_side[msg.handedness] = CameraMesh(vertices, msg.handedness)
        else:
            self._estimated_by_side.pop(msg.handedness, None)
        if self._by_side:
            self._uv_by_side[msg.handedness] = keypoints_from_msg(msg)[1]
        else:
            self._uv = keypoints_from_msg(msg)[1]

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._K = np.asarray(msg.k, dtype=float).reshape(3, 3)

    def _on_hand_state(self, msg: HandState) -> None:
        if msg.score <= 0.0:
            self._hand_by_side.pop(msg.handedness, None)
            self._hands = tuple(self._hand_by_side.values())  # () unless bimanual
            return
        betas, bio = hand_state_from_msg(msg)
        o = msg.wrist_pose.orientation
        rotation = Rotation.from_quat([o.x, o.y, o.z, o.w]).as_matrix()
        p = msg.wrist_pose.position
        self._hands = (HandPose(betas, bio, rotation, np.array([p.x, p.y, p.z]),
                                msg.handedness),)  # fmt: skip
        if self._by_side:
            self._hand_by_side[msg.handedness] = self._hands[0]
            self._hands = tuple(self._hand_by_side.values())

    def _on_joint_state(self, msg: JointState) -> None:
        q = np.asarray(msg.position, dtype=float)
        ok = q.shape == self.lower.shape and np.isfinite(q).all() \
            and (q >= self.lower - 1e-9).all() and (q <= self.upper + 1e-9).all()  # fmt: skip
        self.commands_ok = self.commands_ok and bool(ok)
        self.joint_states += 1
        self.last_positions = q
        self.last_message_at = time.monotonic()
        if self._recorder is not None:
            self._recorder.write(self._command_sub.topic_name, msg,
                                 self.get_clock().now().nanoseconds)  # fmt: skip
        if self._viz is not None and self._image is not None:
            self._viz.submit(VizFrame(self._image, self._uv, self._K, self._hands,
                                      dict(zip(msg.name, q, strict=True)),
                                      tuple(self._other_commands),
                                      dict(self._uv_by_side),
                                      tuple(self._estimated_by_side.values())))  # fmt: skip

    def close(self) -> None:
        """Finish the video and the bag."""
        if self._viz is not None:
            self._viz.close()
            self._viz = None
        if self._recorder is not None:
            self._recorder.__exit__(None, None, None)
            self._recorder = None
