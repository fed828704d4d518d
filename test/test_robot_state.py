"""The robot's tf tree: link transforms, the in-process robot state node, what --record holds.

A recording from ``hand-teleop run --record`` must let Foxglove (or RViz) draw the robot:
``/robot_description`` is the URDF in use, ``/tf_static`` + ``/tf`` give every link a
chain to the fixed frame at each command, with the command's stamp, and the link poses
are our pinocchio forward kinematics.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pinocchio as pin
import pytest
import yaml
from _retarget_helpers import ALL_CONFIGS, load_config
from conftest import REPO_ROOT

from hand_ik.retarget import load_retargeting_config
from hand_ik.robot.link_transforms import (
    LinkTransform,
    LinkTransforms,
    compose_link_poses,
    parse_urdf_joints,
)
from hand_ik.robot.robot_model import RobotModel
from hand_pose_ros.pipeline.defaults import DEFAULT_ROBOT
from hand_pose_ros.scene_frames import (
    CAMERA_FRAME,
    CAMERA_IN_WORLD,
    WORLD_FRAME,
    robot_base_in_world,
)

FRAMES = 30
#: A fixed joint between two movable ones, rotated origins, a prismatic joint.
CHAIN_URDF = """<robot name="chain">
  <link name="base"/><link name="a"/><link name="a_mount"/><link name="b"/><link name="tip"/>
  <joint name="j1" type="revolute"><parent link="base"/><child link="a"/>
    <origin xyz="0.01 0.02 0.03" rpy="0.1 0.2 0.3"/><axis xyz="0 0 1"/>
    <limit lower="-1" upper="1" effort="1" velocity="1"/></joint>
  <joint name="mount" type="fixed"><parent link="a"/><child link="a_mount"/>
    <origin xyz="0.05 0 0" rpy="0.4 -0.2 0.7"/></joint>
  <joint name="j2" type="prismatic"><parent link="a_mount"/><child link="b"/>
    <origin xyz="0 0.04 0" rpy="0 0.5 0"/><axis xyz="0.6 0 0.8"/>
    <limit lower="-0.1" upper="0.1" effort="1" velocity="1"/></joint>
  <joint name="tip_joint" type="fixed"><parent link="b"/><child link="tip"/>
    <origin xyz="0 0 0.02" rpy="0 0 0"/></joint>
