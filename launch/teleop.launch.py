"""Launch the hand teleop graph: source -> estimator -> IK -> retargeting -> robot + RViz.

    ros2 launch hand_pose_ros teleop.launch.py                       # demo hand, our robot hand
    ros2 launch hand_pose_ros teleop.launch.py source:=webcam:0 robot:=allegro \
        urdf:=/path/to/allegro_hand_right.urdf
    ros2 launch hand_pose_ros teleop.launch.py source:=ros use_rviz:=false  # your camera node

Arguments: robot, urdf, source (demo | video:PATH | webcam:N | ros), estimator
(truth | auto | mediapipe; truth = the demo's own keypoints), backend (runtime of our
mesh estimator: torch | onnx | tensorrt), params (parameter YAML), use_rviz. Every node
reads config/teleop.yaml; the arguments override single values.
The node table below is plain data, so tests can check it without ROS' launch package.
"""

from __future__ import annotations

#: (executable, node name, parameters the arguments set on it) - started as needed.
NODES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("demo_source", "demo_source", ("publish_keypoints",)),
    ("camera_source", "camera_source", ("source",)),
    ("estimator_node", "estimator_node", ("estimator", "backend")),
    ("ik_node", "ik_node", ()),
    ("retarget_node", "retarget_node", ("robot", "urdf")),
)
#: Files of this package the launch file reads.
PACKAGE_FILES: tuple[str, ...] = ("config/teleop.yaml", "config/teleop.rviz")
#: Launch arguments and their defaults.
ARGUMENTS: dict[str, str] = {
    "robot": "hand_pose_ros_hand",
    "urdf": "",
    "source": "demo",
    "estimator": "truth",
    "backend": "onnx",
    "params": "",
    "use_rviz": "true",
}


def _robot_urdf(robot: str, urdf: str):
    """URDF file and root link of a robot config (the same lookup the retarget node does)."""
    import xml.etree.ElementTree as ET

    from hand_ik.retarget import load_retargeting_config

    path = load_retargeting_config(robot, urdf=urdf or None).urdf
    tree = ET.parse(path).getroot()
    children = {j.find("child").get("link") for j in tree.findall("joint")}
    root = next(link.get("name") for link in tree.findall("link") if link.get("name")
                not in children)  # fmt: skip
    return path, root


def _launch_setup(context, *args, **kwargs):
    import os

    from ament_index_python.packages import get_package_share_directory
    from launch.conditions import IfCondition
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    share = get_package_share_directory("hand_pose_ros")
    value = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    params_file = value["params"] or os.path.join(share, "config", "teleop.yaml")
    kind = value["source"].partition(":")[0]
    use_truth = kind == "demo" and value["estimator"] == "truth"
    overrides = {
        "demo_source": {"publish_keypoints": use_truth},
        "camera_source": {"source": value["source"]},
        "estimator_node": {
            "estimator": "auto" if value["estimator"] == "truth" else value["estimator"],
            "backend": value["backend"],
        },
        "ik_node": {},
        "retarget_node": {"robot": value["robot"], "urdf": value["urdf"]},
    }
    wanted = {"ik_node", "retarget_node"}
    if kind == "demo":
        wanted.add("demo_source")
    if kind in ("video", "webcam"):
        wanted.add("camera_source")
    if not use_truth:
        wanted.add("estimator_node")
    actions = [
        Node(package="hand_pose_ros", executable=exe, name=name, output="screen",
             parameters=[params_file, overrides[name]])
        for exe, name, _ in NODES if name in wanted
    ]  # fmt: skip
    urdf_path, root_link = _robot_urdf(value["robot"], value["urdf"])
    with open(urdf_path) as fh:
        description = fh.read()
    actions += [
        Node(package="robot_state_publisher", executable="robot_state_publisher",
             parameters=[{"robot_description": description}],
             remappings=[("joint_states", "/hand/joint_states")]),
        # The robot stands 25 cm to the right of the camera's view of the hand.
        Node(package="tf2_ros", executable="static_transform_publisher",
             arguments=["--frame-id", "world", "--child-frame-id", "camera_optical_frame"]),
        Node(package="tf2_ros", executable="static_transform_publisher",
             arguments=["--x", "0.25", "--z", "0.45", "--frame-id", "world",
                        "--child-frame-id", root_link]),
        Node(package="rviz2", executable="rviz2", output="screen",
             arguments=["-d", os.path.join(share, "config", "teleop.rviz")],
             condition=IfCondition(value["use_rviz"])),
    ]  # fmt: skip
    return actions


def generate_launch_description():
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    declared = [DeclareLaunchArgument(name, default_value=default)
                for name, default in ARGUMENTS.items()]  # fmt: skip
    return LaunchDescription([*declared, OpaqueFunction(function=_launch_setup)])
