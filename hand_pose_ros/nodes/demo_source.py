"""Demo camera: a synthetic hand performs a scripted sequence (no camera, GPU or download).

Publishes ``/camera/image_raw`` + ``/camera/camera_info`` and, since it knows the truth,
``/hand/keypoints`` (parameter ``publish_keypoints``): the demo then drives the IK and robot
side directly; with it off, an image estimator node fills ``/hand/keypoints`` instead.
``hands`` 2 shows a right and a left hand (bimanual teleop): one keypoint message per hand
and frame, right first, track ids ``pipeline.demo.DEMO_TRACK_IDS``.
"""

from __future__ import annotations

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from hand_pose_ros.msg import HandKeypoints
from hand_pose_ros.nodes.callback_guard import CallbackGuard
from hand_pose_ros.nodes.conversions import keypoints_to_msg
from hand_pose_ros.nodes.image_conversion import camera_info_msg, image_to_msg
from hand_pose_ros.nodes.live_params import live_parameters_callback
from hand_pose_ros.nodes.qos import IMAGE_QOS, RESULT_PUB_QOS
from hand_pose_ros.nodes.spin import spin_node
from hand_pose_ros.pipeline.demo import DemoHand
from hand_pose_ros.scene_frames import CAMERA_FRAME


class DemoSource(Node):
    """Publishes scripted synthetic hand frames at ``fps`` (a :class:`FrameSource`)."""

    def __init__(self, **kwargs) -> None:
        super().__init__("demo_source", **kwargs)
        self.declare_parameter("fps", 30.0)
        self.declare_parameter("publish_keypoints", True)
        self.declare_parameter("keypoint_noise_m", 0.0)
        self.declare_parameter("frame_id", CAMERA_FRAME)
        self.declare_parameter("max_frames", 0)
        self.declare_parameter("hands", 1, ParameterDescriptor(
            description="1: a right hand; 2: a right and a left hand, both moving "
                        "(bimanual teleop)."))  # fmt: skip

        fps = float(self.get_parameter("fps").value)
        if not fps > 0:
            raise ValueError(f"parameter 'fps' must be > 0, got {fps}")
        self.demo = DemoHand(fps=fps, noise_m=float(self.get_parameter("keypoint_noise_m").value),
                             hands=int(self.get_parameter("hands").value))  # fmt: skip
        self.frame_id = self.get_parameter("frame_id").value
        self.publish_keypoints = bool(self.get_parameter("publish_keypoints").value)
        self.max_frames = int(self.get_parameter("max_frames").value)
        self.image_pub = self.create_publisher(Image, "/camera/image_raw", IMAGE_QOS)
        self.info_pub = self.create_publisher(CameraInfo, "/camera/camera_info", IMAGE_QOS)
        # Only when it publishes: with an image estimator, /hand/keypoints has one publisher.
        self.keypoints_pub = (self.create_publisher(HandKeypoints, "/hand/keypoints",
                                                    RESULT_PUB_QOS)
                              if self.publish_keypoints else None)  # fmt: skip
        self.last_frame = None
        self.frames_published = 0
        self.finished = False
        # A frame that fails (read, conversion, publish) is dropped, counted and logged;
        # the source keeps running.
        self.guard = CallbackGuard(self, "demo_source")
        self.timer = self.create_timer(1.0 / fps, self.guard.wrap(self.publish_next))
        self.add_on_set_parameters_callback(live_parameters_callback(  # all read at start-up
            ("fps", "publish_keypoints", "keypoint_noise_m", "frame_id", "max_frames", "hands")))

    @property
    def expected_frames(self) -> int | None:
        """``max_frames``, or None: the script loops (one pass: :attr:`frames_per_pass`)."""
        return self.max_frames or None

    @property
    def frames_per_pass(self) -> int:
        """Frames of one pass of the demo script."""
        return round(self.demo.period_s * self.demo.fps)

    def stop(self) -> None:
        self.finished = True
        self.timer.cancel()

    def publish_next(self) -> None:
        if self.finished or (self.max_frames and self.frames_published >= self.max_frames):
            self.stop()
            return
        frame = next(self.demo)
        stamp = self.get_clock().now().to_msg()
        self.image_pub.publish(image_to_msg(frame.image, stamp=stamp, frame_id=self.frame_id))
        self.info_pub.publish(camera_info_msg(frame.K, self.demo.width, self.demo.height,
                                              stamp=stamp, frame_id=self.frame_id))  # fmt: skip
        if self.keypoints_pub is not None:
            for hand in frame.hands:
                self.keypoints_pub.publish(keypoints_to_msg(
                    hand.joints_cam, stamp=stamp, frame_id=self.frame_id,
                    handedness=hand.handedness, image_points=hand.uv,
                    track_id=hand.track_id))  # fmt: skip
        self.last_frame = frame
        self.frames_published += 1


def main(args: list[str] | None = None) -> None:
    spin_node(DemoSource, args)


if __name__ == "__main__":
    main()
