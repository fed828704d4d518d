"""Post-optimization (seed 002 Fig. 6B, eq. 3): refine each frame's IK result.

Refines the 23 DoF, the shape (unless known) and the global pose so the model's
keypoints (and, when given, vertices) fit the estimated ones, while penalising
opposite bend directions at PIP and DIP of the four fingers (eq. 3), leaving the
joint limits, unlikely shapes and, when tracking, jumps from the previous frame
(the objective: :mod:`hand_ik.ik.post_opt_objective`). The paper runs 20
first-order iterations; a few Levenberg-Marquardt steps (:func:`hand_ik.optim.least_squares`)
converge further (``hand-teleop bench ik`` measures both).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hand_ik.biomech import BioKinematics
from hand_ik.ik.fast_kinematics import FastKeypointKinematics
from hand_ik.ik.keypoint_layer import KeypointLayer
from hand_ik.ik.post_opt_objective import (
    PostOptProblem,
    PostOptWeights,
    bend_penalty,
    bend_penalty_jacobian,
)
from hand_ik.ik.torch_kinematics import TorchPointKinematics
from hand_ik.optim import LMConfig, least_squares
from hand_ik.rotations import rotmat_to_rotvec, rotvec_left_jacobian, rotvec_to_rotmat

__all__ = ["PostOptConfig", "PostOptimizer", "bend_penalty", "bend_penalty_jacobian"]

#: Stop once a Levenberg-Marquardt step lowers the cost (about mm^2) by less than this.
_COST_TOLERANCE = 1e-10


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
    temporal_weight: float = 2.0
    """Pull toward the previous frame's DoF (per radian), when one is given (tracking)."""
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

    def objective_weights(self) -> PostOptWeights:
        """The square roots of the weights, as the objective applies them to residuals."""
        return PostOptWeights(
            vertex=self.vertex_weight**0.5, bend=self.bend_weight**0.5,
            limit=self.limit_weight**0.5, shape_prior=self.shape_prior_weight**0.5,
            temporal=self.temporal_weight**0.5, start=self.start_weight**0.5,
        )  # fmt: skip


class PostOptimizer:
    """Per-frame refinement of (bio, betas, global rotation, translation), in numpy.

    Keypoint Jacobians come in closed form (``FastKeypointKinematics``) where the model
    allows; a model with pose correctives, or a fit to the whole mesh, takes them from
    torch autodiff (``TorchPointKinematics``). Either way the objective is the same.
    """

    def __init__(self, model, kinematics: BioKinematics, config: PostOptConfig | None = None):
        self.model = model
        self.kinematics = kinematics
        self.config = config or PostOptConfig()
        self.fast = FastKeypointKinematics(KeypointLayer(model), kinematics)
        self._autodiff: dict[bool, TorchPointKinematics] = {}
        self._lower = kinematics.lower.double().numpy()
        self._upper = kinematics.upper.double().numpy()

    def _point_kinematics(self, use_vertices: bool):
        if not use_vertices and self.fast.supports:
            return self.fast
        if use_vertices not in self._autodiff:
            self._autodiff[use_vertices] = TorchPointKinematics(
                self.model, self.kinematics, with_vertices=use_vertices)  # fmt: skip
        return self._autodiff[use_vertices]

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
        """Refine a batch of IK results, frame by frame.

        Args:
            target_joints: (B, 21, 3) metres (missing keypoints may hold anything).
            joint_weights: (B, 21) in [0, 1]; 0 for missing keypoints.
            bio, betas, global_rotvec, transl: the start, (B, 23), (B, 10), (B, 3), (B, 3).
            fix_betas: keep ``betas`` as given (known operator shape).
            target_vertices: (B, V, 3) estimated mesh, or None.
            previous_bio: (B, 23) previous frame's DoF for the temporal term, or None.

        Returns:
            bio, betas, global_rotvec, transl after the refinement (dtype of ``bio``).
        """
        c = self.config
        if c.iterations == 0:
            return bio, betas, global_rotvec, transl
        use_vertices = target_vertices is not None and c.vertex_weight > 0
        kinematics = self._point_kinematics(use_vertices)
        weights = c.objective_weights()
        out = [_np64(t).copy() for t in (bio, betas, global_rotvec, transl)]
        target, joint_w = _np64(target_joints), _np64(joint_weights)
        prev = None if previous_bio is None else _np64(previous_bio)
        verts = _np64(target_vertices) if use_vertices else None
        for i in range(len(target)):
            problem = PostOptProblem(
                kinematics=kinematics, weights=weights, target=target[i],
                joint_weights=joint_w[i], start=out[0][i].copy(), betas=out[1][i].copy(),
                fix_betas=fix_betas, lower=self._lower, upper=self._upper,
                previous=None if prev is None else prev[i],
                target_vertices=None if verts is None else verts[i],
            )  # fmt: skip
            x0 = problem.pack(out[0][i], out[1][i], rotvec_to_rotmat(out[2][i]), out[3][i])
            x = self._solve(problem, x0)
            b, beta, rotation, t = problem.unpack(x)
            out[0][i], out[1][i], out[2][i], out[3][i] = b, beta, rotmat_to_rotvec(rotation), t
        return tuple(torch.as_tensor(a, dtype=bio.dtype) for a in out)

    def _solve(self, problem: PostOptProblem, x0: np.ndarray) -> np.ndarray:
        c = self.config
        if c.method == "adam":
            return _adam(problem, x0, c.iterations, c.adam_lr)
        result = least_squares(problem.residuals, x0,
                               LMConfig(max_iterations=c.iterations,
                                        cost_tolerance=_COST_TOLERANCE),
                               retract=problem.retract)  # fmt: skip
        return result.x


def _np64(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy()


def _adam(problem: PostOptProblem, x0: np.ndarray, iterations: int, lr: float,
          betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> np.ndarray:  # fmt: skip
    """First-order refinement (seed 002 runs 20 iterations), for comparison with LM.

    Adam (``torch.optim.Adam``'s update) on [bio, betas, rotation vector, translation]
    with the gradient ``J^T r`` of the same objective; the rotation's gradient is moved
    from the objective's left perturbation to the rotation vector.
    """
    bio, shape, rotation, transl = problem.unpack(x0)
    params = np.concatenate([bio] + ([] if problem.fix_betas else [shape])
                            + [rotmat_to_rotvec(rotation), transl])  # fmt: skip
    nb = len(params) - 29
    m, v = np.zeros_like(params), np.zeros_like(params)
    x = x0
    for k in range(1, iterations + 1):
        res, jac = problem.residuals(x, True)
        grad = jac.T @ res
        rotvec = params[23 + nb : 26 + nb]
        grad[23 + nb : 26 + nb] = rotvec_left_jacobian(rotvec).T @ grad[23 + nb : 26 + nb]
        m = betas[0] * m + (1 - betas[0]) * grad
        v = betas[1] * v + (1 - betas[1]) * grad**2
        denom = np.sqrt(v) / np.sqrt(1 - betas[1] ** k) + eps
        params = params - (lr / (1 - betas[0] ** k)) * m / denom
        rotation = rotvec_to_rotmat(params[23 + nb : 26 + nb])
        x = problem.pack(params[:23], params[23 : 23 + nb] if nb else shape, rotation,
                         params[26 + nb :])  # fmt: skip
    return x
