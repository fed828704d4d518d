"""``hand-teleop run``: the teleop graph in one process (real rclpy nodes and topics).

The same node classes as the launch file, composed in one executor, configured from
the same parameter YAML. Sources: ``demo`` (a scripted synthetic hand, the default),
``video:PATH``, ``webcam:N``, ``keypoints:FILE.npz`` (straight into the IK) and ``ros``
(images from another node on /camera/image_raw). ``--robot-left NAME``: bimanual teleop,
the right hand drives ``--robot`` and the left hand drives NAME (the demo shows both; the
``--viz`` video has a panel per robot, and the summary a part per side).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from hand_pose_ros.dds_profile import use_package_dds_profile
from hand_pose_ros.graph_plan import (
    GRAPH_OPTIONS,
    GraphPlan,
    joint_states_topic,
    plan_graph,
)

log = logging.getLogger(__name__)

#: Executable (graph_plan.NODE_EXECUTABLES) -> "module:Class" of its node.
NODE_CLASSES: dict[str, str] = {
    "demo_source": "hand_pose_ros.nodes.demo_source:DemoSource",
    "camera_source": "hand_pose_ros.nodes.camera_source:CameraSource",
    "keypoints_player": "hand_pose_ros.nodes.keypoints_player:KeypointsPlayer",
    "estimator_node": "hand_pose_ros.nodes.estimator_node:EstimatorNode",
    "ik_node": "hand_pose_ros.nodes.ik_node:IKNode",
    "retarget_node": "hand_pose_ros.nodes.retarget_node:RetargetNode",
    "wrist_pose_node": "hand_pose_ros.nodes.wrist_pose_node:WristPoseNode",
}
#: After the source's last frame the graph runs on until no stage (estimator, IK) has
#: taken a message for DRAIN_QUIET_S seconds, so frames in the pipeline reach the robot
#: (for at most DRAIN_MAX_S seconds).
DRAIN_QUIET_S = 0.6
DRAIN_MAX_S = 5.0
#: Then every timer stops (the hand-lost commands among them) and the graph spins until
#: the monitors have received nothing for FLUSH_QUIET_S (at most FLUSH_MAX_S): the last
#: command's /tf reaches the bag, so every recorded command has its robot pose.
FLUSH_QUIET_S = 0.2
FLUSH_MAX_S = 2.0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run", help="run the teleop graph in one process (default: the embedded demo)",
        description=__doc__.split("\n\n")[0],
    )  # fmt: skip
    add_graph_arguments(parser)
    # graph_plan.CLI_ONLY: outputs of the in-process monitor.
    parser.add_argument("--viz", type=Path, default=None,
                        help="write a side-by-side video (input | robot; bimanual: input | "
                             "right robot | left robot) to this .mp4")
    parser.add_argument("--record", type=Path, default=None,
                        help="record all topics to this rosbag2 MCAP file")
    parser.add_argument("--summary", type=Path, default=None,
                        help="also write the summary JSON here")
    parser.set_defaults(func=run)


def add_graph_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per graph option (``--name``; the launch file's ``name:=``), same meaning."""
    for name, option in GRAPH_OPTIONS.items():
        flag = "--" + name.replace("_", "-")
        default = None if option.default == "" else option.kind(option.default)
        if option.kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None,
                                help=option.help)  # fmt: skip
        else:
            parser.add_argument(flag, type=Path if name == "params" else option.kind,
                                choices=option.choices, default=default,
                                help=option.help.replace("%", "%%"))  # fmt: skip


