"""Launch the hand teleop graph: source -> estimator -> IK -> retargeting -> robot + RViz.

    ros2 launch hand_pose_ros teleop.launch.py                       # demo hand, our robot hand
    ros2 launch hand_pose_ros teleop.launch.py source:=webcam:0 robot:=allegro \
        urdf:=/path/to/allegro_hand_right.urdf
    ros2 launch hand_pose_ros teleop.launch.py source:=ros use_rviz:=false  # your camera node
    ros2 launch hand_pose_ros teleop.launch.py robot_left:=hand_pose_ros_hand_left  # two hands
    ros2 launch hand_pose_ros teleop.launch.py --show-args           # every argument, described

Which nodes start and which parameters the arguments set come from the graph plan
(hand_pose_ros/graph_plan.py), the same one `hand-teleop run` uses: every graph argument
here is a flag there with the same meaning. Every node reads config/teleop.yaml (or
``params:=``); the arguments override single values. robot_state_publisher, the static
transforms (tf2_ros) and RViz are optional parts of a ROS install: with ``auto`` they
start where installed and are left out, with one log line, where not. If any process
exits while the graph runs (a node failing at start-up, RViz closed), the whole launch
shuts down: no node is left running on its own. The tables below are plain data, so
tests and the README check them without ROS' launch package.

Bimanual (``robot_left:=NAME``): a second retarget node drives the left robot; a second
robot_state_publisher, in namespace ``left`` with ``frame_prefix`` ``left/``, publishes
its model on /left/robot_description and its links' TF beside the right robot's, and
RViz gets a second robot model display (:func:`bimanual_rviz_config`).
"""

from __future__ import annotations

from hand_pose_ros.graph_plan import (
    GRAPH_OPTIONS,
    LAUNCH_ONLY,
    GraphConfigError,
    joint_states_topic,
    plan_graph,
)
from hand_pose_ros.scene_frames import (
    CAMERA_IN_WORLD,
    LEFT_ROBOT_FRAME_PREFIX,
    robot_base_in_world,
)

#: Files of this package the launch file reads.
PACKAGE_FILES: tuple[str, ...] = ("config/teleop.yaml", "config/teleop.rviz")
#: With respawn:=true, how often one node may be restarted before the launch gives up.
MAX_RESPAWNS = 5
#: Launch arguments of ros2 launch only (graph_plan.LAUNCH_ONLY): name -> (default, what).
LAUNCH_ARGUMENTS: dict[str, tuple[str, str]] = {
    "use_rviz": ("auto",
                 "Start RViz with config/teleop.rviz: true | false | auto (where rviz2 is "
                 "installed and a display is set)."),
    "use_robot_state_publisher": (
        "auto",
        "Publish the robot model (TF of its links) from its joint states (bimanual: both "
        "robots, the left one's frames prefixed left/): true | false | auto (where "
        "robot_state_publisher is installed)."),
    "use_static_tf": ("auto",
                      "Static transforms placing camera and robot in the world frame: true | "
                      "false | auto (where tf2_ros is installed)."),
    "respawn": ("false",
                "Restart our nodes (source, estimator, IK, retargeting) when they die: true | "
                f"false. With false (or after {MAX_RESPAWNS} restarts of one node) any exit "
                "shuts the whole launch down."),
    "respawn_delay": ("1.0", "Seconds to wait before restarting a node (respawn:=true)."),
}
assert tuple(LAUNCH_ARGUMENTS) == LAUNCH_ONLY
#: Every launch argument: name -> (default, description). The README's table repeats it.
#: The graph options (hand_pose_ros/graph_plan.py) are `hand-teleop run`'s flags too.
ARGUMENTS: dict[str, tuple[str, str]] = {
    **{name: (option.default, option.help) for name, option in GRAPH_OPTIONS.items()},
    **LAUNCH_ARGUMENTS,
}
#: Optional parts of a ROS install: argument -> (package, executable, what is lost without it).
OPTIONAL_PARTS: dict[str, tuple[str, str, str]] = {
    "use_robot_state_publisher": ("robot_state_publisher", "robot_state_publisher",
                                  "the robot model's TF is not published"),
    "use_static_tf": ("tf2_ros", "static_transform_publisher",
                      "camera and robot are not placed in the world frame"),
    "use_rviz": ("rviz2", "rviz2", "no RViz window"),
}


class LaunchConfigError(ValueError):
    """An argument value the launch cannot run with (shown as one line, no traceback)."""


class ProcessFailedError(RuntimeError):
    """A process of the graph failed; `ros2 launch` shows it as one line and exits 1."""


