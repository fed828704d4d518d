"""Pinocchio wrapper for a fixed-base robot hand described by a URDF.

The optimizer works on the *free* joints: the movable joints that are neither
mimic joints (``<mimic>`` in the URDF, driven by another joint) nor locked
(held at a constant by the caller, e.g. the Shadow hand's wrist). Every
movable joint's position is an affine function of the free joints::

    q_full = mimic_matrix @ q_free + mimic_offset

so Jacobians with respect to the free joints are ``J_full @ mimic_matrix``.
Pinocchio loads mimic joints as ordinary joints; this class enforces the
coupling. Only 1-DoF revolute and prismatic joints are supported.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pinocchio as pin

_SUPPORTED_JOINTS = ("RX", "RY", "RZ", "RevoluteUnaligned", "PX", "PY", "PZ", "PrismaticUnaligned")


@dataclass(frozen=True)
class MimicJoint:
    """``q[name] = multiplier * q[parent] + offset`` (URDF ``<mimic>``)."""

    name: str
    parent: str
    multiplier: float
    offset: float


def parse_mimic_joints(urdf_path: Path) -> dict[str, MimicJoint]:
    """Mimic joints of a URDF, by joint name."""
    root = ET.parse(urdf_path).getroot()
    mimics = {}
    for joint in root.iter("joint"):
        tag = joint.find("mimic")
        if tag is None:
            continue
        name = joint.get("name")
        mimics[name] = MimicJoint(
            name=name,
            parent=tag.get("joint"),
            multiplier=float(tag.get("multiplier", 1.0)),
            offset=float(tag.get("offset", 0.0)),
        )
    return mimics


def _movable_joint_names(model, urdf_path: Path) -> list[str]:
    """Names of the pinocchio model's joints, in q order (one coordinate each)."""
    names, q_index = [], []
    for jid in range(1, model.njoints):
        kind = model.joints[jid].shortname().removeprefix("JointModel")
        if kind not in _SUPPORTED_JOINTS:
            raise ValueError(f"{urdf_path}: joint {model.names[jid]!r} has unsupported type {kind}")
        names.append(model.names[jid])
        q_index.append(model.idx_qs[jid])
    if q_index != list(range(model.nq)):
        raise ValueError(f"{urdf_path}: unexpected joint layout in the pinocchio model")
    return names


