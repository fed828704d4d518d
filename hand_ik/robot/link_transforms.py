"""Per-joint link transforms of a robot, in robot_state_publisher's convention.

Each URDF joint gives one transform from its parent link's frame to its child link's
frame: the joint's ``<origin>`` followed by the joint's motion at its current position.
robot_state_publisher publishes the movable joints' transforms on ``/tf`` (stamped
with the joint state) and the fixed joints' once on ``/tf_static``; composing them
from the root link gives every link's pose. The transforms come from the pinocchio
model of ``RobotModel`` (joint placements after forward kinematics), so they agree
with the retargeting's own kinematics.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pinocchio as pin

from hand_ik.robot.robot_model import RobotModel


@dataclass(frozen=True)
class UrdfJoint:
    """One ``<joint>`` of a URDF: its name, type and the two links it connects."""

    name: str
    kind: str
    parent: str
    child: str


@dataclass(frozen=True)
class LinkTransform:
    """Pose of ``child`` link's frame in ``parent`` link's frame.

    Attributes:
        parent, child: URDF link names (tf frame ids).
        translation: (3,) child origin in the parent frame, metres.
        quaternion_xyzw: (4,) unit quaternion, x y z w (geometry_msgs order).
    """

    parent: str
    child: str
    translation: np.ndarray
    quaternion_xyzw: np.ndarray

    def matrix(self) -> np.ndarray:
        """(4, 4) homogeneous transform parent <- child."""
        out = np.eye(4)
        out[:3, :3] = quaternion_xyzw_to_rotmat(self.quaternion_xyzw)
        out[:3, 3] = self.translation
        return out


def quaternion_xyzw_to_rotmat(quaternion_xyzw: np.ndarray) -> np.ndarray:
    """(4,) quaternion x y z w -> (3, 3) rotation matrix (normalised first)."""
    x, y, z, w = np.asarray(quaternion_xyzw, dtype=float) / np.linalg.norm(quaternion_xyzw)
    return pin.Quaternion(w, x, y, z).toRotationMatrix()


def parse_urdf_joints(urdf_path: str | Path) -> list[UrdfJoint]:
    """Every ``<joint>`` of a URDF, in file order."""
    root = ET.parse(urdf_path).getroot()
    return [
        UrdfJoint(name=j.get("name"), kind=j.get("type"), parent=j.find("parent").get("link"),
                  child=j.find("child").get("link"))
        for j in root.findall("joint")
    ]  # fmt: skip


def urdf_root_link(urdf_path: str | Path) -> str:
    """The URDF's root link: the one link that is no joint's child."""
    root = ET.parse(urdf_path).getroot()
    children = {j.find("child").get("link") for j in root.findall("joint")}
    roots = [link.get("name") for link in root.findall("link") if link.get("name") not in children]
    if len(roots) != 1:
        raise ValueError(f"{urdf_path}: expected one root link, found {roots}")
    return roots[0]


def _body_frame(robot: RobotModel, link: str) -> pin.Frame:
    """The pinocchio frame of a URDF link (a joint may bear the same name)."""
    robot.frame_id(link)  # a clear error for an unknown link
    return robot.model.frames[robot.model.getFrameId(link, pin.FrameType.BODY)]


def _link_transform(parent: str, child: str, placement: pin.SE3) -> LinkTransform:
    quat = pin.Quaternion(placement.rotation).normalized()
    return LinkTransform(parent, child, placement.translation.copy(), quat.coeffs().copy())


class LinkTransforms:
    """Transforms parent link -> child link for every URDF joint of one robot.

    Args:
        robot: the robot's kinematics (its URDF and pinocchio model). This object
            runs forward kinematics on its own pinocchio data, so it does not disturb
            ``robot.data``.

    Attributes:
        root_link: the URDF root link (the tf tree's root for this robot).
        link_names: every URDF link.
        fixed: transforms of the fixed joints (constant: ``/tf_static``).
        movable_joints: the movable URDF joints, in ``robot.joint_names`` order.
    """

    def __init__(self, robot: RobotModel):
        self.robot = robot
        self._data = robot.model.createData()
        joints = parse_urdf_joints(robot.urdf_path)
        self.root_link = urdf_root_link(robot.urdf_path)
        self.link_names: tuple[str, ...] = (self.root_link, *(j.child for j in joints))
        by_name = {j.name: j for j in joints}
        model = robot.model
        self.fixed: tuple[LinkTransform, ...] = tuple(
            self._fixed_transform(j) for j in joints if j.kind == "fixed"
        )
        movable = [by_name[name] for name in robot.joint_names]
        self.movable_joints: tuple[UrdfJoint, ...] = tuple(movable)
        # Child link frame = the pinocchio joint frame; the parent link sits in the parent
        # joint's body at a constant placement: T(parent <- child) = P^-1 * liMi(q).
        self._parent_inverse = []
        for joint in movable:
            jid = model.getJointId(joint.name)
            frame = _body_frame(robot, joint.parent)
            if frame.parentJoint != model.parents[jid]:
                raise ValueError(f"{robot.urdf_path}: link {joint.parent!r} is not in the "
                                 f"parent body of joint {joint.name!r}")  # fmt: skip
            self._parent_inverse.append((jid, frame.placement.inverse()))

    def _fixed_transform(self, joint: UrdfJoint) -> LinkTransform:
        """A fixed joint: both links in one pinocchio body, placements relative to it."""
        parent = _body_frame(self.robot, joint.parent)
        child = _body_frame(self.robot, joint.child)
        if parent.parentJoint != child.parentJoint:
            raise ValueError(f"{self.robot.urdf_path}: fixed joint {joint.name!r} links two "
                             "pinocchio bodies")  # fmt: skip
        return _link_transform(joint.parent, joint.child,
                               parent.placement.inverse() * child.placement)  # fmt: skip

    def movable(self, q_full: np.ndarray) -> list[LinkTransform]:
        """Transforms of the movable joints at (n_joints,) positions (radians / metres).

        Positions are in ``robot.joint_names`` order (as on ``/hand/joint_states``).
        """
        q_full = np.asarray(q_full, dtype=float)
        if q_full.shape != (self.robot.model.nq,):
            raise ValueError(f"q_full: expected shape ({self.robot.model.nq},), got {q_full.shape}")
        pin.forwardKinematics(self.robot.model, self._data, q_full)
        return [
            _link_transform(joint.parent, joint.child, inverse * self._data.liMi[jid])
            for joint, (jid, inverse) in zip(self.movable_joints, self._parent_inverse,
                                             strict=True)
        ]  # fmt: skip


def compose_link_poses(root_link: str, transforms: list[LinkTransform]) -> dict[str, np.ndarray]:
    """(4, 4) pose of every link reachable from ``root_link`` in the root link's frame.

    Args:
        root_link: frame the poses are expressed in.
        transforms: parent -> child transforms (fixed and movable together).
    """
    children: dict[str, list[LinkTransform]] = {}
    for t in transforms:
        children.setdefault(t.parent, []).append(t)
    poses = {root_link: np.eye(4)}
    stack = [root_link]
    while stack:
        parent = stack.pop()
        for t in children.get(parent, []):
            poses[t.child] = poses[parent] @ t.matrix()
            stack.append(t.child)
    return poses
