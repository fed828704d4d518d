"""Estimator node: /camera/image_raw (+ camera_info) -> /hand/keypoints per hand found."""

from __future__ import annotations

import time

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from hand_pose_ros.msg import HandKeypoints
from hand_pose_ros.nodes.callback_guard import CallbackGuard
from hand_pose_ros.nodes.conversions import keypoints_to_msg
from hand_pose_ros.nodes.diagnostics import RateMeter, diagnostic_array
from hand_pose_ros.nodes.image_conversion import msg_to_rgb
from hand_pose_ros.nodes.live_params import in_range, live_parameters_callback
from hand_pose_ros.nodes.qos import IMAGE_QOS, RESULT_PUB_QOS
from hand_pose_ros.nodes.spin import spin_node
from hand_pose_ros.pipeline.estimators import create_estimator
from hand_pose_ros.pipeline.video_source import default_intrinsics

#: Track ids for estimators that do not track (the mediapipe reference): one per side.
SIDE_TRACK_ID = {"right": 0, "left": 1}


class EstimatorNode(Node):
    """Finds hands in each image and publishes their keypoints (newest image only)."""

    def __init__(self, **kwargs) -> None:
        super().__init__("estimator_node", **kwargs)
        self.declare_parameter("estimator", "auto")
        # Runtime of our networks (torch | onnx | tensorrt); the mediapipe reference runs its own.
        self.declare_parameter("backend", "onnx")
        self.declare_parameter("device", "cpu")  # cpu | cuda (ONNX Runtime, torch)
        self.declare_parameter("max_hands", 2)
        self.declare_parameter("min_score", 0.5)
        self.declare_parameter("mirrored_input", False)
        # auto: the estimator's handedness; right | left: the operator's hand (best hand only)
        self.declare_parameter("hand_side", "auto")
        self.declare_parameter("hfov_deg", 65.0)
        self.declare_parameter("landmark_model", "landmark_full")  # handtrack: or landmark_lite
        self.estimator = create_estimator(
            self.get_parameter("estimator").value,
            max_hands=int(self.get_parameter("max_hands").value),
            mirrored_input=bool(self.get_parameter("mirrored_input").value),
            backend=str(self.get_parameter("backend").value),
            device=str(self.get_parameter("device").value),
            hand_side=str(self.get_parameter("hand_side").value),
            landmark_model=str(self.get_parameter("landmark_model").value),
        )  # fmt: skip
        self.K = None
        self.pub = self.create_publisher(HandKeypoints, "/hand/keypoints", RESULT_PUB_QOS)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.guard = CallbackGuard(self, "estimator")
        self.create_subscription(CameraInfo, "/camera/camera_info",
                                 self.guard.wrap(self.on_info), IMAGE_QOS)  # fmt: skip
        self.create_subscription(Image, "/camera/image_raw", self.guard.wrap(self.on_image),
                                 IMAGE_QOS)  # fmt: skip
        # min_score and hfov_deg are read per image; the estimator is built once.
        self.add_on_set_parameters_callback(live_parameters_callback(
            ("estimator", "backend", "device", "max_hands", "mirrored_input", "hand_side",
             "landmark_model"),
            {"min_score": in_range(0.0, 1.0), "hfov_deg": in_range(1.0, 179.0)}))
        self.rate = RateMeter()
        self.images = 0
        self.images_with_hand = 0
        self.rejected = 0

    def on_info(self, msg: CameraInfo) -> None:
        import numpy as np

        k = np.asarray(msg.k, dtype=float).reshape(3, 3)
        if k[0, 0] > 0 and k[1, 1] > 0:
            self.K = k

    def on_image(self, msg: Image) -> None:
        try:
            rgb = msg_to_rgb(msg)
        except ValueError as exc:
            self.rejected += 1
            self.get_logger().error(f"rejected image: {exc}", throttle_duration_sec=1.0)
            return
        K = self.K if self.K is not None else default_intrinsics(
            rgb.shape[1], rgb.shape[0], float(self.get_parameter("hfov_deg").value))  # fmt: skip
        start = time.perf_counter()
        try:
            hands = self.estimator(rgb, K)
        except ValueError as exc:  # an image or K the estimator cannot use (e.g. too small)
            self.rejected += 1
            self.get_logger().error(f"rejected image: {exc}", throttle_duration_sec=1.0)
            return
        ms = (time.perf_counter() - start) * 1e3
        self.images += 1
        self.rate.tick()
        min_score = float(self.get_parameter("min_score").value)
        published = 0
        for hand in hands:
            if hand.score < min_score:
                continue
            self.pub.publish(keypoints_to_msg(
                hand.camera_points, stamp=msg.header.stamp, frame_id=msg.header.frame_id,
                handedness=hand.handedness, score=hand.score, image_points=hand.image_points,
                confidence=hand.confidence,
                track_id=hand.track_id if hand.track_id >= 0 else SIDE_TRACK_ID[hand.handedness],
            ))  # fmt: skip
            published += 1
        self.images_with_hand += published > 0
        values = {"estimator_ms": ms, "rate_hz": self.rate.hz, "hands": published,
                  "hand_rate": self.images_with_hand / self.images,
                  "rejected_images": self.rejected}  # fmt: skip
        stages = getattr(self.estimator, "times", None)  # the handtrack graph's stage times
        if stages is not None:
            values.update(palm_ms=stages.palm_ms, landmark_ms=stages.landmark_ms)
        errors, level = self.guard.diagnostics()
        values.update(errors)
        self.diag_pub.publish(diagnostic_array(self.get_clock().now().to_msg(), "estimator",
                                               values, level=level,
                                               message="errors" if errors else "ok"))  # fmt: skip


def main(args: list[str] | None = None) -> None:
    spin_node(EstimatorNode, args)


if __name__ == "__main__":
    main()