def run(args: argparse.Namespace) -> int:
    plan = plan_graph({name: getattr(args, name) for name in GRAPH_OPTIONS})
    use_package_dds_profile()  # before rclpy loads Fast DDS: 720p images over shared memory
    import rclpy
    import torch
    from sensor_msgs.msg import JointState
    from std_msgs.msg import String

    from hand_pose_ros.nodes.monitor import TeleopMonitor
    from hand_pose_ros.nodes.qos import COMMAND_QOS, LATCHED_QOS
    from hand_pose_ros.nodes.robot_state_node import RobotStateNode, robot_description_topic
    from hand_pose_ros.viz.teleop_viz import VizRobot

    # Per-frame work is small: one intra-op thread avoids thread hand-off costs (measured:
    # a mesh forward of 23 ms with 2 threads on a busy CPU, 2.3 ms with 1).
    torch.set_num_threads(1)
    context = rclpy.context.Context()
    rclpy.init(context=context)
    nodes: dict = {}
    try:
        for node_plan in plan.nodes:
            nodes[node_plan.name] = _create_node(node_plan.name, plan, context)
        source = nodes.get(plan.source_node)
        estimator = nodes.get("estimator_node")
        ik = nodes["ik_node"]
        monitors = {}
        # Bimanual: the bag (written by the first monitor) keeps the other robots' commands
        # and descriptions too; their /tf frames are prefixed on the one /tf topic.
        other_robots = tuple(
            topic for side in list(plan.robot_nodes)[1:]
            for topic in ((joint_states_topic(side), JointState, COMMAND_QOS),
                          (robot_description_topic(side), String, LATCHED_QOS)))  # fmt: skip
        # Bimanual: the video (the first monitor's) has one labelled panel per robot, each
        # drawn from its own URDF in its own side's commands.
        labels = {side: f"{side}: {nodes[name].get_parameter('robot').value}"
                  for side, name in plan.robot_nodes.items() if side}  # fmt: skip
        viz_others = tuple(
            (joint_states_topic(side), VizRobot(nodes[name].stage.urdf_path, labels[side]))
            for side, name in list(plan.robot_nodes.items())[1:])  # fmt: skip
        for side, name in plan.robot_nodes.items():
            retarget = nodes[name]
            robot = retarget.stage.retargeter.robot
            # One monitor per robot, checking the commands on its own topic (the first,
            # the right or only robot's, also writes the video, with every robot, and the
            # bag).
            monitors[side] = TeleopMonitor(
                context=context, lower=robot.lower, upper=robot.upper,
                urdf=retarget.stage.urdf_path, viz_path=args.viz if not monitors else None,
                record_path=args.record if not monitors else None,
                extra_recorded_topics=other_robots if not monitors else (),
                two_hands=plan.bimanual, viz_label=labels.get(side, "") if not monitors else "",
                viz_others=viz_others if not monitors else (),
                cli_args=_remap_args(f"teleop_monitor{'_' + side if side else ''}",
                                     {joint_states_topic(): joint_states_topic(side)}))  # fmt: skip
            nodes[f"monitor_{side}"] = monitors[side]
            # robot_state_publisher's job in the launch file (which never starts this node).
            nodes[f"robot_state_{side}"] = RobotStateNode(
                context=context, urdf=retarget.stage.urdf_path, side=side)  # fmt: skip
            log.info("running %s -> IK -> %s%s (%d joints)", args.source,
                     f"{side} hand -> " if side else "", retarget.get_parameter("robot").value,
                     len(retarget.joint_names))  # fmt: skip
        target = _target_frames(plan, source)
        if target:
            log.info("until %d frames", target)
        start = time.monotonic()
        _spin(context, list(nodes.values()), source, estimator, ik, target,
              list(monitors.values()))
        elapsed = time.monotonic() - start
        frames = _frames_in(source, estimator)
        first, *others = plan.robot_nodes.items()
        summary = _summary(args.source, frames, ik, nodes[first[1]], monitors[first[0]],
                           elapsed)  # fmt: skip
        if plan.bimanual:  # each side's part (the top-level robot keys: the right's)
            summary[first[0]] = _robot_summary(nodes[first[1]], monitors[first[0]], elapsed)
        for side, name in others:
            summary[side] = _robot_summary(nodes[name], monitors[side], elapsed)
            summary["all_commands_finite_and_in_limits"] &= monitors[side].commands_ok
        if plan.bimanual:
            summary["hand_states_by_side"] = dict(ik.states_by_side)
        if estimator is not None:
            summary["estimator_images"] = estimator.images
            summary["estimator_images_with_hand"] = estimator.images_with_hand
            summary["estimator_rejected_images"] = estimator.rejected
        for monitor in monitors.values():
            monitor.close()
    finally:
        for node in nodes.values():
            node.destroy_node()
        if context.ok():
            rclpy.shutdown(context=context)
    text = json.dumps(summary, indent=2)
    print(text)
    if args.summary:
        args.summary.write_text(text + "\n")
    return 0


def _create_node(name: str, plan: GraphPlan, context):
    """The node ``name`` of the plan, with the params file's values and the plan's overrides
    (named ``name`` as the launch file names it, e.g. ``retarget_left_node``)."""
    import importlib

    from rclpy.parameter import Parameter

    executable = plan.node(name).executable
    module, _, cls = NODE_CLASSES[executable].partition(":")
    node_class = getattr(importlib.import_module(module), cls)
    overrides = [Parameter(k, value=v) for k, v in plan.parameters(name).items()]
    extra = {} if name == executable else {"cli_args": _remap_args(name)}
    return node_class(context=context, parameter_overrides=overrides, **extra)


