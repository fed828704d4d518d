"""Camera node: frames of a video file or OpenCV device on /camera/image_raw + camera_info."""

from __future__ import annotations

from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from hand_pose_ros.nodes.callback_guard import CallbackGuard
from hand_pose_ros.nodes.image_conversion import camera_info_msg, image_to_msg
from hand_pose_ros.nodes.live_params import live_parameters_callback
from hand_pose_ros.nodes.qos import IMAGE_QOS
from hand_pose_ros.nodes.spin import spin_node
from hand_pose_ros.pipeline.defaults import DEFAULT_HFOV_DEG
from hand_pose_ros.pipeline.video_source import VideoSource
from hand_pose_ros.scene_frames import CAMERA_FRAME


class CameraSource(Node):
    """Publishes ``source`` (``video:PATH`` or ``webcam:N``) at ``fps`` (0: the source's rate).

    A :class:`~hand_pose_ros.nodes.frame_source.FrameSource`.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__("camera_source", **kwargs)
        self.declare_parameter("source", "webcam:0")
        self.declare_parameter("fps", 0.0)
        self.declare_parameter("hfov_deg", DEFAULT_HFOV_DEG)
        self.declare_parameter("loop", False)
        self.declare_parameter("frame_id", CAMERA_FRAME)
        self.declare_parameter("max_frames", 0)
        self.source = VideoSource(self.get_parameter("source").value,
                                  hfov_deg=float(self.get_parameter("hfov_deg").value),
                                  loop=bool(self.get_parameter("loop").value),
                                  prefetch=True)  # fmt: skip
        fps = float(self.get_parameter("fps").value) or self.source.fps
        self.frame_id = self.get_parameter("frame_id").value
        self.max_frames = int(self.get_parameter("max_frames").value)
        self.image_pub = self.create_publisher(Image, "/camera/image_raw", IMAGE_QOS)
        self.info_pub = self.create_publisher(CameraInfo, "/camera/camera_info", IMAGE_QOS)
        self.frames_published = 0
        self.finished = False
        # A frame that fails (read, conversion, publish) is dropped, counted and logged;
        # the source keeps running.
        self.guard = CallbackGuard(self, "camera_source")
        self.timer = self.create_timer(1.0 / fps, self.guard.wrap(self.publish_next))
        self.add_on_set_parameters_callback(live_parameters_callback(  # all read at start-up
            ("source", "fps", "hfov_deg", "loop", "frame_id", "max_frames")))

    @property
    def expected_frames(self) -> int | None:
        """``max_frames``, or None: until the file ends (unknown ahead), or never (live)."""
        return self.max_frames or None

    def stop(self) -> None:
        self.finished = True
        self.timer.cancel()

    def publish_next(self) -> None:
        if self.max_frames and self.frames_published >= self.max_frames:
            self.stop()
        rgb = None if self.finished else self.source.read()
        if rgb is None:
            if not self.finished:
                self.get_logger().info(f"end of {self.get_parameter('source').value}")
            self.stop()
            return
        stamp = self.get_clock().now().to_msg()
        self.image_pub.publish(image_to_msg(rgb, stamp=stamp, frame_id=self.frame_id))
        self.info_pub.publish(camera_info_msg(self.source.K, self.source.width, self.source.height,
                                              stamp=stamp, frame_id=self.frame_id))  # fmt: skip
        self.frames_published += 1

    def destroy_node(self) -> None:
        self.source.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    spin_node(CameraSource, args)


if __name__ == "__main__":
    main()
