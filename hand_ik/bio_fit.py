"""Fit the 23 biomechanical DoF to a full 45-DoF pose (seed 002's ground-truth maker).

``pose_to_bio`` finds, per sample, the 23 DoF whose mesh and joints best match the
mesh and joints of a 45-DoF pose of the same hand: a closed-form joint-by-joint
start (``BioKinematics.rotmats_to_bio``) refined by Levenberg-Marquardt on the
keypoint and vertex positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import roma
import torch

from hand_ik._autodiff import numpy_residuals
from hand_ik.biomech import BioKinematics, bio_kinematics_for
from hand_ik.hand_model_data import NUM_POSE_JOINTS
from hand_ik.optim import LMConfig, least_squares


@dataclass
class BioFit:
    """Result of :func:`pose_to_bio` (torch tensors, batch first)."""

    bio: torch.Tensor  # (B, 23) radians
    keypoint_error: torch.Tensor  # (B,) mean keypoint distance to the 45-DoF hand, metres
    vertex_error: torch.Tensor  # (B,) mean vertex distance, metres


def pose_to_bio(
    pose: torch.Tensor,
    betas: torch.Tensor | None = None,
    *,
    model=None,
    kinematics: BioKinematics | None = None,
    iterations: int = 3,
    vertex_weight: float = 1.0,
    vertex_stride: int = 4,
    batch_size: int = 256,
) -> BioFit:
    """The 23 DoF that best reproduce a 45-DoF pose's mesh and keypoints.

    Args:
        pose: (B, 45) axis-angle relative to the template (MANO joint order).
        betas: (B, 10) shape, or None for the mean shape.
        model: the hand model (default: the open right hand).
        kinematics: DoF axes (default: derived from ``model``).
        iterations: Levenberg-Marquardt steps after the closed-form start.
        vertex_weight: weight of the mean vertex residual relative to the keypoints'.
        vertex_stride: fit every k-th mesh vertex (1: all; the error is reported on all).
        batch_size: samples solved together (memory: B x 23 Jacobian columns).

    Returns:
        A :class:`BioFit`; ``bio`` lies within a few milliradians of the joint limits
        only where the pose itself leaves them.
    """
    if model is None:
        from hand_ik.hand_model import load_hand_model

        model = load_hand_model("open")
    kin = kinematics if kinematics is not None else bio_kinematics_for(model)
    pose = torch.as_tensor(pose, dtype=kin.frames.dtype)
    if pose.ndim != 2 or pose.shape[1] != 45:
        raise ValueError(f"pose must be (B, 45), got {tuple(pose.shape)}")
    if betas is None:
        betas = pose.new_zeros(len(pose), 10)
    betas = torch.as_tensor(betas, dtype=pose.dtype)
    chunks = [
        _fit_chunk(model, kin, pose[i : i + batch_size], betas[i : i + batch_size],
                   iterations, vertex_weight, vertex_stride)
        for i in range(0, len(pose), batch_size)
    ]  # fmt: skip
    return BioFit(*(torch.cat(parts) for parts in zip(*chunks, strict=True)))


def _fit_chunk(model, kin, pose, betas, iterations, vertex_weight, vertex_stride):
    from hand_ik.ik.keypoint_layer import KeypointLayer

    ids = torch.arange(0, model.num_vertices, vertex_stride)
    layer = KeypointLayer(model, extra_vertex_ids=ids)
    eye = torch.eye(3, dtype=pose.dtype).expand(len(pose), 1, 3, 3)
    with torch.no_grad():
        rot45 = roma.rotvec_to_rotmat(pose.unflatten(-1, (NUM_POSE_JOINTS, 3)))
        target = layer(betas, torch.cat([eye, rot45], dim=1))
    # Keypoints weigh 1 each; the vertex subset as a whole weighs ``vertex_weight`` x 21.
    weights = torch.ones(target.shape[1], dtype=pose.dtype)
    weights[21:] = (vertex_weight * 21 / len(ids)) ** 0.5

    def residual_fn(bio, betas_, target_):
        rotmats = torch.cat([eye[:1].expand(len(bio), 1, 3, 3), kin.bio_to_rotmats(bio)], dim=1)
        return (weights[:, None] * (layer(betas_, rotmats) - target_)).flatten(1)

    result = least_squares(
        numpy_residuals(residual_fn, (betas, target), pose.dtype),
        kin.pose_to_bio_closed_form(pose).double().numpy(),
        LMConfig(max_iterations=iterations),
    )
    bio = torch.as_tensor(result.x, dtype=pose.dtype)
    with torch.no_grad():
        fit = model(betas=betas, pose=kin.bio_to_pose(bio))
        full = model(betas=betas, pose=pose)
    keypoint_error = (fit.joints - full.joints).norm(dim=-1).mean(-1)
    vertex_error = (fit.vertices - full.vertices).norm(dim=-1).mean(-1)
    return bio, keypoint_error, vertex_error
