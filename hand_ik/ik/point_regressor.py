"""Points carried by the hand skeleton, as blends over its joints: the keypoints of a convention.

A point ``k`` of the posed hand is written as a blend over the 16 joints::

    y_k = sum_j W[k, j] * pos_j + world_j @ O[k, j](betas)

with ``pos_j`` / ``world_j`` a joint's posed position and rotation and ``O[k, j]`` an offset
in the rest pose, linear in the shape: ``O = offsets + offset_dirs @ betas``. Every keypoint
definition the IK needs has this form:

- a model joint: ``W`` one-hot, ``O = 0``;
- a skinned vertex (our fingertips): ``W`` its skinning weights,
  ``O[k, j] = W[k, j] * (v_rest - J_j)``;
- a joint regressor over the mesh (MANO's ``J_regressor``, a fitted convention):
  a weighted sum of skinned vertices, which collapses onto the joints the same way
  (:meth:`PointRegressor.from_vertex_regressor`);
- a point at a fixed offset in a bone's frame: ``W`` one-hot, ``O`` that offset.

So the forward kinematics and its closed-form Jacobians
(:class:`hand_ik.ik.fast_kinematics.FastKeypointKinematics`) serve every convention; this
module holds the data. Arrays are float64 numpy, metres, in the model's rest frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _np64(t) -> np.ndarray:
    return np.array(t.detach().cpu().double().numpy() if hasattr(t, "detach") else t,
                    dtype=np.float64)  # fmt: skip


@dataclass(frozen=True)
class PointRegressor:
    """K points as blends over the 16 joints (see the module docstring).

    Attributes:
        weights: (K, 16) ``W``; rows usually sum to 1 (a point moves rigidly with the hand).
        offsets: (K, 16, 3) rest-frame offsets ``O`` at the mean shape, metres.
        offset_dirs: (K, 16, 3, B) their change per unit of each of the B shape coefficients.
        pose_dirs: (K, 16, 3, P) their change per pose-corrective feature (the flattened
            ``R - I`` of the 15 pose joints, P = 135), or None (models without correctives).
    """

    weights: np.ndarray
    offsets: np.ndarray
    offset_dirs: np.ndarray
    pose_dirs: np.ndarray | None = None

    def __post_init__(self) -> None:
        k, j = self.weights.shape
        if self.offsets.shape != (k, j, 3):
            raise ValueError(f"offsets must be ({k}, {j}, 3), got {self.offsets.shape}")
        if self.offset_dirs.ndim != 4 or self.offset_dirs.shape[:3] != (k, j, 3):
            raise ValueError(f"offset_dirs must be ({k}, {j}, 3, B), got {self.offset_dirs.shape}")
        if self.pose_dirs is not None and (self.pose_dirs.ndim != 4
                                           or self.pose_dirs.shape[:3] != (k, j, 3)):
            raise ValueError(f"pose_dirs must be ({k}, {j}, 3, P), got {self.pose_dirs.shape}")

    @property
    def num_points(self) -> int:
        return int(self.weights.shape[0])

    @classmethod
    def from_skinned_points(cls, joint_rest: np.ndarray, joint_dirs: np.ndarray,
                            weights: np.ndarray, rest: np.ndarray, dirs: np.ndarray,
                            pose_dirs: np.ndarray | None = None) -> PointRegressor:  # fmt: skip
        """Points skinned like mesh vertices.

        Args:
            joint_rest: (16, 3) the model's rest joints at the mean shape; joint_dirs:
                (16, 3, B) their shape directions.
            weights: (K, 16) skinning weights; rest: (K, 3) rest positions; dirs:
                (K, 3, B) shape directions; pose_dirs: (P, K, 3) pose correctives or None.
        """
        w = np.asarray(weights, np.float64)
        # O[k, j] = W[k, j] (x_k - J_j)
        offsets = w[..., None] * (rest[:, None] - joint_rest[None])
        offset_dirs = w[..., None, None] * (dirs[:, None] - joint_dirs[None])
        pose = None
        if pose_dirs is not None:
            pose = np.einsum("kj,pkc->kjcp", w, pose_dirs)
        return cls(w, offsets, offset_dirs, pose)

    @classmethod
    def from_model(cls, model) -> PointRegressor:
        """The model's own 21 keypoints (FreiHAND order): 16 joints and 5 skinned fingertips."""
        j_reg = _np64(model.J_regressor)
        v_template, shapedirs = _np64(model.v_template), _np64(model.shapedirs)
        joint_rest = j_reg @ v_template  # (16, 3)
        joint_dirs = np.einsum("jv,vcb->jcb", j_reg, shapedirs)  # (16, 3, B)
        tips = model.tip_vertex_ids.cpu().numpy()
        lbs = _np64(model.lbs_weights)
        num_joints = len(joint_rest)
        # The 16 joints themselves: one-hot weights, no offset; then the fingertips.
        weights = np.concatenate([np.eye(num_joints), lbs[tips]])
        rest = np.concatenate([joint_rest, v_template[tips]])
        dirs = np.concatenate([joint_dirs, shapedirs[tips]])
        pose_dirs = None
        if model.has_posedirs:
            posedirs = _np64(model.posedirs).reshape(-1, len(v_template), 3)  # (P, V, 3)
            pose_dirs = np.concatenate(
                [np.zeros((len(posedirs), num_joints, 3)), posedirs[:, tips]], axis=1)
        full = cls.from_skinned_points(joint_rest, joint_dirs, weights, rest, dirs, pose_dirs)
        return full.select(model.keypoint_gather.cpu().numpy())

    @classmethod
    def from_vertex_regressor(cls, model, regressor: np.ndarray) -> PointRegressor:
        """K points regressed from the posed mesh: ``y = regressor @ vertices`` ((K, V)).

        Exact for linear blend skinning: a weighted sum of skinned vertices is itself a
        blend over the joints.
        """
        reg = np.asarray(regressor, np.float64)
        v_template, shapedirs = _np64(model.v_template), _np64(model.shapedirs)
        if reg.ndim != 2 or reg.shape[1] != len(v_template):
            raise ValueError(f"regressor must be (K, {len(v_template)}), got {reg.shape}")
        j_reg = _np64(model.J_regressor)
        joint_rest = j_reg @ v_template
        joint_dirs = np.einsum("jv,vcb->jcb", j_reg, shapedirs)
        lbs = _np64(model.lbs_weights)  # (V, 16)
        weights = reg @ lbs  # (K, 16)
        # O[k, j] = sum_v R[k, v] w[v, j] (v_rest - J_j)
        offsets = (np.einsum("kv,vj,vc->kjc", reg, lbs, v_template)
                   - weights[..., None] * joint_rest)  # fmt: skip
        offset_dirs = (np.einsum("kv,vj,vcb->kjcb", reg, lbs, shapedirs)
                       - weights[..., None, None] * joint_dirs)  # fmt: skip
        pose = None
        if model.has_posedirs:
            posedirs = _np64(model.posedirs).reshape(-1, len(v_template), 3)
            pose = np.einsum("kv,vj,pvc->kjcp", reg, lbs, posedirs)
        return cls(weights, offsets, offset_dirs, pose)

    def select(self, index) -> PointRegressor:
        """The points ``index`` (a sequence of point indices), in that order."""
        idx = np.asarray(index)
        pose = None if self.pose_dirs is None else self.pose_dirs[idx]
        return PointRegressor(self.weights[idx], self.offsets[idx], self.offset_dirs[idx], pose)

    def compose(self, matrix: np.ndarray) -> PointRegressor:
        """Points ``matrix @ points`` ((M, K)): linear combinations of these points."""
        a = np.asarray(matrix, np.float64)
        if a.ndim != 2 or a.shape[1] != self.num_points:
            raise ValueError(f"matrix must be (M, {self.num_points}), got {a.shape}")
        pose = None if self.pose_dirs is None else np.einsum("mk,kjcp->mjcp", a, self.pose_dirs)
        return PointRegressor(a @ self.weights, np.einsum("mk,kjc->mjc", a, self.offsets),
                              np.einsum("mk,kjcb->mjcb", a, self.offset_dirs), pose)  # fmt: skip
