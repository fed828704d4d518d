"""Conversions between ROS messages and the numpy arrays the pipeline uses."""

from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point
from sensor_msgs.msg import JointState

from hand_ik.bio_dofs import BIO_DOF_INDEX, BIO_DOF_NAMES
from hand_ik.keypoints import NUM_KEYPOINTS
from hand_pose_ros.msg import HandKeypoints
from hand_pose_ros.msg import HandState as HandStateMsg


def _points_to_msgs(points: np.ndarray) -> list[Point]:
    return [Point(x=float(x), y=float(y), z=float(z)) for x, y, z in points]


def keypoints_to_msg(
    camera_points: np.ndarray,
    *,
    stamp: Time,
    frame_id: str,
    handedness: str = "right",
    score: float = 1.0,
    image_points: np.ndarray | None = None,
    confidence: np.ndarray | None = None,
    track_id: int = -1,
    vertices: np.ndarray | None = None,
) -> HandKeypoints:
    """Build a HandKeypoints message.

    Args:
        camera_points: (21, 3) metres, camera optical frame, FreiHAND order.
        image_points: (21, 2) pixels (u, v) or None (published as zeros).
        confidence: (21,) in [0, 1] or None (published as ``score``).
        vertices: (V, 3) the estimator's hand mesh, metres, same frame as
            ``camera_points``, or None (published empty).
    """
    camera_points = np.asarray(camera_points, dtype=np.float64)
    if camera_points.shape != (NUM_KEYPOINTS, 3):
        raise ValueError(f"camera_points must be (21, 3), got {camera_points.shape}")
    if handedness not in ("right", "left"):
        raise ValueError(f"handedness must be 'right' or 'left', got {handedness!r}")
    uv = np.zeros((NUM_KEYPOINTS, 2)) if image_points is None else np.asarray(image_points)
    if uv.shape != (NUM_KEYPOINTS, 2):
        raise ValueError(f"image_points must be (21, 2), got {uv.shape}")
    conf = np.full(NUM_KEYPOINTS, score) if confidence is None else np.asarray(confidence)
    msg = HandKeypoints()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.handedness = handedness
    msg.track_id = int(track_id)
    msg.score = float(score)
    msg.camera_points = _points_to_msgs(camera_points)
    msg.image_points = _points_to_msgs(np.column_stack([uv, np.zeros(NUM_KEYPOINTS)]))
    msg.confidence = conf.astype(np.float32)
    if vertices is not None:
        verts = np.asarray(vertices, dtype=np.float32)
        if verts.ndim != 2 or verts.shape[1] != 3 or len(verts) == 0:
            raise ValueError(f"vertices must be (V, 3) with V > 0, got {verts.shape}")
        msg.vertices = verts.reshape(-1)
    return msg


def keypoints_from_msg(msg: HandKeypoints) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (camera_points (21,3) m, image_points (21,2) px, confidence (21,))."""
    cam = np.array([[p.x, p.y, p.z] for p in msg.camera_points], dtype=np.float64)
    uv = np.array([[p.x, p.y] for p in msg.image_points], dtype=np.float64)
    return cam, uv, np.asarray(msg.confidence, dtype=np.float64)


def vertices_from_msg(msg: HandKeypoints) -> np.ndarray | None:
    """The message's hand mesh (V, 3) metres (float64), or None when it carries none.

    Raises:
        ValueError: a vertex array whose length is not a multiple of 3.
    """
    flat = np.asarray(msg.vertices, dtype=np.float64)
    if flat.size == 0:
        return None
    if flat.size % 3:
        raise ValueError(f"HandKeypoints.vertices: {flat.size} values, not (V, 3) flattened")
    return flat.reshape(-1, 3)


def joint_state_to_msg(names: list[str], positions: np.ndarray, *, stamp: Time) -> JointState:
    """Build a JointState with positions only (radians or metres per URDF joint type)."""
    positions = np.asarray(positions, dtype=np.float64)
    if positions.shape != (len(names),):
        raise ValueError(f"{len(names)} joint names but positions of shape {positions.shape}")
    msg = JointState()
    msg.header.stamp = stamp
    msg.name = list(names)
    msg.position = positions.tolist()
    return msg


def hand_state_to_msg(state, *, header, track_id: int = -1, score: float = 1.0) -> HandStateMsg:
    """One-row ``hand_ik.HandState`` -> HandState message.

    The wrist pose is the hand_root frame (``hand_ik.frames``) of the fitted keypoints in
    the input (camera) frame.
    """
    import roma
    import torch

    # Here, not at the top: hand_ik.frames is torch code, and the nodes that only convert
    # keypoints or images (estimator, sources) would load torch at start-up for nothing.
    from hand_ik.frames import hand_root_frame

    msg = HandStateMsg()
    msg.header = header
    msg.handedness = state.handedness
    msg.track_id = int(track_id)
    msg.score = float(score if state.valid[0] else 0.0)
    msg.betas = np.asarray(state.betas[0], dtype=np.float32)
    msg.dof_names = list(BIO_DOF_NAMES)
    msg.dof_positions = np.asarray(state.bio[0], dtype=np.float32)
    joints = np.asarray(state.joints[0], dtype=np.float64)
    if state.handedness == "left":  # the frame is defined on the right-hand canonical form
        joints = joints * np.array([-1.0, 1.0, 1.0])
    rotation, origin = hand_root_frame(torch.as_tensor(joints))
    if state.handedness == "left":
        mirror = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=rotation.dtype))
        rotation = mirror @ rotation @ mirror  # a proper rotation in the input frame
        origin = origin * torch.tensor([-1.0, 1.0, 1.0], dtype=origin.dtype)
    quat = roma.rotmat_to_unitquat(rotation).numpy()  # x, y, z, w
    msg.wrist_pose.position.x, msg.wrist_pose.position.y, msg.wrist_pose.position.z = (
        float(v) for v in origin.numpy())  # fmt: skip
    o = msg.wrist_pose.orientation
    o.x, o.y, o.z, o.w = (float(v) for v in quat)
    msg.fit_error = float(state.fit_error[0])
    return msg


def hand_state_from_msg(msg: HandStateMsg) -> tuple[np.ndarray, np.ndarray]:
    """(betas (10,), bio (23,)) of a HandState message, DoF reordered by name.

    Raises:
        ValueError: DoF names that are not the 23 of ``hand_ik.BIO_DOF_NAMES``.
    """
    names = list(msg.dof_names)
    if sorted(names) != sorted(BIO_DOF_INDEX):
        raise ValueError(f"HandState dof_names are not the 23 biomechanical DoF: {names}")
    bio = np.empty(len(names))
    for name, value in zip(names, msg.dof_positions, strict=True):
        bio[BIO_DOF_INDEX[name]] = value
    return np.asarray(msg.betas, dtype=np.float64), bio
