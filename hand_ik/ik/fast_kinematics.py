"""Keypoints of the hand model and their analytic Jacobians, in numpy (one frame at a time).

The per-frame post-optimization needs, a few times per frame, the 21 keypoints and
their derivatives with respect to the 23 DoF, the global rotation, the translation and
the 10 shape coefficients. Torch's autodiff costs milliseconds of dispatch overhead at
this size; the closed forms below cost a fraction of one:

- a DoF rotating joint j about the world axis u moves every point x of j's subtree by
  ``u x (x - p_j)`` (p_j: the joint's posed position);
- the global rotation, perturbed on the left, moves x by ``delta x (x - p_0)``;
- the keypoints are linear in the shape for fixed rotations (forward kinematics of the
  shape directions).
Fingertips are skinned vertices, so their derivatives are blends over the joints that
carry them. Matches ``KeypointLayer`` exactly (tested) for models without pose
correctives (our open model); ``supports`` tells.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from hand_ik.biomech import BioKinematics
from hand_ik.ik.keypoint_layer import KeypointLayer
from hand_ik.rotations import axis_angle_to_rotmat, skew


def cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross product over the last axis (broadcasting); np.cross is slow for small arrays."""
    a0, a1, a2 = a[..., 0], a[..., 1], a[..., 2]
    b0, b1, b2 = b[..., 0], b[..., 1], b[..., 2]
    return np.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], axis=-1)


class _Pose(NamedTuple):
    """Intermediate results of :meth:`FastKeypointKinematics._pose` (world frame)."""

    keypoints: np.ndarray  # (21, 3)
    world: np.ndarray  # (16, 3, 3) joint rotations
    pos: np.ndarray  # (16, 3) joint positions
    world_axes: np.ndarray  # (15, 3, 3) world axes of the elementary rotations
    per_joint: np.ndarray  # (5, 16, 3) each joint's transform of each rest fingertip


