"""Training losses of seed 002 eq. (4), after I2L MeshNet (plain torch, pure functions).

``L = L_pose^PoseNet + L_pose^MeshNet + L_vertex + L_edge + 0.1 L_normal``; coordinates
are lixel units (as in I2L MeshNet) or any consistent unit. ``valid`` masks are optional
(B, N, 1) or (B, N, 3) weights (1: supervise).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def coord_l1(
    pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean L1 between (B, N, 3) coordinates."""
    loss = (pred - target).abs()
    if valid is not None:
        loss = loss * valid
    return loss.mean()


def regress_joints(vertices: torch.Tensor, j_regressor: torch.Tensor) -> torch.Tensor:
    """(B, V, 3) vertices, (J, V) regressor -> (B, J, 3) joints."""
    return torch.einsum("jv,bvc->bjc", j_regressor.to(vertices), vertices)


def _faces(faces: torch.Tensor | object, device: torch.device) -> torch.Tensor:
    faces = torch.as_tensor(faces, dtype=torch.long, device=device)
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces: expected (F, 3) vertex indices, got {tuple(faces.shape)}")
    return faces


def edge_length_loss(pred: torch.Tensor, target: torch.Tensor, faces) -> torch.Tensor:
    """Mean |edge length difference| over the three edges of every face (I2L MeshNet)."""
    f = _faces(faces, pred.device)
    loss = pred.new_zeros(())
    for a, b in ((0, 1), (0, 2), (1, 2)):
        d_pred = (pred[:, f[:, a]] - pred[:, f[:, b]]).norm(dim=-1)
        d_gt = (target[:, f[:, a]] - target[:, f[:, b]]).norm(dim=-1)
        loss = loss + (d_pred - d_gt).abs().mean()
    return loss / 3.0


def normal_loss(pred: torch.Tensor, target: torch.Tensor, faces) -> torch.Tensor:
    """Mean |cos| between predicted face edges and target face normals (I2L MeshNet).

    Zero when every predicted edge is perpendicular to the target normal, e.g. when the
    prediction is the target (up to scale and in-plane motion of each face).
    """
    f = _faces(faces, pred.device)
    # F.normalize clamps the norm at eps: degenerate (zero-length) edges give 0, not NaN.
    e1 = F.normalize(pred[:, f[:, 1]] - pred[:, f[:, 0]], dim=-1)
    e2 = F.normalize(pred[:, f[:, 2]] - pred[:, f[:, 0]], dim=-1)
    e3 = F.normalize(pred[:, f[:, 2]] - pred[:, f[:, 1]], dim=-1)
    g1 = target[:, f[:, 1]] - target[:, f[:, 0]]
    g2 = target[:, f[:, 2]] - target[:, f[:, 0]]
    n = F.normalize(torch.cross(g1, g2, dim=-1), dim=-1)
    cos = [(e * n).sum(-1).abs() for e in (e1, e2, e3)]
    return torch.stack(cos).mean()


@dataclass
class LossTerms:
    """The five terms of eq. (4) and their weighted sum (scalar tensors)."""

    pose_posenet: torch.Tensor
    pose_meshnet: torch.Tensor
    vertex: torch.Tensor
    edge: torch.Tensor
    normal: torch.Tensor
    total: torch.Tensor


def i2l_loss(
    joints: torch.Tensor,
    vertices: torch.Tensor,
    joints_gt: torch.Tensor,
    vertices_gt: torch.Tensor,
    j_regressor: torch.Tensor,
    faces,
    normal_weight: float = 0.1,
    joints_valid: torch.Tensor | None = None,
) -> LossTerms:
    """Seed 002 eq. (4).

    Args:
        joints: (B, J, 3) PoseNet joints.
        vertices: (B, V, 3) MeshNet vertices.
        joints_gt: (B, J, 3) target joints (same units/frame).
        vertices_gt: (B, V, 3) target vertices.
        j_regressor: (J, V) the hand model's joint regressor (rows sum to 1), mapping
            vertices to the same J joints as ``joints_gt``.
        faces: (F, 3) mesh faces of the hand model.
        normal_weight: weight of the normal term (0.1).
        joints_valid: optional (B, J, 1|3) joint mask.
    """
    pose_posenet = coord_l1(joints, joints_gt, joints_valid)
    pose_meshnet = coord_l1(regress_joints(vertices, j_regressor), joints_gt, joints_valid)
    vertex = coord_l1(vertices, vertices_gt)
    edge = edge_length_loss(vertices, vertices_gt, faces)
    normal = normal_loss(vertices, vertices_gt, faces)
    total = pose_posenet + pose_meshnet + vertex + edge + normal_weight * normal
    return LossTerms(pose_posenet, pose_meshnet, vertex, edge, normal, total)