def _robot_urdf(robot: str, urdf: str):
    """URDF file and root link of a robot config (the same lookup the retarget node does)."""
    import xml.etree.ElementTree as ET

    from hand_ik.retarget import load_retargeting_config

    try:
        path = load_retargeting_config(robot, urdf=urdf or None).require_urdf()
    except (ValueError, FileNotFoundError) as exc:
        raise LaunchConfigError(f"robot:={robot} urdf:={urdf}: {exc}") from None
    tree = ET.parse(path).getroot()
    children = {j.find("child").get("link") for j in tree.findall("joint")}
    root = next(link.get("name") for link in tree.findall("link") if link.get("name")
                not in children)  # fmt: skip
    return path, root


def _executable_found(package: str, executable: str) -> bool:
    import os

    from ament_index_python.packages import PackageNotFoundError, get_package_prefix

    try:
        prefix = get_package_prefix(package)
    except PackageNotFoundError:
        return False
    return os.access(os.path.join(prefix, "lib", package, executable), os.X_OK)


def _wanted_part(argument: str, value: str, logger) -> bool:
    """Whether to start an optional part: true (required), false, or auto (where installed)."""
    import os

    package, executable, loss = OPTIONAL_PARTS[argument]
    value = value.strip().lower()
    if value not in ("true", "false", "auto"):
        raise LaunchConfigError(f"{argument}:={value}: expected true, false or auto")
    if value == "false":
        return False
    found = _executable_found(package, executable)
    if value == "true" and not found:
        raise LaunchConfigError(f"{argument}:=true but {package} ({executable}) is not installed; "
                                f"install it or pass {argument}:=false")  # fmt: skip
    if not found:
        logger.info(f"{package} is not installed: {loss} ({argument}:=auto; "
                    f"pass {argument}:=false to silence this)")  # fmt: skip
        return False
    if argument == "use_rviz" and value == "auto" and not (
            os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):  # fmt: skip
        logger.info("no display (DISPLAY/WAYLAND_DISPLAY unset): RViz not started (use_rviz:=auto)")
        return False
    return True


def _exit_handler(respawns: int):
    """Exit handler: a process that exits (and will not respawn) ends the whole launch.

    A failure (exit code != 0) raises, so `ros2 launch` logs one line, stops the other
    processes and exits 1; a clean exit (RViz closed) shuts down with exit code 0.
    ``respawns``: exits to let pass first (launch restarts the process that often).
    """
    exits = [0]

    def on_exit(event, context):
        from launch.actions import Shutdown

        if context.is_shutdown:
            return None  # already shutting down: the exit is expected
        exits[0] += 1
        if exits[0] <= respawns:
            return None  # launch restarts it
        if event.returncode != 0:
            raise ProcessFailedError(
                f"{event.action.name} exited with code {event.returncode}"
                + (f" (after {respawns} restarts)" if respawns else "")
                + ": the teleop graph is shut down (see its log above)")  # fmt: skip
        return [Shutdown(reason=f"{event.action.name} exited: shutting the teleop graph down")]

    return on_exit


def _resolve_plan(value: dict[str, str], share: str) -> tuple:
    """Graph plan and respawn settings from the performed launch arguments.

    Returns ``(plan, respawn, respawn_delay)``: the GraphPlan, whether our nodes respawn,
    and the delay before a restart, seconds. Raises LaunchConfigError on a bad value.
    """
    import os

    graph_options = {name: value[name] for name in GRAPH_OPTIONS}
    graph_options["params"] = value["params"] or os.path.join(share, "config", "teleop.yaml")
    if not os.path.isfile(graph_options["params"]):
        raise LaunchConfigError(f"params:={graph_options['params']}: no such file")
    try:
        plan = plan_graph(graph_options)
    except GraphConfigError as exc:
        raise LaunchConfigError(str(exc)) from None
    respawn = value["respawn"].strip().lower()
    if respawn not in ("true", "false"):
        raise LaunchConfigError(f"respawn:={value['respawn']}: expected true or false")
    try:
        respawn_delay = float(value["respawn_delay"])
    except ValueError:
        raise LaunchConfigError(f"respawn_delay:={value['respawn_delay']}: not a number") from None
    return plan, respawn == "true", respawn_delay


def node_parameters(plan, name: str) -> list:
    """A node's launch ``parameters``: the section of the params file it reads before its
    own (the left robot node: ``retarget_node``'s), the file, then the plan's overrides."""
    shared = plan.section_parameters(name)
    return [*([shared] if shared else []), str(plan.params_file), plan.node(name).overrides]


def _graph_nodes(plan, respawn: bool, respawn_delay: float) -> list:
    """One launch_ros Node per node of the plan (our nodes), respawning if asked."""
    from launch_ros.actions import Node

    return [
        Node(package="hand_pose_ros", executable=node.executable, name=node.name,
             output="screen", parameters=node_parameters(plan, node.name),
             respawn=respawn, respawn_delay=respawn_delay,
             respawn_max_retries=MAX_RESPAWNS)
        for node in plan.nodes
    ]  # fmt: skip