class FastKeypointKinematics:
    """Numpy keypoints + Jacobians of one hand model (float64).

    Args:
        layer: the model's ``KeypointLayer`` (its buffers are copied).
        kinematics: the model's ``BioKinematics``.
    """

    def __init__(self, layer: KeypointLayer, kinematics: BioKinematics) -> None:
        def np64(t) -> np.ndarray:
            return t.detach().cpu().double().numpy().copy()

        self.supports = not layer.has_posedirs and layer.num_extra == 0
        self.joint_template = np64(layer.joint_template)  # (16, 3)
        self.joint_dirs = np64(layer.joint_dirs)  # (16, 3, K)
        self.tip_template = np64(layer.tip_template)[:5]
        self.tip_dirs = np64(layer.tip_dirs)[:5]
        self.tip_weights = np64(layer.tip_weights)[:5]  # (5, 16)
        self.gather = layer.keypoint_gather.cpu().numpy()
        self.parents = np.array(layer.parents)
        frames = np64(kinematics.frames)  # (15, 3, 3) rows d, b, e
        # Elementary axes per pose joint, in composition order: abd (-b), flex (e), rot (d).
        self.axes = np.stack([-frames[:, 1], frames[:, 2], frames[:, 0]], axis=1)  # (15, 3, 3)
        slots = kinematics.slots.cpu().numpy()  # (15, 3), 23 = absent
        self.signs = np64(kinematics.signs)
        self.slot_valid = slots < 23
        self.slot_index = np.where(self.slot_valid, slots, 0)
        n = len(self.parents)
        subtree = np.eye(n, dtype=bool)
        for j in range(n - 1, 0, -1):  # children come after parents
            subtree[self.parents[j]] |= subtree[j]
        self.subtree = subtree  # subtree[j, k]: k is j or below it
        depth = np.zeros(n, dtype=int)
        for j in range(1, n):
            depth[j] = depth[self.parents[j]] + 1
        #: Joints grouped by tree depth (parents always in an earlier group).
        self.levels = [np.flatnonzero(depth == d) for d in range(1, depth.max() + 1)]

    def forward(self, betas: np.ndarray, bio: np.ndarray, rotation: np.ndarray,
                transl: np.ndarray, jacobians: bool = True):  # fmt: skip
        """Keypoints (21, 3) and, optionally, d keypoints / d (bio, rot, transl, betas).

        Args:
            betas: (K,); bio: (23,) radians; rotation: (3, 3) global rotation about the
                wrist joint; transl: (3,) metres.

        Returns:
            keypoints (21, 3) and, with ``jacobians``, a dict of (63, n) arrays:
            ``bio`` (n=23), ``rot`` (3, left perturbation), ``transl`` (3), ``betas`` (K).
        """
        pose = self._pose(betas, bio, rotation, transl)
        keypoints = pose.keypoints
        if not jacobians:
            return keypoints, None
        return keypoints, {
            "bio": self._dof_jacobian(pose),
            "rot": -skew(keypoints - pose.pos[0]).reshape(63, 3),  # left perturbation
            "transl": np.tile(np.eye(3), (21, 1)),
            "betas": self._shape_jacobian(pose.world),
        }

    def _pose(self, betas, bio, rotation, transl) -> _Pose:
        """Forward kinematics of the joints and the skinned fingertips."""
        rest = self.joint_template + self.joint_dirs @ betas  # (16, 3)
        tips_rest = self.tip_template + self.tip_dirs @ betas  # (5, 3)
        internal = bio * self.signs
        angles = np.where(self.slot_valid, internal[self.slot_index], 0.0)  # (15, 3)
        elementary = axis_angle_to_rotmat(self.axes, angles)  # (15, 3, 3, 3)
        n = len(self.parents)
        world = np.empty((n, 3, 3))
        pos = np.empty((n, 3))
        world[0] = rotation
        pos[0] = rest[0] + transl
        # World axes of each elementary rotation (15, 3 kinds, 3).
        world_axes = np.empty((n - 1, 3, 3))
        for level in self.levels:  # all joints of one tree depth at once
            parent = self.parents[level]
            e = elementary[level - 1]  # (L, 3, 3, 3)
            g = world[parent]
            ga = g @ e[:, 0]
            gaf = ga @ e[:, 1]
            ax = self.axes[level - 1]
            world_axes[level - 1, 0] = np.einsum("lab,lb->la", g, ax[:, 0])
            world_axes[level - 1, 1] = np.einsum("lab,lb->la", ga, ax[:, 1])
            world_axes[level - 1, 2] = np.einsum("lab,lb->la", gaf, ax[:, 2])
            world[level] = gaf @ e[:, 2]
            pos[level] = pos[parent] + np.einsum("lab,lb->la", g, rest[level] - rest[parent])
        # Fingertips: linear blend of the joints' transforms of the rest tip.
        per_joint = np.einsum("jab,tjb->tja", world, tips_rest[:, None] - rest[None]) + pos[None]
        tips = np.einsum("tj,tja->ta", self.tip_weights, per_joint)
        keypoints = np.concatenate([pos, tips])[self.gather]
        return _Pose(keypoints, world, pos, world_axes, per_joint)

    def _dof_jacobian(self, pose: _Pose) -> np.ndarray:
        """(63, 23) d keypoints / d bio, from the 45 elementary columns (joint j, kind k)."""
        pos, world_axes = pose.pos, pose.world_axes
        # Joint points: u x (p_m - p_j) for m in j's subtree.
        diff = pos[None, :, :] - pos[1:, None, :]  # (15, 16, 3): p_m - p_j
        mask = self.subtree[1:]  # (15, 16)
        d_joints = cross(world_axes[:, :, None, :], diff[:, None, :, :])  # (15, 3, 16, 3)
        d_joints *= mask[:, None, :, None]
        # Tips: u x (sum_m w_tm S_jm X_tm - (sum_m w_tm S_jm) p_j).
        ws = self.tip_weights[None, :, :] * mask[:, None, :]  # (15, 5, 16)
        blend = (np.einsum("jtm,tma->jta", ws, pose.per_joint)
                 - ws.sum(-1)[..., None] * pos[1:, None])  # fmt: skip
        d_tips = cross(world_axes[:, :, None, :], blend[:, None, :, :])  # (15, 3, 5, 3)
        d_all = np.concatenate([d_joints, d_tips], axis=2)[:, :, self.gather]  # (15, 3, 21, 3)
        cols = d_all.reshape(45, 63).T  # (63, 45)
        j_bio = np.zeros((63, 23))
        valid = self.slot_valid.reshape(-1)
        np.add.at(j_bio.T, self.slot_index.reshape(-1)[valid], cols.T[valid])
        j_bio *= self.signs[None, :]
        return j_bio

    def _shape_jacobian(self, world: np.ndarray) -> np.ndarray:
        """(63, K) d keypoints / d betas: forward kinematics of the shape directions."""
        d_rest = self.joint_dirs  # (16, 3, K)
        d_pos = np.empty_like(d_rest)
        d_pos[0] = d_rest[0]
        for level in self.levels:
            parent = self.parents[level]
            d_pos[level] = d_pos[parent] + world[parent] @ (d_rest[level] - d_rest[parent])
        d_tip_joint = np.einsum("jab,tjbk->tjak", world,
                                self.tip_dirs[:, None] - d_rest[None]) + d_pos[None]  # fmt: skip
        d_tips_beta = np.einsum("tj,tjak->tak", self.tip_weights, d_tip_joint)
        return np.concatenate([d_pos, d_tips_beta])[self.gather].reshape(63, -1)
