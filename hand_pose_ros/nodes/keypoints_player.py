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
from hand_pose_ros.nodes.conversions import keypoints_to_msg
from hand_pose_ros.nodes.live_params import live_parameters_callback
from hand_pose_ros.nodes.spin import spin_node


class KeypointsPlayer(Node):
    """Replays an (N, 21, 3) keypoint file as HandKeypoints messages."""

    def __init__(self, *, qos: QoSProfile = qos_profile_sensor_data, **kwargs) -> None:
        super().__init__("keypoints_player", **kwargs)
        self.declare_parameter("file", "")
        self.declare_parameter("array_key", "")
        self.declare_parameter("rate_hz", 30.0)
        self.declare_parameter("loop", True)
        self.declare_parameter("frame_id", "camera_optical_frame")
        self.declare_parameter("handedness", "right")
        path = self.get_parameter("file").value
        if not path:
            raise ValueError("parameter 'file' is empty: give a .npz/.npy keypoint file")
        rate_hz = float(self.get_parameter("rate_hz").value)
        if not rate_hz > 0.0:
            raise ValueError(f"parameter 'rate_hz' must be > 0, got {rate_hz}")
        self._joints = load_keypoint_sequence(path, self.get_parameter("array_key").value or None)
        self._loop = bool(self.get_parameter("loop").value)
        self._frame_id = self.get_parameter("frame_id").value
        self._handedness = self.get_parameter("handedness").value
        self._index = 0
        self._publisher = self.create_publisher(HandKeypoints, "/hand/keypoints", qos)
        self._timer = self.create_timer(1.0 / rate_hz, self._publish_next)
        self.add_on_set_parameters_callback(live_parameters_callback(
            ("file", "array_key", "rate_hz", "loop", "frame_id", "handedness")))
        self.get_logger().info(f"playing {len(self._joints)} frames from {path} at {rate_hz} Hz")

    @property
    def frames_published(self) -> int:
        return self._index

    def _publish_next(self) -> None:
        if self._index >= len(self._joints):
            if not self._loop:
                self._timer.cancel()
                return
        joints = self._joints[self._index % len(self._joints)]
        msg = keypoints_to_msg(
            joints,
            stamp=self.get_clock().now().to_msg(),
            frame_id=self._frame_id,
            handedness=self._handedness,
        )
        self._publisher.publish(msg)
        self._index += 1


def main(args: list[str] | None = None) -> None:
    spin_node(KeypointsPlayer, args)


if __name__ == "__main__":
    main()
