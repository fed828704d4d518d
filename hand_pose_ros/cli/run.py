"""``hand-teleop run``: the teleop graph in one process (real rclpy nodes and topics).

The same node classes as the launch file, composed in one executor, configured from
the same parameter YAML. Sources: ``demo`` (a scripted synthetic hand, the default),
``video:PATH``, ``webcam:N``, ``keypoints:FILE.npz`` (straight into the IK) and ``ros``
(images from another node on /camera/image_raw).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from hand_pose_ros.estimation.detections import HAND_SIDES
from hand_pose_ros.pipeline.estimators import ESTIMATOR_NAMES

log = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run", help="run the teleop graph in one process (default: the embedded demo)",
        description=__doc__.split("\n\n")[0],
    )  # fmt: skip
    parser.add_argument("--source", default="demo",
                        help="demo | video:PATH | webcam:N | keypoints:FILE.npz | ros")
    parser.add_argument("--robot", default=None, help="robot config (config/robots/NAME.yaml)")
    parser.add_argument("--urdf", default=None, help="override the robot config's URDF path")
    parser.add_argument("--estimator", default=None, choices=[*ESTIMATOR_NAMES, "truth"],
                        help="image keypoint estimator (default: the parameter file's, "
                             "handtrack); 'truth' feeds the demo's own keypoints to the IK "
                             "instead (--source demo only)")  # fmt: skip
    parser.add_argument("--hand-side", choices=HAND_SIDES, default=None,
                        help="the operator's hand: every frame's best hand is taken as this "
                             "side (default: the parameter file's, auto = the estimator's "
                             "handedness)")  # fmt: skip
    parser.add_argument("--frames", type=int, default=0,
                        help="stop after N source frames (0: one pass of the demo script, the "
                             "end of a file, or never for live sources)")  # fmt: skip
    parser.add_argument("--params", type=Path, default=None,
                        help="ROS 2 parameter YAML (default: config/teleop.yaml)")
    parser.add_argument("--operator-profile", default=None, help="operator profile YAML")
    parser.add_argument("--no-post-opt", action="store_true", help="IK net only")
    parser.add_argument("--viz", type=Path, default=None,
                        help="write a side-by-side video (input | robot) to this .mp4")
    parser.add_argument("--record", type=Path, default=None,
                        help="record all topics to this rosbag2 MCAP file")
    parser.add_argument("--rate", type=float, default=None,
                        help="source frame rate (default: from the parameter file / the video)")
    parser.add_argument("--summary", type=Path, default=None,
                        help="also write the summary JSON here")
    parser.set_defaults(func=run)


def _node_overrides(args: argparse.Namespace) -> dict[str, dict]:
    from hand_pose_ros.params import DEFAULT_PARAMS, load_node_parameters
    from hand_pose_ros.pipeline.video_source import parse_source

    params = load_node_parameters(args.params or DEFAULT_PARAMS)
    kind, arg = parse_source(args.source)
    if args.robot:
        params["retarget_node"]["robot"] = args.robot
    if args.urdf:
        params["retarget_node"]["urdf"] = args.urdf
    if args.operator_profile:
        params["ik_node"]["operator_profile"] = args.operator_profile
    if args.no_post_opt:
        params["ik_node"]["post_opt"] = False
    if args.estimator not in (None, "truth"):
        params["estimator_node"]["estimator"] = args.estimator
    if args.hand_side:
        params["estimator_node"]["hand_side"] = args.hand_side
    if kind == "demo":
        # The demo's rendered image goes through the estimator like a camera image;
        # --estimator truth bypasses it with the demo's own keypoints.
        params["demo_source"]["publish_keypoints"] = args.estimator == "truth"
        if args.rate:
            params["demo_source"]["fps"] = args.rate
    elif args.estimator == "truth":
        raise ValueError("--estimator truth needs --source demo (only the demo knows the truth)")
    if kind in ("video", "webcam"):
        params["camera_source"]["source"] = args.source
        if args.rate:
            params["camera_source"]["fps"] = args.rate
    if kind == "keypoints":
        params["keypoints_player"]["file"] = arg
        # Recorded joints are in their own frame (often wrist at the origin), not in front
        # of a camera: the IK node's depth rule does not apply.
        params["ik_node"]["plausibility.check_depth"] = False
        if args.rate:
            params["keypoints_player"]["rate_hz"] = args.rate
    return params


def run(args: argparse.Namespace) -> int:
    from hand_pose_ros.dds_profile import use_package_dds_profile

    use_package_dds_profile()  # before rclpy loads Fast DDS: 720p images over shared memory
    import rclpy
    import torch
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from hand_pose_ros.nodes.monitor import TeleopMonitor
    from hand_pose_ros.pipeline.video_source import parse_source

    # Per-frame work is small: one intra-op thread avoids thread hand-off costs (measured:
    # a mesh forward of 23 ms with 2 threads on a busy CPU, 2.3 ms with 1).
    torch.set_num_threads(1)
    kind, _ = parse_source(args.source)
    params = _node_overrides(args)
    context = rclpy.context.Context()
    rclpy.init(context=context)
    nodes = []

    def make(cls, name: str):
        overrides = [Parameter(k, value=v) for k, v in params.get(name, {}).items()]
        node = cls(context=context, parameter_overrides=overrides)
        nodes.append(node)
        return node

    try:
        from hand_pose_ros.nodes.ik_node import IKNode
        from hand_pose_ros.nodes.retarget_node import RetargetNode

        source = estimator = None
        if kind == "demo":
            from hand_pose_ros.nodes.demo_source import DemoSource

            source = make(DemoSource, "demo_source")
            target = args.frames or round(source.demo.period_s * source.demo.fps)
        elif kind in ("video", "webcam"):
            from hand_pose_ros.nodes.camera_source import CameraSource

            source = make(CameraSource, "camera_source")
            target = args.frames
        elif kind == "keypoints":
            from hand_pose_ros.nodes.keypoints_player import KeypointsPlayer

            source = make(KeypointsPlayer, "keypoints_player")
            target = args.frames or len(source._joints)
        else:
            target = args.frames
        if kind in ("video", "webcam", "ros") or (kind == "demo" and args.estimator != "truth"):
            from hand_pose_ros.nodes.estimator_node import EstimatorNode

            estimator = make(EstimatorNode, "estimator_node")
        ik = make(IKNode, "ik_node")
        retarget = make(RetargetNode, "retarget_node")
        robot = retarget.stage.retargeter.robot
        monitor = TeleopMonitor(context=context, lower=robot.lower, upper=robot.upper,
                                urdf=retarget.stage.urdf_path, viz_path=args.viz,
                                record_path=args.record)  # fmt: skip
        nodes.append(monitor)
        # One thread for all nodes: measured here, spinning the source, the estimator and
        # the IK / robot side in three threads raised the median image -> command latency
        # from 49 to 127 ms (GIL hand-offs between many short Python steps).
        executor = SingleThreadedExecutor(context=context)
        for node in nodes:
            executor.add_node(node)
        log.info("running %s -> IK -> %s (%d joints)%s", args.source,
                 params["retarget_node"]["robot"], len(retarget.joint_names),
                 f", {target} frames" if target else "")  # fmt: skip
        start = time.monotonic()
        end_at = None
        try:
            while context.ok():
                executor.spin_once(timeout_sec=0.02)
                frames = _frames_in(source)
                finished = (target and frames >= target) or getattr(source, "finished", False) \
                    or _player_done(source)  # fmt: skip
                if finished and end_at is None:
                    if kind == "demo" or kind == "keypoints":
                        _stop_source(source)
                    end_at = time.monotonic() + 0.6  # let the last frames through the graph
                if end_at is not None and time.monotonic() > end_at:
                    break
        except KeyboardInterrupt:
            log.info("interrupted")
        elapsed = time.monotonic() - start
        summary = _summary(args.source, source, ik, retarget, monitor, elapsed)
        if estimator is not None:
            summary["estimator_images"] = estimator.images
            summary["estimator_images_with_hand"] = estimator.images_with_hand
            summary["estimator_rejected_images"] = estimator.rejected
        monitor.close()
    finally:
        for node in nodes:
            node.destroy_node()
        if context.ok():
            rclpy.shutdown(context=context)
    text = json.dumps(summary, indent=2)
    print(text)
    if args.summary:
        args.summary.write_text(text + "\n")
    return 0


def _frames_in(source) -> int:
    if source is None:
        return 0
    return int(getattr(source, "frames_published", 0))


def _player_done(source) -> bool:
    joints = getattr(source, "_joints", None)
    return joints is not None and not source._loop and source.frames_published >= len(joints)


def _stop_source(source) -> None:
    timer = getattr(source, "timer", None) or getattr(source, "_timer", None)
    if timer is not None:
        timer.cancel()


def _summary(spec: str, source, ik, retarget, monitor, elapsed: float) -> dict:
    import numpy as np

    lat = np.asarray(retarget.latencies_ms)
    frames = _frames_in(source)
    return {
        "source": spec,
        "robot": retarget.get_parameter("robot").value,
        "joint_names": list(retarget.joint_names),
        "seconds": round(elapsed, 2),
        "frames_in": frames,
        "hand_states": ik.states_published,
        "hands_refused": sum(ik.rejected.values()),
        "joint_states": monitor.joint_states,
        "frames_solved_by_ik": round(ik.states_published / frames, 3) if frames else None,
        "command_rate_hz": round(monitor.joint_states / elapsed, 2) if elapsed > 0 else 0.0,
        "latency_image_to_command_ms_median": float(np.median(lat)) if lat.size else None,
        "latency_image_to_command_ms_p90": float(np.percentile(lat, 90)) if lat.size else None,
        "all_commands_finite_and_in_limits": monitor.commands_ok,
        "viz": str(monitor.viz_path) if monitor.viz_path else None,
        "record": str(monitor.record_path) if monitor.record_path else None,
    }