def bimanual_rviz_config(text: str) -> str:
    """config/teleop.rviz (YAML text) with a second robot model: the left robot's
    (/left/robot_description, frames prefixed ``left/``), after the first one."""
    import copy

    import yaml

    config = yaml.safe_load(text)
    displays = config["Visualization Manager"]["Displays"]
    index, right = next((i, d) for i, d in enumerate(displays)
                        if d["Class"] == "rviz_default_plugins/RobotModel")  # fmt: skip
    left = copy.deepcopy(right)
    left["Name"] = "Left robot hand"
    left["Description Topic"]["Value"] = "/left/robot_description"
    left["TF Prefix"] = LEFT_ROBOT_FRAME_PREFIX.rstrip("/")
    displays.insert(index + 1, left)
    return yaml.safe_dump(config, sort_keys=False)


def _robot_state_publisher(urdf_path, side: str | None):
    """robot_state_publisher for one robot (bimanual left: namespaced, frames prefixed)."""
    from launch_ros.actions import Node

    with open(urdf_path) as fh:
        parameters = {"robot_description": fh.read()}
    extra = {}
    if side == "left":  # /left/robot_description, frames left/<link>
        parameters["frame_prefix"] = LEFT_ROBOT_FRAME_PREFIX
        extra["namespace"] = "left"
    return Node(package="robot_state_publisher", executable="robot_state_publisher",
                parameters=[parameters], remappings=[("joint_states", joint_states_topic(side))],
                **extra)  # fmt: skip


def _optional_processes(parts: dict[str, bool], robots: dict, share: str) -> list:
    """robot_state_publisher, the static transforms and RViz, as ``parts`` asks.

    ``robots``: hand side (None: the only robot) -> (URDF path, root link).
    """
    import os
    import tempfile

    from launch_ros.actions import Node

    processes = []
    if parts["use_robot_state_publisher"]:
        processes += [_robot_state_publisher(urdf_path, side)
                      for side, (urdf_path, _) in robots.items()]  # fmt: skip
    if parts["use_static_tf"]:
        processes.append(Node(package="tf2_ros", executable="static_transform_publisher",
                              name="camera_static_tf",
                              arguments=CAMERA_IN_WORLD.static_transform_arguments()))
        processes += [
            Node(package="tf2_ros", executable="static_transform_publisher",
                 name="left_robot_static_tf" if side == "left" else "robot_static_tf",
                 arguments=robot_base_in_world(root, side).static_transform_arguments())
            for side, (_, root) in robots.items()
        ]  # fmt: skip
    if parts["use_rviz"]:
        rviz = os.path.join(share, "config", "teleop.rviz")
        if "left" in robots:
            with open(rviz) as fh, tempfile.NamedTemporaryFile(
                    "w", prefix="teleop_bimanual_", suffix=".rviz", delete=False) as out:
                out.write(bimanual_rviz_config(fh.read()))
            rviz = out.name
        processes.append(Node(package="rviz2", executable="rviz2", output="screen",
                              arguments=["-d", rviz]))
    return processes


def _exit_handlers(processes: list, ours: list, respawn: bool) -> list:
    """No orphans: a process that exits (and will not respawn) ends the launch."""
    from launch.actions import RegisterEventHandler
    from launch.event_handlers import OnProcessExit

    return [
        RegisterEventHandler(OnProcessExit(target_action=proc, on_exit=_exit_handler(
            MAX_RESPAWNS if respawn and proc in ours else 0)))
        for proc in processes
    ]  # fmt: skip


def _launch_setup(context, *args, **kwargs):
    import launch.logging
    from ament_index_python.packages import get_package_share_directory
    from launch.substitutions import LaunchConfiguration

    logger = launch.logging.get_logger("teleop.launch")
    value = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    share = get_package_share_directory("hand_pose_ros")
    plan, respawn, respawn_delay = _resolve_plan(value, share)
    # Resolve everything that can fail before the first process starts.
    robots = {}
    for side, name in plan.robot_nodes.items():
        robot = plan.parameters(name)
        robots[side] = _robot_urdf(robot["robot"], robot.get("urdf", ""))
    parts = {arg: _wanted_part(arg, value[arg], logger) for arg in OPTIONAL_PARTS}
    ours = _graph_nodes(plan, respawn, respawn_delay)
    processes = ours + _optional_processes(parts, robots, share)
    return [*_exit_handlers(processes, ours, respawn), *processes]


def generate_launch_description():
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    declared = [DeclareLaunchArgument(name, default_value=default, description=description)
                for name, (default, description) in ARGUMENTS.items()]  # fmt: skip
    return LaunchDescription([*declared, OpaqueFunction(function=_launch_setup)])
