"""Estimator node: /camera/image_raw (+ camera_info) -> /hand/keypoints per hand found
(with the estimator's hand mesh in ``vertices`` when it gives one: ``handtrack_mesh``)."""

from __future__ import annotations

import time

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from hand_pose_ros.msg import HandKeypoints
from hand_pose_ros.nodes.callback_guard import CallbackGuard
from hand_pose_ros.nodes.config_params import (
    declare_config_parameters,
    read_config_parameters,
    replace_config,
)
from hand_pose_ros.nodes.conversions import keypoints_to_msg
from hand_pose_ros.nodes.diagnostics import RateMeter, diagnostic_array
from hand_pose_ros.nodes.image_conversion import msg_to_rgb
from hand_pose_ros.nodes.live_params import live_parameters_callback
from hand_pose_ros.nodes.qos import IMAGE_QOS, RESULT_PUB_QOS
from hand_pose_ros.nodes.spin import spin_node
from hand_pose_ros.pipeline.estimators import BUILD_FIELDS, EstimatorStageConfig, build_estimator
from hand_pose_ros.pipeline.video_source import default_intrinsics

#: Track ids for estimators that do not track (the mediapipe reference): one per side.
SIDE_TRACK_ID = {"right": 0, "left": 1}
#: Why a live change of a build field is refused on this backend.
TENSORRT_REASON = ("the tensorrt backend may build engines for minutes, blocking the node; "
                   "restart the node to change it")  # fmt: skip


class EstimatorNode(Node):
    """Finds hands in each image and publishes their keypoints (newest image only).

    Parameters: the fields of :class:`EstimatorStageConfig`, all live. ``min_score`` and
    ``hfov_deg`` are read per image; a change of the others rebuilds the estimator
    (refused with the reason if that fails, or on the tensorrt backend).
    """

    def __init__(self, **kwargs) -> None:
        super().__init__("estimator_node", **kwargs)
        declare_config_parameters(self, EstimatorStageConfig())
        self.config: EstimatorStageConfig = read_config_parameters(self, EstimatorStageConfig)
        self.estimator = build_estimator(self.config)
        self.K = None
        self.pub = self.create_publisher(HandKeypoints, "/hand/keypoints", RESULT_PUB_QOS)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.guard = CallbackGuard(self, "estimator")
        self.create_subscription(CameraInfo, "/camera/camera_info",
                                 self.guard.wrap(self.on_info), IMAGE_QOS)  # fmt: skip
        self.create_subscription(Image, "/camera/image_raw", self.guard.wrap(self.on_image),
                                 IMAGE_QOS)  # fmt: skip
        self.add_on_set_parameters_callback(live_parameters_callback((), {},
                                                                     self.apply_parameters))
        self.rate = RateMeter()
        self.images = 0
        self.images_with_hand = 0
        self.rejected = 0

    def apply_parameters(self, params) -> None:
        """Validate the changed config (ValueError names the parameter) and rebuild the
        estimator if a build field changed; nothing changes when that fails."""
        config = replace_config(self.config, {p.name: p.value for p in params})
        changed = [n for n in BUILD_FIELDS if getattr(config, n) != getattr(self.config, n)]
        if changed:
            if "tensorrt" in (config.backend, self.config.backend):
                raise ValueError(f"{changed[0]}: {TENSORRT_REASON}")
            try:
                estimator = build_estimator(config)
            except Exception as exc:  # any build failure (missing package, model) refuses it
                raise ValueError(f"{changed[0]}: cannot build the estimator: {exc}") from exc
            self.estimator = estimator
            self.get_logger().info(f"estimator rebuilt for {', '.join(changed)}")
        self.config = config

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
            rgb.shape[1], rgb.shape[0], self.config.hfov_deg)  # fmt: skip
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
        min_score = self.config.min_score
        published = 0
        for hand in hands:
            if hand.score < min_score:
                continue
            self.pub.publish(keypoints_to_msg(
                hand.camera_points, stamp=msg.header.stamp, frame_id=msg.header.frame_id,
                handedness=hand.handedness, score=hand.score, image_points=hand.image_points,
                confidence=hand.confidence, vertices=hand.vertices,
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
