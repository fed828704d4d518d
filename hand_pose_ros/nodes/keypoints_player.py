"""Publish a recorded 21-keypoint sequence on /hand/keypoints at a fixed rate.

Feeds motion capture, glove or other-tracker data straight into the IK stage,
so the robot side runs without a camera.

Recorded joints are often in their own frame (wrist at the origin), not in front of a
camera: run the IK node with ``plausibility.check_depth:=false`` for them
(``hand-teleop run --source keypoints:FILE`` does).
"""

from __future__ import annotations

from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data

from hand_pose_ros.io.keypoint_sequences import load_keypoint_sequence
from hand_pose_ros.msg import HandKeypoints
from hand_pose_ros.nodes.callback_guard import CallbackGuard
from hand_pose_ros.nodes.conversions import keypoints_to_msg
from hand_pose_ros.nodes.live_params import live_parameters_callback
from hand_pose_ros.nodes.spin import spin_node
from hand_pose_ros.scene_frames import CAMERA_FRAME


class KeypointsPlayer(Node):
    """Replays an (N, 21, 3) keypoint file as HandKeypoints messages (a FrameSource)."""

    def __init__(self, *, qos: QoSProfile = qos_profile_sensor_data, **kwargs) -> None:
        super().__init__("keypoints_player", **kwargs)
        self.declare_parameter("file", "")
        self.declare_parameter("array_key", "")
        self.declare_parameter("rate_hz", 30.0)
        self.declare_parameter("loop", True)
        self.declare_parameter("frame_id", CAMERA_FRAME)
        self.declare_parameter("handedness", "right")
        self.declare_parameter("max_frames", 0)
        path = self.get_parameter("file").value
        if not path:
            raise ValueError("parameter 'file' is empty: give a .npz/.npy keypoint file")
        rate_hz = float(self.get_parameter("rate_hz").value)
        if not rate_hz > 0.0:
            raise ValueError(f"parameter 'rate_hz' must be > 0, got {rate_hz}")
        self.joints = load_keypoint_sequence(path, self.get_parameter("array_key").value or None)
        """(N, 21, 3) recorded keypoints, metres."""
        self.loop = bool(self.get_parameter("loop").value)
        self.max_frames = int(self.get_parameter("max_frames").value)
        self.frame_id = self.get_parameter("frame_id").value
        self.handedness = self.get_parameter("handedness").value
        self.frames_published = 0
        self.finished = False
        self.publisher = self.create_publisher(HandKeypoints, "/hand/keypoints", qos)
        # A frame that fails (read, conversion, publish) is dropped, counted and logged;
        # the source keeps running.
        self.guard = CallbackGuard(self, "keypoints_player")
        self.timer = self.create_timer(1.0 / rate_hz, self.guard.wrap(self.publish_next))
        self.add_on_set_parameters_callback(live_parameters_callback(
            ("file", "array_key", "rate_hz", "loop", "frame_id", "handedness", "max_frames")))
        self.get_logger().info(f"playing {len(self.joints)} frames from {path} at {rate_hz} Hz")

    @property
    def expected_frames(self) -> int | None:
        """``max_frames``, else the file's length, or None when it loops."""
        if self.max_frames:
            return self.max_frames
        return None if self.loop else len(self.joints)

    def stop(self) -> None:
        self.finished = True
        self.timer.cancel()

    def publish_next(self) -> None:
        expected = self.expected_frames
        if self.finished or (expected is not None and self.frames_published >= expected):
            self.stop()
            return
        joints = self.joints[self.frames_published % len(self.joints)]
        self.publisher.publish(keypoints_to_msg(
            joints, stamp=self.get_clock().now().to_msg(), frame_id=self.frame_id,
            handedness=self.handedness))  # fmt: skip
        self.frames_published += 1


def main(args: list[str] | None = None) -> None:
    spin_node(KeypointsPlayer, args)


if __name__ == "__main__":
    main()
