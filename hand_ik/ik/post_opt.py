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

import numpy as np
import roma
import torch

from hand_ik.biomech import BioKinematics
from hand_ik.ik.fast_kinematics import cross
from hand_ik.ik.keypoint_layer import KeypointLayer
from hand_ik.keypoints import FINGER_KEYPOINTS
from hand_ik.optim import levenberg_marquardt

#: (mcp, pip, dip, tip) keypoints of the four long fingers, for the bend penalty.
_LONG_FINGER_CHAINS = torch.tensor([FINGER_KEYPOINTS[f] for f in ("index", "middle", "ring",
                                                                  "little")])  # fmt: skip


@dataclass
class PostOptConfig:
    """Weights of the post-optimization terms (residuals in millimetres)."""

    iterations: int = 3
    """Optimizer steps (2-3 converge: measured 0.665 / 0.663 / 0.663 mm for 2 / 3 / 5 on
    held-out synthetic joints)."""
    method: str = "lm"
    """``lm`` (Levenberg-Marquardt) or ``adam`` (the paper's first-order optimizer)."""
    adam_lr: float = 0.01
    """Step size of the ``adam`` method."""
    vertex_weight: float = 0.5
    """Weight of the mean vertex residual relative to the keypoints' (when vertices are given)."""
    bend_weight: float = 30.0
    """Eq. 3 penalty per finger, on unit bone vectors."""
    limit_weight: float = 300.0
    """Penalty per radian outside the joint limits."""
    shape_prior_weight: float = 0.1
    """Pull of beta toward the mean shape (per unit of beta)."""
    temporal_weight: float = 0.0
    """Pull toward the previous frame's DoF (per radian), when one is given."""
    start_weight: float = 300.0
    """Pull toward the starting DoF (the IK net's prediction), per radian: a prior that keeps
    the fit from chasing keypoint noise."""

    def __post_init__(self) -> None:
        if self.iterations < 0:
            raise ValueError(f"iterations must be >= 0, got {self.iterations}")
        if self.method not in ("lm", "adam"):
            raise ValueError(f"method must be 'lm' or 'adam', got {self.method!r}")
        for name in ("vertex_weight", "bend_weight", "limit_weight", "shape_prior_weight",
                     "temporal_weight", "start_weight"):
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


def bend_penalty_np(keypoints: np.ndarray) -> np.ndarray:
    """Numpy twin of :func:`bend_penalty`: (..., 21, 3) -> (..., 4)."""
    chain = keypoints[..., _LONG_FINGER_CHAINS.numpy(), :]
    bones = chain[..., 1:, :] - chain[..., :-1, :]
    bones = bones / np.maximum(np.linalg.norm(bones, axis=-1, keepdims=True), 1e-9)
    b_pm, b_dp, b_td = bones[..., 0, :], bones[..., 1, :], bones[..., 2, :]
    dot = (cross(b_td, b_dp) * cross(b_dp, b_pm)).sum(-1)
    return np.maximum(-dot, 0.0)


#: Keypoint coordinates the bend penalty reads (for its finite-difference Jacobian).
_BEND_COORDS = np.array([3 * k + a for k in _LONG_FINGER_CHAINS.reshape(-1).tolist()
                         for a in range(3)])  # fmt: skip


def _bend_jacobian(keypoints: np.ndarray, step: float = 1e-7) -> tuple[np.ndarray, np.ndarray]:
    """Penalty (4,) and its derivative (4, 63) w.r.t. the flattened keypoints (central FD)."""
    flat = keypoints.reshape(-1)
    n = len(_BEND_COORDS)
    plus = np.tile(flat, (n, 1))
    minus = plus.copy()
    plus[np.arange(n), _BEND_COORDS] += step
    minus[np.arange(n), _BEND_COORDS] -= step
    diff = (bend_penalty_np(plus.reshape(n, 21, 3)) - bend_penalty_np(minus.reshape(n, 21, 3)))
    jac = np.zeros((4, 63))
    jac[:, _BEND_COORDS] = (diff / (2 * step)).T
    return bend_penalty_np(keypoints), jac


