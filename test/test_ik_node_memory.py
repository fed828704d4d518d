"""The IK node keeps no memory per hand track: hand tracks come and go (~5 a minute from
the estimator), and a per-track cache grew the node by ~34 MB/h in the soak
(docs/reliability.md). Real rclpy node, real IK stage with the 2D reprojection term
(camera intrinsics set) and the hand-mesh markers published."""

from __future__ import annotations

import tracemalloc

import pytest
from rclpy.parameter import Parameter

from hand_pose_ros.params import load_node_parameters

WARMUP_TRACKS, MEASURED_TRACKS = 20, 60


def test_ik_node_keeps_no_memory_per_hand_track(rclpy_context):
    from hand_pose_ros.nodes.conversions import keypoints_to_msg
    from hand_pose_ros.nodes.ik_node import IKNode
    from hand_pose_ros.pipeline.demo import DemoHand

    params = load_node_parameters()["ik_node"]
    if not params.get("publish_markers", True):
        pytest.skip("config/teleop.yaml turns the IK node's markers off")
    node = IKNode(context=rclpy_context, parameter_overrides=[
        Parameter(k, value=v) for k, v in params.items()])  # fmt: skip
    demo = DemoHand(noise_m=0.002, hands=2)
    hands = [h for i in range(0, 48, 4) for h in demo.frame_at(i).hands]
    node.K = demo.K
    stamp = node.get_clock().now().to_msg()

    def solve(track_id: int) -> None:
        hand = hands[track_id % len(hands)]
        node.solve_hand(keypoints_to_msg(hand.joints_cam, stamp=stamp, frame_id="camera",
                                         handedness=hand.handedness, score=0.9,
                                         image_points=hand.uv, track_id=track_id))  # fmt: skip

    try:
        for track_id in range(WARMUP_TRACKS):  # caches of a fixed size fill up here
            solve(track_id)
        published = node.states_published
        tracemalloc.start()
        try:
            before = tracemalloc.take_snapshot()
            for track_id in range(WARMUP_TRACKS, WARMUP_TRACKS + MEASURED_TRACKS):
                solve(track_id)
            after = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
    finally:
        node.destroy_node()
    assert node.states_published - published >= MEASURED_TRACKS // 2, "too few hands solved"
    kept = sum(d.size_diff for d in after.compare_to(before, "filename"))
    # One marker template per track kept ~115 KB each (~7 MB here).
    assert kept < 2_000_000, f"{kept} bytes kept over {MEASURED_TRACKS} new hand tracks"
