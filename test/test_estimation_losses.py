"""Seed 002 eq. (4) losses: zero on perfect predictions, positive otherwise."""

from __future__ import annotations

import pytest
import torch

from hand_pose_ros.research.estimation.losses import (
    edge_length_loss,
    i2l_loss,
    normal_loss,
    regress_joints,
)

# A tetrahedron: 4 vertices, 4 outward faces.
VERTS = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
FACES = torch.tensor([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])


@pytest.fixture
def mesh_batch():
    gen = torch.Generator().manual_seed(0)
    verts = VERTS[None].repeat(2, 1, 1) + 0.05 * torch.randn(2, 4, 3, generator=gen)
    j_reg = torch.tensor([[1.0, 0, 0, 0], [0, 0.5, 0.5, 0], [0.25, 0.25, 0.25, 0.25]])
    return verts.double(), j_reg.double()


def test_all_terms_zero_on_perfect_prediction(mesh_batch):
    verts, j_reg = mesh_batch
    joints = regress_joints(verts, j_reg)
    terms = i2l_loss(joints, verts, joints, verts, j_reg, FACES)
    for name in ("pose_posenet", "pose_meshnet", "vertex", "edge", "normal", "total"):
        assert getattr(terms, name).item() == pytest.approx(0.0, abs=1e-12), name


def test_terms_positive_on_a_perturbed_prediction(mesh_batch):
    verts, j_reg = mesh_batch
    joints = regress_joints(verts, j_reg)
    pred = verts.clone()
    pred[:, 3] += torch.tensor([0.3, -0.2, 0.4], dtype=pred.dtype)  # moves 3 faces
    terms = i2l_loss(joints + 0.01, pred, joints, verts, j_reg, FACES)
    assert terms.pose_posenet.item() == pytest.approx(0.01)
    for name in ("pose_meshnet", "vertex", "edge", "normal"):
        assert getattr(terms, name).item() > 1e-3, name
    expected = (terms.pose_posenet + terms.pose_meshnet + terms.vertex + terms.edge
                + 0.1 * terms.normal)  # fmt: skip
    torch.testing.assert_close(terms.total, expected)


def test_edge_loss_ignores_rigid_motion_and_normal_loss_ignores_scale(mesh_batch):
    verts, _ = mesh_batch
    rot = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=verts.dtype)
    moved = verts @ rot.T + 0.7
    assert edge_length_loss(moved, verts, FACES).item() == pytest.approx(0.0, abs=1e-12)
    assert edge_length_loss(verts * 2.0, verts, FACES).item() > 0.1
    assert normal_loss(verts * 2.0, verts, FACES).item() == pytest.approx(0.0, abs=1e-12)
    assert normal_loss(moved, verts, FACES).item() > 0.1


def test_losses_are_differentiable_and_finite_on_degenerate_faces(mesh_batch):
    verts, j_reg = mesh_batch
    pred = torch.zeros_like(verts, requires_grad=True)  # every face collapsed to a point
    terms = i2l_loss(regress_joints(pred, j_reg), pred, regress_joints(verts, j_reg), verts,
                     j_reg, FACES)  # fmt: skip
    terms.total.backward()
    assert torch.isfinite(terms.total) and torch.isfinite(pred.grad).all()


def test_bad_faces_raise(mesh_batch):
    verts, _ = mesh_batch
    with pytest.raises(ValueError, match="faces"):
        edge_length_loss(verts, verts, torch.tensor([0, 1, 2]))
