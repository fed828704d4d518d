"""The estimator node on real rclpy with the default handtrack estimator: rendered demo
images in, /hand/keypoints out (tracked id, side, finite metric points), bad images
rejected while the node keeps running."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import spin_until
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from hand_pose_ros.nodes.qos import IMAGE_QOS, RESULT_SUB_QOS
from hand_pose_ros.params import load_node_parameters


@pytest.fixture(scope="module", autouse=True)
def _networks_available():
    from hand_pose_ros.handnets.registry import WheelNotInstalledError, locate_tflite

    try:
        locate_tflite("palm_full")
    except WheelNotInstalledError as exc:
        pytest.skip(f"hand networks not available: {exc}")


def test_estimator_node_publishes_tracked_hands(rclpy_context):
    from hand_pose_ros.msg import HandKeypoints
    from sensor_msgs.msg import CameraInfo

    from hand_pose_ros.nodes.conversions import keypoints_from_msg
    from hand_pose_ros.nodes.estimator_node import EstimatorNode
    from hand_pose_ros.nodes.image_conversion import camera_info_msg, image_to_msg
    from hand_pose_ros.pipeline.demo import DemoHand

    ctx = rclpy_context
    params = load_node_parameters()["estimator_node"]
    assert params["estimator"] == "handtrack"  # the shipped default
    node = EstimatorNode(context=ctx,
                         parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    talker = Node("demo_camera", context=ctx)
    image_pub = talker.create_publisher(Image, "/camera/image_raw", IMAGE_QOS)
    info_pub = talker.create_publisher(CameraInfo, "/camera/camera_info", IMAGE_QOS)
    received: list[HandKeypoints] = []
    talker.create_subscription(HandKeypoints, "/hand/keypoints", received.append, RESULT_SUB_QOS)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    executor.add_node(talker)
    demo = DemoHand()
    try:
        now = talker.get_clock().now().to_msg()
        bad = image_to_msg(np.zeros((48, 64, 3), np.uint8), stamp=now, frame_id="cam")
        bad.encoding = "16UC1"  # refused by the conversion
        tiny = image_to_msg(np.zeros((8, 8, 3), np.uint8), stamp=now, frame_id="cam")
        for i in range(12):
            frame = demo.frame_at(i * 3)
            stamp = talker.get_clock().now().to_msg()
            info_pub.publish(camera_info_msg(frame.K, demo.width, demo.height, stamp=stamp,
                                             frame_id="cam"))  # fmt: skip
            if i in (4, 8):  # rejected, logged, and the node goes on
                image_pub.publish(bad if i == 4 else tiny)  # tiny: refused by the estimator
                spin_until(executor, 0.3)
            image_pub.publish(image_to_msg(frame.image, stamp=stamp, frame_id="cam"))
            before = len(received)
            spin_until(executor, 2.0, until=lambda: len(received) > before)  # noqa: B023
    finally:
        executor.shutdown()
        node.destroy_node()
        talker.destroy_node()
    assert node.rejected == 2
    assert len(received) >= 8, f"{len(received)} keypoint messages for 12 images"
    assert {m.handedness for m in received} == {"right"}
    assert len({m.track_id for m in received}) == 1 and received[0].track_id >= 0
    for m in received:
        cam, uv, _ = keypoints_from_msg(m)
        assert m.score >= 0.5
        assert np.isfinite(cam).all() and (cam[:, 2] > 0.1).all()  # in front of the camera
        assert np.isfinite(uv).all() and (uv >= 0).all()