</robot>
"""


def _assert_matches_pinocchio(robot: RobotModel, q: np.ndarray) -> None:
    links = LinkTransforms(robot)
    poses = compose_link_poses(links.root_link, [*links.fixed, *links.movable(q)])
    assert set(poses) == set(links.link_names)
    robot.forward_kinematics(q)
    for name in links.link_names:
        rotation, position = robot.frame_pose(robot.frame_id(name))
        np.testing.assert_allclose(poses[name][:3, :3], rotation, atol=1e-9, err_msg=name)
        np.testing.assert_allclose(poses[name][:3, 3], position, atol=1e-9, err_msg=name)


def test_chain_with_a_fixed_joint_between_movable_ones(tmp_path):
    path = tmp_path / "chain.urdf"
    path.write_text(CHAIN_URDF)
    robot = RobotModel(path)
    links = LinkTransforms(robot)
    assert [(t.parent, t.child) for t in links.fixed] == [("a", "a_mount"), ("b", "tip")]
    assert [j.name for j in links.movable_joints] == ["j1", "j2"]
    moved = links.movable(np.array([0.7, 0.05]))
    assert [(t.parent, t.child) for t in moved] == [("base", "a"), ("a_mount", "b")]
    # robot_state_publisher's convention: origin, then the motion along the joint axis.
    expected = pin.SE3(pin.rpy.rpyToMatrix(0, 0.5, 0), np.array([0, 0.04, 0]))
    expected = expected * pin.SE3(np.eye(3), 0.05 * np.array([0.6, 0, 0.8]))
    np.testing.assert_allclose(moved[1].matrix(), expected.homogeneous, atol=1e-12)
    for q in np.random.default_rng(0).uniform(robot.lower, robot.upper, (5, 2)):
        _assert_matches_pinocchio(robot, q)


@pytest.mark.parametrize("name", ALL_CONFIGS)
def test_link_transforms_compose_to_pinocchio_frame_poses(name):
    robot = RobotModel(load_config(name).urdf)
    joints = parse_urdf_joints(robot.urdf_path)
    links = LinkTransforms(robot)
    assert len(links.fixed) == sum(j.kind == "fixed" for j in joints)
    assert len(links.fixed) + len(links.movable_joints) == len(joints)
    rng = np.random.default_rng(3)
    for _ in range(5):
        _assert_matches_pinocchio(robot, robot.full_q(rng.uniform(robot.free_lower,
                                                                   robot.free_upper)))


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> dict:
    """``hand-teleop run --frames 30 --record X.mcap --estimator truth``, read back by topic."""
    pytest.importorskip("rclpy")
    from hand_pose_ros.cli.main import main
    from hand_pose_ros.io.mcap_recorder import read_messages

    path = tmp_path_factory.mktemp("record") / "run.mcap"
    code = main(["run", "--frames", str(FRAMES), "--record", str(path), "--estimator", "truth"])
    assert code == 0
    by_topic: dict[str, list] = {}
    for message in read_messages(path):
        by_topic.setdefault(message.topic, []).append(message.msg)
    return by_topic


def _transform(msg) -> LinkTransform:
    t, r = msg.transform.translation, msg.transform.rotation
    return LinkTransform(msg.header.frame_id, msg.child_frame_id, np.array([t.x, t.y, t.z]),
                         np.array([r.x, r.y, r.z, r.w]))  # fmt: skip


def _pose_in(frame: str, child: str, parents: dict[str, LinkTransform]) -> np.ndarray | None:
    """(4, 4) pose of ``child`` in ``frame`` through the tf tree, None without a chain."""
    pose = np.eye(4)
    while child != frame:
        if child not in parents:
            return None
        link = parents[child]
        pose = link.matrix() @ pose
        child = link.parent
    return pose


def test_recording_holds_the_robot_description_in_use(recording):
    urdf = load_retargeting_config(DEFAULT_ROBOT).require_urdf()
    (description,) = recording["/robot_description"]
    assert description.data == Path(urdf).read_text(encoding="utf-8")
    ET.fromstring(description.data)  # parses
    model = pin.buildModelFromXML(description.data)
    assert tuple(model.names[1:]) == RobotModel(urdf).joint_names


def test_recording_places_every_link_in_the_world_at_each_command(recording):
    robot = RobotModel(load_retargeting_config(DEFAULT_ROBOT).require_urdf())
    links = LinkTransforms(robot)
    (static,) = recording["/tf_static"]
    static_parents = {t.child_frame_id: _transform(t) for t in static.transforms}
    assert static_parents[CAMERA_FRAME].parent == WORLD_FRAME
    np.testing.assert_allclose(static_parents[CAMERA_FRAME].matrix(), np.eye(4))
    base = robot_base_in_world(links.root_link)
    np.testing.assert_allclose(static_parents[links.root_link].translation,
                               [base.x, base.y, base.z])  # fmt: skip
    assert CAMERA_IN_WORLD.child == CAMERA_FRAME
    robot_tf = {}
    for msg in recording["/tf"]:
        children = {t.child_frame_id for t in msg.transforms}
        if children & set(links.link_names):  # other nodes (the wrist pose) share /tf
            (stamp,) = {(t.header.stamp.sec, t.header.stamp.nanosec) for t in msg.transforms}
            robot_tf[stamp] = msg
    commands = recording["/hand/joint_states"]
    assert len(commands) >= 10  # fewer than FRAMES on a busy CPU (images dropped)
    world_root = static_parents[links.root_link].matrix()
    for command in commands:
        stamp = (command.header.stamp.sec, command.header.stamp.nanosec)
        assert stamp in robot_tf, f"no /tf with the stamp of the joint state {stamp}"
        parents = dict(static_parents)
        parents.update({t.child_frame_id: _transform(t) for t in robot_tf[stamp].transforms})
        q = dict(zip(command.name, command.position, strict=True))
        robot.forward_kinematics(np.array([q[n] for n in robot.joint_names]))
        for name in links.link_names:
            pose = _pose_in(WORLD_FRAME, name, parents)
            assert pose is not None, f"link {name} has no transform chain to {WORLD_FRAME}"
            rotation, position = robot.frame_pose(robot.frame_id(name))
            expected = world_root.copy()
            expected[:3, :3] = rotation
            expected[:3, 3] = world_root[:3, :3] @ position + world_root[:3, 3]
            np.testing.assert_allclose(pose, expected, atol=1e-6, err_msg=name)
    assert _pose_in(WORLD_FRAME, CAMERA_FRAME, static_parents) is not None


def _rviz_values(node, key: str) -> list[str]:
    """Every value of ``key`` in the RViz YAML (a plain value or a ``Value:`` mapping)."""
    found = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                found.append(v["Value"] if isinstance(v, dict) else v)
            found += _rviz_values(v, key)
    elif isinstance(node, list):
        for item in node:
            found += _rviz_values(item, key)
    return found


def test_rviz_config_shows_what_the_graph_publishes(recording):
    config = yaml.safe_load((REPO_ROOT / "config" / "teleop.rviz").read_text())
    topics = _rviz_values(config, "Topic") + _rviz_values(config, "Description Topic")
    assert "/robot_description" in topics
    unknown = [t for t in topics if t not in recording]
    assert not unknown, f"RViz shows topics the graph does not publish: {unknown}"
    frames = {t.child_frame_id for m in (*recording["/tf_static"], *recording["/tf"])
              for t in m.transforms} | {WORLD_FRAME}  # fmt: skip
    # Per-side frames (hand_<side>_...): the demo shows one side, the graph names both alike.
    frames |= {f.replace("_right_", "_left_") for f in frames}
    frames |= {f.replace("_left_", "_right_") for f in frames}
    named = _rviz_values(config, "Fixed Frame") + _rviz_values(config, "Reference Frame")
    unknown = [f for f in named if f not in frames]
    assert named and not unknown, f"RViz names frames the graph does not publish: {unknown}"
    description = next(d for d in config["Visualization Manager"]["Displays"]
                       if d["Class"] == "rviz_default_plugins/RobotModel")  # fmt: skip
    # The model is latched: RViz must ask for it as robot_state_publisher offers it.
    assert description["Description Topic"]["Durability Policy"] == "Transient Local"