def _remap_args(node_name: str, topics: dict[str, str] | None = None) -> list[str]:
    """ROS arguments naming a node ``node_name`` and remapping ``topics`` (from -> to)."""
    args = ["--ros-args", "-r", f"__node:={node_name}"]
    for old, new in (topics or {}).items():
        if old != new:
            args += ["-r", f"{old}:={new}"]
    return args


def _target_frames(plan: GraphPlan, source) -> int:
    """Frames after which the run ends (0: until the source finishes or Ctrl-C).

    The in-process run is a finite job: the demo, which loops under ``ros2 launch``,
    ends here after one pass of its script unless ``--frames`` says otherwise.
    """
    if source is None:
        return plan.frames  # `ros`: counted as the estimator's images
    if source.expected_frames:
        return int(source.expected_frames)
    return source.frames_per_pass if plan.source_kind == "demo" else 0


def _frames_in(source, estimator) -> int:
    """Frames into the graph: the source's, or the estimator's images (``ros`` source)."""
    if source is not None:
        return int(source.frames_published)
    return int(estimator.images) if estimator is not None else 0


def _spin(context, nodes: list, source, estimator, ik, target: int, monitors: list) -> None:
    """Spin every node in one thread until the source is done, the pipeline has drained
    and the monitors have what was published (see :data:`DRAIN_QUIET_S`), or Ctrl-C."""
    from rclpy.executors import SingleThreadedExecutor

    # One thread for all nodes: measured here, spinning the source, the estimator and
    # the IK / robot side in three threads raised the median image -> command latency
    # from 49 to 127 ms (GIL hand-offs between many short Python steps).
    executor = SingleThreadedExecutor(context=context)
    for node in nodes:
        executor.add_node(node)

    def progress() -> tuple[int, int]:
        return (estimator.images + estimator.rejected if estimator is not None else 0,
                ik.frames)  # fmt: skip

    done_at = flush_at = None
    last_progress, progress_at = progress(), time.monotonic()
    try:
        while context.ok():
            executor.spin_once(timeout_sec=0.02)
            now = time.monotonic()
            if done_at is None:
                if (target and _frames_in(source, estimator) >= target) or (
                        source is not None and source.finished):  # fmt: skip
                    if source is not None:
                        source.stop()
                    done_at = progress_at = now
                continue
            if flush_at is None:
                current = progress()
                if current != last_progress:
                    last_progress, progress_at = current, now
                if now - progress_at > DRAIN_QUIET_S or now - done_at > DRAIN_MAX_S:
                    for node in nodes:
                        for timer in node.timers:
                            timer.cancel()
                    flush_at = now
                continue
            heard = max([flush_at] + [m.last_message_at for m in monitors])
            if now - heard > FLUSH_QUIET_S or now - flush_at > FLUSH_MAX_S:
                break
    except KeyboardInterrupt:
        log.info("interrupted")


def _summary(spec: str, frames: int, ik, retarget, monitor, elapsed: float) -> dict:
    """The run's summary; the robot keys are the right (bimanual) or only robot's (bimanual:
    also under ``right``, and the left robot's under ``left``)."""
    robot = _robot_summary(retarget, monitor, elapsed)
    return {
        "source": spec,
        "robot": robot.pop("robot"),
        "joint_names": robot.pop("joint_names"),
        "seconds": round(elapsed, 2),
        "frames_in": frames,
        "hand_states": ik.states_published,
        "hands_refused": sum(ik.rejected.values()),
        "joint_states": robot.pop("joint_states"),
        "frames_solved_by_ik": round(ik.states_published / frames, 3) if frames else None,
        **robot,
        "viz": str(monitor.viz_path) if monitor.viz_path else None,
        "record": str(monitor.record_path) if monitor.record_path else None,
    }


def _robot_summary(retarget, monitor, elapsed: float) -> dict:
    """One robot's part of the summary: its commands as its monitor received them."""
    import numpy as np

    lat = np.asarray(retarget.latencies_ms)
    return {
        "robot": retarget.get_parameter("robot").value,
        "joint_names": list(retarget.joint_names),
        "joint_states": monitor.joint_states,
        "command_rate_hz": round(monitor.joint_states / elapsed, 2) if elapsed > 0 else 0.0,
        "latency_image_to_command_ms_median": float(np.median(lat)) if lat.size else None,
        "latency_image_to_command_ms_p90": float(np.percentile(lat, 90)) if lat.size else None,
        "all_commands_finite_and_in_limits": monitor.commands_ok,
    }