class PostOptimizer:
    """Batched refinement of (bio, betas, global rotation, translation).

    Keypoint-only refinement with ``method="lm"`` runs per frame in numpy with analytic
    Jacobians (``FastKeypointKinematics``); with vertices, the Adam method or a model
    with pose correctives it runs in torch.
    """

    def __init__(self, model, kinematics: BioKinematics, config: PostOptConfig | None = None):
        from hand_ik.ik.fast_kinematics import FastKeypointKinematics

        self.model = model
        self.kinematics = kinematics
        self.keypoint_layer = KeypointLayer(model)
        self.fast = FastKeypointKinematics(self.keypoint_layer, kinematics)
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
        if c.iterations == 0:
            return bio, betas, global_rotvec, transl
        n_bio, n_beta = bio.shape[1], betas.shape[1]
        use_vertices = target_vertices is not None and c.vertex_weight > 0
        if c.method == "lm" and not use_vertices and self.fast.supports:
            return self._refine_fast(target_joints, joint_weights, bio, betas, global_rotvec,
                                     transl, fix_betas, previous_bio)  # fmt: skip
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
            if c.start_weight > 0:
                parts.append(c.start_weight**0.5 * (b - start))
            return torch.cat(parts, dim=1)

        parts = [bio] + ([] if fix_betas else [betas]) + [global_rotvec, transl]
        x0 = torch.cat(parts, dim=1)
        start = bio.detach()
        dummy = target_joints.new_zeros(len(bio), 1)
        consts = (
            betas,
            target_joints,
            joint_weights,
            target_vertices if use_vertices else dummy,
            previous_bio if use_temporal else dummy,
        )
        if c.method == "lm":
            x = levenberg_marquardt(residual_fn, x0, consts, iterations=c.iterations).x
        else:
            x = _adam(residual_fn, x0, consts, c.iterations, c.adam_lr)
        new_betas = betas if fix_betas else x[:, n_bio : n_bio + n_beta]
        return x[:, :n_bio], new_betas, x[:, -6:-3], x[:, -3:]

    def _refine_fast(self, target_joints, joint_weights, bio, betas, global_rotvec, transl,
                     fix_betas, previous_bio):  # fmt: skip
        """Per-frame Levenberg-Marquardt in numpy with analytic Jacobians."""
        from hand_ik.ik.fast_kinematics import matrix_to_rotvec, rotvec_to_matrix

        def np64(t):
            return None if t is None else t.detach().cpu().double().numpy()

        out = [np64(bio).copy(), np64(betas).copy(), np64(global_rotvec).copy(),
               np64(transl).copy()]  # fmt: skip
        target, weights, prev = np64(target_joints), np64(joint_weights), np64(previous_bio)
        lower = self.kinematics.lower.double().numpy()
        upper = self.kinematics.upper.double().numpy()
        for i in range(len(target)):
            self._start = out[0][i].copy()
            b, beta, rot, t = self._solve_one(
                target[i], weights[i], out[0][i], out[1][i], rotvec_to_matrix(out[2][i]),
                out[3][i], fix_betas, None if prev is None else prev[i], lower, upper)  # fmt: skip
            out[0][i], out[1][i], out[2][i], out[3][i] = b, beta, matrix_to_rotvec(rot), t
        dtype = bio.dtype
        return tuple(torch.as_tensor(a, dtype=dtype) for a in out)

    def _residuals(self, target, weights, bio, beta, rot, t, fix_betas, prev, lower, upper,
                   jacobians):  # fmt: skip
        c = self.config
        keypoints, jac = self.fast.forward(beta, bio, rot, t, jacobians=jacobians)
        w = np.repeat(1e3 * weights, 3)
        parts = [w * (keypoints - target).reshape(-1)]
        sb, sl = c.bend_weight**0.5, c.limit_weight**0.5
        below, above = bio < lower, bio > upper
        violation = np.where(below, lower - bio, np.where(above, bio - upper, 0.0))
        parts.append(sl * violation)
        if not fix_betas:
            parts.append(c.shape_prior_weight**0.5 * beta)
        use_temporal = prev is not None and c.temporal_weight > 0
        if use_temporal:
            parts.append(c.temporal_weight**0.5 * (bio - prev))
        if c.start_weight > 0:
            parts.append(c.start_weight**0.5 * (bio - self._start))
        if not jacobians:
            parts.insert(1, sb * bend_penalty_np(keypoints))
            return np.concatenate(parts), None
        penalty, d_pen = _bend_jacobian(keypoints)
        parts.insert(1, sb * penalty)
        cols = [jac["bio"]] + ([] if fix_betas else [jac["betas"]]) + [jac["rot"], jac["transl"]]
        j_kp = np.concatenate(cols, axis=1)  # (63, P)
        n_p = j_kp.shape[1]
        rows = [w[:, None] * j_kp, sb * (d_pen @ j_kp)]
        j_lim = np.zeros((23, n_p))
        j_lim[np.arange(23), np.arange(23)] = sl * np.where(below, -1.0, np.where(above, 1.0, 0.0))
        rows.append(j_lim)
        if not fix_betas:
            j_beta = np.zeros((len(beta), n_p))
            j_beta[:, 23 : 23 + len(beta)] = c.shape_prior_weight**0.5 * np.eye(len(beta))
            rows.append(j_beta)
        pulls = ((c.temporal_weight, use_temporal), (c.start_weight, c.start_weight > 0))
        for weight, used in pulls:
            if used:
                j_t = np.zeros((23, n_p))
                j_t[:, :23] = weight**0.5 * np.eye(23)
                rows.append(j_t)
        return np.concatenate(parts), np.concatenate(rows)

    def _solve_one(self, target, weights, bio, beta, rot, t, fix_betas, prev, lower, upper):
        from hand_ik.ik.fast_kinematics import rotvec_to_matrix

        nb = 0 if fix_betas else len(beta)
        lam = 1e-3
        res, jac = self._residuals(target, weights, bio, beta, rot, t, fix_betas, prev, lower,
                                   upper, True)  # fmt: skip
        cost = 0.5 * res @ res
        for _ in range(self.config.iterations):
            jtj = jac.T @ jac
            diag = np.maximum(np.diag(jtj), 1e-9)
            try:
                step = np.linalg.solve(jtj + lam * np.diag(diag), -(jac.T @ res))
            except np.linalg.LinAlgError:
                break  # singular even with damping: keep the current estimate
            c_bio = bio + step[:23]
            c_beta = beta + step[23 : 23 + nb] if nb else beta
            c_rot = rotvec_to_matrix(step[23 + nb : 26 + nb]) @ rot
            c_t = t + step[26 + nb : 29 + nb]
            c_res, _ = self._residuals(target, weights, c_bio, c_beta, c_rot, c_t, fix_betas,
                                       prev, lower, upper, False)  # fmt: skip
            c_cost = 0.5 * c_res @ c_res
            if np.isfinite(c_cost) and c_cost < cost:
                bio, beta, rot, t = c_bio, c_beta, c_rot, c_t
                improvement = cost - c_cost
                cost = c_cost
                lam = max(lam * 0.3, 1e-9)
                if improvement < 1e-10:
                    break
                res, jac = self._residuals(target, weights, bio, beta, rot, t, fix_betas, prev,
                                           lower, upper, True)  # fmt: skip
            else:
                lam = min(lam * 10.0, 1e9)
        return bio, beta, rot, t


def _adam(residual_fn, x0: torch.Tensor, consts: tuple, iterations: int, lr: float) -> torch.Tensor:
    """First-order refinement (seed 002 runs 20 iterations), for comparison with LM."""
    x = x0.detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([x], lr=lr)
    for _ in range(iterations):
        optimizer.zero_grad()
        cost = 0.5 * (residual_fn(x, *consts) ** 2).sum()
        cost.backward()
        optimizer.step()
    return x.detach()
