"""Post-optimization (seed 002 Fig. 6B, eq. 3), as damped Gauss-Newton.

Refines the 23 DoF, the shape (unless known) and the global pose so the model's
keypoints (and, when given, vertices) fit the estimated ones, while penalising
opposite bend directions at PIP and DIP of the four fingers (eq. 3), leaving the
joint limits, unlikely shapes and, when tracking, jumps from the previous frame.
The paper runs 20 first-order iterations; a few Levenberg-Marquardt steps with
forward-mode Jacobians converge further (``hand-teleop bench ik`` measures both).
"""

from __future__ import annotations

from dataclasses import dataclass

import roma
import torch

from hand_ik.biomech import BioKinematics
from hand_ik.ik.keypoint_layer import KeypointLayer
from hand_ik.keypoints import FINGER_KEYPOINTS
from hand_ik.optim import levenberg_marquardt

#: (mcp, pip, dip, tip) keypoints of the four long fingers, for the bend penalty.
_LONG_FINGER_CHAINS = torch.tensor([FINGER_KEYPOINTS[f] for f in ("index", "middle", "ring",
                                                                  "little")])  # fmt: skip


@dataclass
class PostOptConfig:
    """Weights of the post-optimization terms (residuals in millimetres)."""

    iterations: int = 5
    """Levenberg-Marquardt steps."""
    vertex_weight: float = 0.5
    """Weight of the mean vertex residual relative to the keypoints' (when vertices are given)."""
    bend_weight: float = 30.0
    """Eq. 3 penalty per finger, on unit bone vectors."""
    limit_weight: float = 300.0
    """Penalty per radian outside the joint limits."""
    shape_prior_weight: float = 0.5
    """Pull of beta toward the mean shape (per unit of beta)."""
    temporal_weight: float = 0.0
    """Pull toward the previous frame's DoF (per radian), when one is given."""

    def __post_init__(self) -> None:
        if self.iterations < 0:
            raise ValueError(f"iterations must be >= 0, got {self.iterations}")
        for name in ("vertex_weight", "bend_weight", "limit_weight", "shape_prior_weight",
                     "temporal_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


def bend_penalty(keypoints: torch.Tensor) -> torch.Tensor:
    """Eq. 3 violation per long finger: ``relu(-(B_td x B_dp) . (B_dp x B_pm))``.

    Args:
        keypoints: (..., 21, 3).

    Returns:
        (..., 4) >= 0; zero where PIP and DIP bend the same way (or a bone is straight).
    """
    chain = keypoints[..., _LONG_FINGER_CHAINS.to(keypoints.device), :]  # (..., 4, 4, 3)
    bones = chain[..., 1:, :] - chain[..., :-1, :]  # pip-mcp, dip-pip, tip-dip
    # Unit bones make the penalty scale-free; clamp to avoid NaN for zero-length bones.
    bones = bones / bones.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    b_pm, b_dp, b_td = bones[..., 0, :], bones[..., 1, :], bones[..., 2, :]
    dot = (torch.linalg.cross(b_td, b_dp, dim=-1) * torch.linalg.cross(b_dp, b_pm, dim=-1)).sum(-1)
    return torch.relu(-dot)


class PostOptimizer:
    """Batched refinement of (bio, betas, global rotation, translation)."""

    def __init__(self, model, kinematics: BioKinematics, config: PostOptConfig | None = None):
        self.model = model
        self.kinematics = kinematics
        self.keypoint_layer = KeypointLayer(model)
        self.config = config or PostOptConfig()

    def _pose_rotmats(self, bio: torch.Tensor, global_rotvec: torch.Tensor) -> torch.Tensor:
        joints = self.kinematics.bio_to_rotmats(bio)
        root = roma.rotvec_to_rotmat(global_rotvec)[:, None]
        return torch.cat([root, joints], dim=1)

    def refine(
        self,
        target_joints: torch.Tensor,
        joint_weights: torch.Tensor,
        bio: torch.Tensor,
        betas: torch.Tensor,
        global_rotvec: torch.Tensor,
        transl: torch.Tensor,
        *,
        fix_betas: bool,
        target_vertices: torch.Tensor | None = None,
        previous_bio: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Refine a batch of IK results.

        Args:
            target_joints: (B, 21, 3) metres (missing keypoints may hold anything).
            joint_weights: (B, 21) in [0, 1]; 0 for missing keypoints.
            bio, betas, global_rotvec, transl: the start, (B, 23), (B, 10), (B, 3), (B, 3).
            fix_betas: keep ``betas`` as given (known operator shape).
            target_vertices: (B, V, 3) estimated mesh, or None.
            previous_bio: (B, 23) previous frame's DoF for the temporal term, or None.

        Returns:
            bio, betas, global_rotvec, transl after the refinement.
        """
        c = self.config
        n_bio, n_beta = bio.shape[1], betas.shape[1]
        use_vertices = target_vertices is not None and c.vertex_weight > 0
        use_temporal = previous_bio is not None and c.temporal_weight > 0
        kin = self.kinematics
        layer = self.keypoint_layer
        sqrt_w = {k: getattr(c, k) ** 0.5 for k in ("bend_weight", "limit_weight",
                                                     "shape_prior_weight", "temporal_weight")}
        num_vertices = self.model.num_vertices

        def residual_fn(x, betas_fixed, target, weights, verts, prev):
            b = x[:, :n_bio]
            beta = betas_fixed if fix_betas else x[:, n_bio : n_bio + n_beta]
            rot = x[:, -6:-3]
            shift = x[:, -3:]
            rotmats = self._pose_rotmats(b, rot)
            if use_vertices:
                out = self.model.forward_rotmat(beta, rotmats[:, 1:], rotmats[:, 0], shift)
                keypoints = out.joints
            else:
                keypoints = layer(beta, rotmats, shift)
            parts = [(1e3 * weights[..., None] * (keypoints - target)).flatten(1)]
            if use_vertices:
                scale = 1e3 * (c.vertex_weight / num_vertices) ** 0.5
                parts.append(scale * (out.vertices - verts).flatten(1))
            parts.append(sqrt_w["bend_weight"] * bend_penalty(keypoints))
            parts.append(sqrt_w["limit_weight"] * kin.limit_violation(b))
            if not fix_betas:
                parts.append(sqrt_w["shape_prior_weight"] * beta)
            if use_temporal:
                parts.append(sqrt_w["temporal_weight"] * (b - prev))
            return torch.cat(parts, dim=1)

        parts = [bio] + ([] if fix_betas else [betas]) + [global_rotvec, transl]
        x0 = torch.cat(parts, dim=1)
        dummy = target_joints.new_zeros(len(bio), 1)
        consts = (
            betas,
            target_joints,
            joint_weights,
            target_vertices if use_vertices else dummy,
            previous_bio if use_temporal else dummy,
        )
        if c.iterations == 0:
            return bio, betas, global_rotvec, transl
        x = levenberg_marquardt(residual_fn, x0, consts, iterations=c.iterations).x
        new_betas = betas if fix_betas else x[:, n_bio : n_bio + n_beta]
        return x[:, :n_bio], new_betas, x[:, -6:-3], x[:, -3:]