class RobotModel:
    """Kinematics of one robot hand: joint names, limits, mimic coupling, FK and Jacobians.

    Args:
        urdf_path: the robot's URDF (meshes are not loaded).
        locked_joints: joint name -> constant position (radians or metres),
            excluded from the free joints.

    Attributes:
        joint_names: all movable joints, pinocchio (URDF tree) order.
        lower, upper, velocity: (n_joints,) limits of those joints from the URDF.
        free_names: the free joints, in ``joint_names`` order.
        free_lower, free_upper: (n_free,) limits of the free joints, tightened
            so that every mimic joint stays within its own limits.
        mimic_matrix: (n_joints, n_free); mimic_offset: (n_joints,).
    """

    def __init__(self, urdf_path: str | Path, locked_joints: dict[str, float] | None = None):
        urdf_path = Path(urdf_path)
        if not urdf_path.is_file():
            raise FileNotFoundError(f"robot URDF not found: {urdf_path}")
        self.urdf_path = urdf_path
        self.model = pin.buildModelFromUrdf(str(urdf_path))
        self.data = self.model.createData()
        model = self.model
        if model.nq != model.nv:
            raise ValueError(f"{urdf_path}: continuous/multi-DoF joints are not supported")
        names = _movable_joint_names(model, urdf_path)
        self.joint_names: tuple[str, ...] = tuple(names)
        self.joint_index = {n: i for i, n in enumerate(names)}
        self.lower = model.lowerPositionLimit.copy()
        self.upper = model.upperPositionLimit.copy()
        self.velocity = model.velocityLimit.copy()
        self.mimics = parse_mimic_joints(urdf_path)
        locked = dict(locked_joints or {})
        for name in (*self.mimics, *locked):
            if name not in self.joint_index:
                raise ValueError(
                    f"{urdf_path}: joint {name!r} (mimic/locked) is not a movable joint"
                )
        for name in locked:
            if name in self.mimics:
                raise ValueError(
                    f"locked_joints: {name!r} is a mimic joint; lock its parent instead"
                )
        self.locked_joints = locked
        self.free_names: tuple[str, ...] = tuple(
            n for n in names if n not in self.mimics and n not in locked
        )
        self.mimic_matrix, self.mimic_offset = self._free_to_full_map()
        self.free_joint_index = np.array([self.joint_index[n] for n in self.free_names], dtype=int)
        self.free_lower, self.free_upper = self._free_limits()

    def _free_to_full_map(self) -> tuple[np.ndarray, np.ndarray]:
        """(n, n_free) matrix and (n,) offset with ``q_full = M @ q_free + offset``.

        Free joints copy their value, locked joints hold theirs, mimic joints follow
        their parent (``multiplier * parent + offset``).
        """
        names, locked, urdf_path = self.joint_names, self.locked_joints, self.urdf_path
        free_index = {n: k for k, n in enumerate(self.free_names)}
        matrix = np.zeros((len(names), len(self.free_names)))
        offset = np.zeros(len(names))
        for i, name in enumerate(names):
            if name in free_index:
                matrix[i, free_index[name]] = 1.0
            elif name in locked:
                offset[i] = locked[name]
        for name, mimic in self.mimics.items():
            i = self.joint_index[name]
            if mimic.parent not in self.joint_index:
                raise ValueError(
                    f"{urdf_path}: mimic joint {name!r} follows unknown joint {mimic.parent!r}"
                )
            if mimic.parent in self.mimics:
                raise ValueError(f"{urdf_path}: chained mimic joints ({name!r}) are not supported")
            p = self.joint_index[mimic.parent]
            matrix[i] = mimic.multiplier * matrix[p]
            offset[i] = mimic.multiplier * offset[p] + mimic.offset
        return matrix, offset

    def _free_limits(self) -> tuple[np.ndarray, np.ndarray]:
        lower = self.lower[self.free_joint_index].copy()
        upper = self.upper[self.free_joint_index].copy()
        for name, mimic in self.mimics.items():
            if mimic.parent not in self.free_names or mimic.multiplier == 0.0:
                continue
            i, p = self.joint_index[name], self.free_names.index(mimic.parent)
            bounds = (
                (self.lower[i] - mimic.offset) / mimic.multiplier,
                (self.upper[i] - mimic.offset) / mimic.multiplier,
            )
            lower[p] = max(lower[p], min(bounds))
            upper[p] = min(upper[p], max(bounds))
        bad = [self.free_names[j] for j in np.flatnonzero(lower > upper)]
        if bad:
            raise ValueError(f"{self.urdf_path}: empty joint range once mimic limits apply: {bad}")
        return lower, upper

    @property
    def num_free(self) -> int:
        return len(self.free_names)

    def full_q(self, q_free: np.ndarray) -> np.ndarray:
        """(n_free,) free joint positions -> (n_joints,) positions of all movable joints."""
        return self.mimic_matrix @ q_free + self.mimic_offset

    def free_joint_values(self, q_full: np.ndarray) -> np.ndarray:
        """(n_joints,) positions of all movable joints -> (n_free,) free joint positions."""
        return np.asarray(q_full, dtype=float)[self.free_joint_index]

    def frame_id(self, name: str) -> int:
        """Pinocchio frame id of a URDF link, with the valid names in the error."""
        if not self.model.existFrame(name):
            links = sorted({f.name for f in self.model.frames if f.type == pin.FrameType.BODY})
            raise ValueError(f"{self.urdf_path.name}: no link named {name!r}; links: {links}")
        return self.model.getFrameId(name)

    def frame_moved_by_free_joints(self, name: str) -> bool:
        """Whether a free (or mimic-driven) joint moves this link."""
        jid = self.model.frames[self.frame_id(name)].parentJoint
        while jid > 0:
            i = self.joint_index[self.model.names[jid]]
            if np.any(self.mimic_matrix[i] != 0.0):
                return True
            jid = self.model.parents[jid]
        return False

    def forward_kinematics(
        self, q_full: np.ndarray, jacobians: bool = False, frame_ids: list[int] | None = None
    ) -> None:
        """Update frame placements (and joint Jacobians) for (n_joints,) positions.

        Args:
            q_full: (n_joints,) positions of all movable joints.
            jacobians: also compute the joint Jacobians (for ``frame_position_jacobian``).
            frame_ids: update only these frames (faster); None: all frames.
        """
        if jacobians:
            pin.computeJointJacobians(self.model, self.data, q_full)
        else:
            pin.forwardKinematics(self.model, self.data, q_full)
        if frame_ids is None:
            pin.updateFramePlacements(self.model, self.data)
        else:
            for frame_id in frame_ids:
                pin.updateFramePlacement(self.model, self.data, frame_id)

    def frame_pose(self, frame_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Rotation (3, 3) and position (3,) of a frame in the root frame (after FK)."""
        placement = self.data.oMf[frame_id]
        return placement.rotation.copy(), placement.translation.copy()

    def frame_position(self, frame_id: int) -> np.ndarray:
        """(3,) frame origin in the root frame, metres (after FK)."""
        return self.data.oMf[frame_id].translation

    def frame_position_jacobian(self, frame_id: int) -> np.ndarray:
        """(3, n_joints) d(frame origin in root frame)/dq (after FK with ``jacobians=True``)."""
        jac = pin.getFrameJacobian(self.model, self.data, frame_id, pin.LOCAL_WORLD_ALIGNED)
        return jac[:3]
