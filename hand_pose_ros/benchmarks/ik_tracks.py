"""``hand-teleop bench ik_tracks``: does the IK node keep memory per hand track?

In the soak the estimator's hand tracks come and go (a few a minute), and anything the
IK node keeps per track id grows its memory without bound. This bench runs the IK node
in its own process (``config/teleop.yaml``, as in the soak) and feeds it, over DDS, demo
keypoints of both hands (3D, image points, per-keypoint confidences) and the camera's
intrinsics, with a new track id every ``--per-track`` messages. Each message waits for
the node's /diagnostics answer (lockstep: none is dropped, however loaded the machine).
Rows: the node's resident memory every 50 tracks; summary: growth (MB) and its
least-squares slope per track (KB). ``--source-dir`` runs the node from another
checkout (e.g. an older commit) for a before / after comparison.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from pathlib import Path

import numpy as np

from hand_pose_ros.benchmarks.soak import rss_mb, start_node_process, stop_node_processes
from hand_pose_ros.benchmarks.utils import machine_info

#: Tracks between two memory samples.
SAMPLE_EVERY_TRACKS = 50
#: Longest wait for the node's answer to one message, s.
ANSWER_TIMEOUT_S = 3.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tracks", type=int, default=300, help="new track ids measured")
    parser.add_argument("--per-track", type=int, default=3, help="messages per track id")
    parser.add_argument("--warmup-tracks", type=int, default=30,
                        help="track ids before the first sample (fixed-size caches fill)")
    parser.add_argument("--no-camera-info", action="store_true",
                        help="publish no intrinsics (the IK fits 3D only)")
    parser.add_argument("--no-markers", action="store_true", help="publish_markers:=false")
    parser.add_argument("--source-dir", type=Path, default=None,
                        help="run the IK node from this checkout instead of this one")


def run(args: argparse.Namespace) -> dict:
    if args.tracks < 1 or args.per_track < 1 or args.warmup_tracks < 0:
        raise ValueError("--tracks and --per-track must be >= 1, --warmup-tracks >= 0")
    env = dict(os.environ)
    env.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(150, 200)))
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.update({k: env[k] for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE")})
    source = None if args.source_dir is None else args.source_dir.resolve()
    procs = {"ik_node": start_node_process("ik_node", {"publish_markers": not args.no_markers},
                                           env, source)}  # fmt: skip
    try:
        rows = _feed(procs["ik_node"].pid, args)
    finally:
        codes = stop_node_processes(procs)
    rows[-1]["exit_codes"] = codes
    return {"bench": "ik_tracks", "machine": machine_info(), "source_dir": str(source or "."),
            "camera_info": not args.no_camera_info, "markers": not args.no_markers,
            "rows": rows}  # fmt: skip


def _feed(pid: int, args: argparse.Namespace) -> list[dict]:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from sensor_msgs.msg import CameraInfo

    from hand_pose_ros.msg import HandKeypoints, HandState
    from hand_pose_ros.nodes.conversions import keypoints_to_msg
    from hand_pose_ros.nodes.qos import IMAGE_QOS, RESULT_PUB_QOS, RESULT_SUB_QOS
    from hand_pose_ros.pipeline.demo import DemoHand

    demo = DemoHand(noise_m=0.002, hands=2)
    hands = [h for i in range(0, 120, 3) for h in demo.frame_at(i).hands]
    rng = np.random.default_rng(0)
    context = rclpy.context.Context()
    rclpy.init(context=context)
    node = Node("ik_tracks_feeder", context=context)
    keypoints_pub = node.create_publisher(HandKeypoints, "/hand/keypoints", RESULT_PUB_QOS)
    info_pub = node.create_publisher(CameraInfo, "/camera/camera_info", IMAGE_QOS)
    counts = {"states": 0, "answers": 0}

    def on_diagnostics(msg: DiagnosticArray) -> None:
        counts["answers"] += sum(s.name == "hand_pose_ros/ik" for s in msg.status)

    node.create_subscription(HandState, "/hand/state",
                             lambda _: counts.__setitem__("states", counts["states"] + 1),
                             RESULT_SUB_QOS)  # fmt: skip
    node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 50)
    info = CameraInfo(width=demo.width, height=demo.height, k=demo.K.reshape(-1).tolist())
    info.header.frame_id = "camera"
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    rows, missed, sent = [], 0, 0
    try:
        deadline = time.monotonic() + 60.0
        while node.count_subscribers("/hand/keypoints") == 0:
            if time.monotonic() > deadline:
                raise RuntimeError("the IK node did not subscribe to /hand/keypoints in 60 s")
            executor.spin_once(timeout_sec=0.1)
        start = time.monotonic()
        for track in range(-args.warmup_tracks, args.tracks + 1):
            if track >= 0 and (track % SAMPLE_EVERY_TRACKS == 0 or track == args.tracks):
                rows.append({"name": f"track_{track}", "tracks": track, "messages": sent,
                             "seconds": round(time.monotonic() - start, 1),
                             "rss_mb_ik_node": rss_mb(pid)})  # fmt: skip
            if track == args.tracks:
                break
            for _ in range(args.per_track):
                hand = hands[sent % len(hands)]
                stamp = node.get_clock().now().to_msg()
                if not args.no_camera_info and sent % 5 == 0:
                    info.header.stamp = stamp
                    info_pub.publish(info)
                confidence = rng.uniform(0.4, 1.0, 21)
                answers = counts["answers"]
                keypoints_pub.publish(keypoints_to_msg(
                    hand.joints_cam, stamp=stamp, frame_id="camera",
                    handedness=hand.handedness, score=float(confidence.mean()),
                    image_points=hand.uv, confidence=confidence,
                    track_id=args.warmup_tracks + track))  # fmt: skip
                sent += 1
                deadline = time.monotonic() + ANSWER_TIMEOUT_S
                while counts["answers"] == answers and time.monotonic() < deadline:
                    executor.spin_once(timeout_sec=0.01)
                missed += counts["answers"] == answers
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
    tracks = np.array([r["tracks"] for r in rows], float)
    rss = np.array([r["rss_mb_ik_node"] for r in rows], float)
    rows.append({"name": "summary", "tracks": args.tracks, "messages": sent,
                 "hand_states": counts["states"], "unanswered": missed,
                 "rss_growth_mb": round(float(rss[-1] - rss[0]), 2),
                 "rss_kb_per_track": round(float(np.polyfit(tracks, rss, 1)[0]) * 1024.0, 1)
                 if len(rows) >= 2 else None})  # fmt: skip
    return rows
