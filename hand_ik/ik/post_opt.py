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
from typing import NamedTuple

import numpy as np

from hand_ik.biomech import BioKinematics
from hand_ik.ik.fast_kinematics import FastKeypointKinematics, Posed
from hand_ik.ik.post_opt_objective import (
    PostOptProblem,
    PostOptWeights,
    bend_penalty,
    bend_penalty_jacobian,
)
from hand_ik.ik.torch_kinematics import TorchPointKinematics
from hand_ik.optim import LMConfig, least_squares
from hand_ik.rotations import rotmat_to_rotvec, rotvec_left_jacobian, rotvec_to_rotmat

__all__ = ["ImageEvidence", "PostOptConfig", "PostOptimizer", "bend_penalty",
           "bend_penalty_jacobian"]

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
    """Pull of beta toward the mean shape (per unit of beta), for 3D keypoints alone
    (motion capture, gloves, keypoint files: accurate to a few millimetres)."""
    image_shape_prior_weight: float = 100.0
    """The same pull when the hands come with an image estimator's 2D keypoints (the
    ``image`` evidence of :meth:`PostOptimizer.refine`, even with ``reprojection_weight``
    0). Such 3D keypoints are off by about 10 mm, so about (10 mm)^2 per unit of beta: the
    model's shapes are unit normal. At the 3D weight the fit bent the shape far outside the
    model's range to follow that noise, a visibly deformed hand (median |beta| 61 on
    held-out synthetic crops through the landmark network, 54 on real crops; the rest mesh
    17.6 mm from the same shape clipped to +-3, median over vertices and hands; docs/
    landmark_mesh_head.md). Chosen on held-out synthetic crops (277 / 306 hands through the
    landmark network / the mesh head, IKStage), PA-MPJPE at 0.1 / 10 / 30 / 100 / 1000: landmarks
    16.93 / 16.27 / 16.12 / 16.10 / 16.89 mm, mesh head 15.76 / 14.98 / 14.88 / 14.80 /
    15.03 mm (median |beta| 2.7 and 2.0 at 100)."""
    temporal_weight: float = 2.0
    """Pull toward the previous frame's DoF (per radian), when one is given (tracking)."""
    start_weight: float = 300.0
    """Pull toward the starting DoF (the IK net's prediction), per radian: a prior that keeps
    the fit from chasing keypoint noise."""
    reprojection_weight: float = 30.0
    """Weight of the 2D reprojection error (model keypoints projected with the camera
    intrinsics against the estimator's image keypoints, in percent of the hand's image size,
    so 1 % weighs like 1 mm of 3D error), when image keypoints and intrinsics are given;
    0 disables it. Chosen on held-out synthetic hands (accurate 2D, 6 mm joint + 2 cm depth
    noise in 3D): 2D error 8.9 / 6.9 / 3.2 / 2.4 / 2.3 / 2.8 px and root-relative error
    12.4 / 11.2 / 8.8 / 8.0 / 7.4 / 7.7 mm for 0 / 1 / 10 / 30 / 100 / 300 at 3 steps, with
    PCK@0.05 highest (0.992) at 10-30."""
    reprojection_huber: float = 0.05
    """Huber threshold of the reprojection error, as a fraction of the hand's image size:
    quadratic below, linear above (outlier 2D keypoints)."""

    def __post_init__(self) -> None:
        if self.iterations < 0:
            raise ValueError(f"iterations must be >= 0, got {self.iterations}")
        if self.method not in ("lm", "adam"):
            raise ValueError(f"method must be 'lm' or 'adam', got {self.method!r}")
        for name in ("vertex_weight", "bend_weight", "limit_weight", "shape_prior_weight",
                     "image_shape_prior_weight", "temporal_weight", "start_weight",
                     "reprojection_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.reprojection_huber > 0:
            raise ValueError(f"reprojection_huber must be > 0, got {self.reprojection_huber}")

    def objective_weights(self, from_image: bool = False) -> PostOptWeights:
        """The square roots of the weights, as the objective applies them to residuals;
        ``from_image``: the keypoints are an image estimator's (the image shape prior)."""
        shape_prior = self.image_shape_prior_weight if from_image else self.shape_prior_weight
        return PostOptWeights(
            vertex=self.vertex_weight**0.5, bend=self.bend_weight**0.5,
            limit=self.limit_weight**0.5, shape_prior=shape_prior**0.5,
            temporal=self.temporal_weight**0.5, start=self.start_weight**0.5,
            reprojection=self.reprojection_weight**0.5,
            reprojection_huber=self.reprojection_huber,
        )  # fmt: skip


class ImageEvidence(NamedTuple):
    """The estimator's 2D keypoints of a batch of hands and their camera (float64)."""

    points: np.ndarray  # (B, 21, 2) pixels (anything where the weight is 0)
    weights: np.ndarray  # (B, 21) confidence in [0, 1]; 0: missing
    camera: np.ndarray  # (B, 3, 3) intrinsics of the points' frame (fx < 0: mirrored)
    scale: np.ndarray  # (B,) pixels: the hand's image size (bounding-box diagonal)


class Refined(NamedTuple):
    """The post-optimization's result for a batch of frames (float64)."""

    bio: np.ndarray  # (B, 23) radians
    betas: np.ndarray  # (B, K)
    rotation: np.ndarray  # (B, 3, 3) global rotation about the wrist joint
    transl: np.ndarray  # (B, 3) metres
    posed: Posed | None  # the optimizer's kinematics posed there, where known


class PostOptimizer:
    """Refinement of (bio, betas, global rotation, translation), in numpy.

    Keypoint Jacobians come in closed form (``FastKeypointKinematics``) where the model
    allows; a model with pose correctives, or a fit to the whole mesh, takes them from
    torch autodiff (``TorchPointKinematics``, one frame at a time). Either way the
    objective is the same.

    Args:
        model: the ``HandModel``.
        kinematics: its ``BioKinematics``.
        config: the terms' weights and the optimizer.
        fast: the closed-form kinematics to use (built from the model if None); its
            regressor defines the keypoints compared with the input (the convention).
    """

    def __init__(self, model, kinematics: BioKinematics, config: PostOptConfig | None = None,
                 fast: FastKeypointKinematics | None = None) -> None:  # fmt: skip
        self.model = model
        self.kinematics = kinematics
        self.config = config or PostOptConfig()
        self.fast = fast if fast is not None else FastKeypointKinematics(model, kinematics)
        self._autodiff: dict[bool, _OneFrame] = {}
        self._lower = self.fast.lower
        self._upper = self.fast.upper

    def _point_kinematics(self, use_vertices: bool):
        if not use_vertices and self.fast.supports:
            return self.fast
        if use_vertices not in self._autodiff:
            self._autodiff[use_vertices] = _OneFrame(TorchPointKinematics(
                self.model, self.kinematics, with_vertices=use_vertices))  # fmt: skip
        return self._autodiff[use_vertices]

    def refine(
        self,
        target_joints: np.ndarray,
        joint_weights: np.ndarray,
        bio: np.ndarray,
        betas: np.ndarray,
        rotation: np.ndarray,
        transl: np.ndarray,
        *,
        fix_betas: bool,
        target_vertices: np.ndarray | None = None,
        previous_bio: np.ndarray | None = None,
        start_posed: Posed | None = None,
        image: ImageEvidence | None = None,
    ) -> Refined:
        """Refine a batch of IK results (each frame its own problem).

        Args:
            target_joints: (B, 21, 3) metres (missing keypoints may hold anything).
            joint_weights: (B, 21) in [0, 1]; 0 for missing keypoints.
            bio, betas, rotation, transl: the start, (B, 23) radians, (B, K), (B, 3, 3)
                global rotation about the wrist joint, (B, 3) metres.
            fix_betas: keep ``betas`` as given (known operator shape).
            target_vertices: (B, V, 3) estimated mesh, or None.
            previous_bio: (B, 23) previous frame's DoF for the temporal term, or None.
            start_posed: ``self.fast``'s posed hand at the start, if known (saves a pose).
            image: the estimator's 2D keypoints and the camera (the reprojection term), or
                None. With any 2D keypoint in the batch, its shape prior is
                ``image_shape_prior_weight`` (an image estimator's 3D is noisy).

        Returns:
            bio, betas, rotation, transl after the refinement (float64 copies) and, where
            known, ``self.fast``'s posed hand there (else None).
        """
        c = self.config
        args = [np.array(a, dtype=np.float64) for a in (bio, betas, rotation, transl)]
        if c.iterations == 0 or len(args[0]) == 0:
            return Refined(*args, start_posed)
        use_vertices = target_vertices is not None and c.vertex_weight > 0
        kinematics = self._point_kinematics(use_vertices)
        target = np.asarray(target_joints, np.float64)
        joint_w = np.asarray(joint_weights, np.float64)
        prev = None if previous_bio is None else np.asarray(previous_bio, np.float64)
        verts = np.asarray(target_vertices, np.float64) if use_vertices else None
        # Keypoints with 2D evidence come from an image estimator: its shape prior, also
        # when the reprojection term itself is off.
        from_image = image is not None and bool(np.asarray(image.weights).any())
        weights = c.objective_weights(from_image)
        if image is not None and (c.reprojection_weight == 0 or not from_image):
            image = None
        if kinematics is self.fast and c.method == "lm":
            rows = [slice(None)]  # batched: the frames are solved together, each its own LM
        else:
            rows = [slice(i, i + 1) for i in range(len(target))]
        out = [a.copy() for a in args]
        final_posed = None
        for r in rows:
            problem = PostOptProblem(
                kinematics=kinematics, weights=weights, target=target[r],
                joint_weights=joint_w[r], start=args[0][r], betas=args[1][r],
                fix_betas=fix_betas, lower=self._lower, upper=self._upper,
                previous=None if prev is None else prev[r],
                target_vertices=None if verts is None else verts[r],
                image_points=None if image is None else image.points[r],
                image_weights=None if image is None else image.weights[r],
                camera=None if image is None else image.camera[r],
                image_scale=None if image is None else image.scale[r],
            )  # fmt: skip
            x0 = problem.pack(args[0][r], args[1][r], args[2][r], args[3][r])
            if start_posed is not None and kinematics is self.fast and len(rows) == 1:
                problem.prime(x0, start_posed)
            if len(x0) == 1:
                x = self._solve(problem, x0[0])[None]  # one frame: the lean LM path
            else:
                x = self._solve(problem, x0)
            b, beta, rotation_r, t = problem.unpack(x)
            out[0][r], out[1][r], out[2][r], out[3][r] = b, beta, rotation_r, t
            if kinematics is self.fast and len(rows) == 1:
                final_posed = problem.posed_at(x)
        return Refined(*out, final_posed)

    def _solve(self, problem: PostOptProblem, x0: np.ndarray) -> np.ndarray:
        c = self.config
        if c.method == "adam":
            return _adam(problem, x0, c.iterations, c.adam_lr)
        result = least_squares(problem.residuals, x0,
                               LMConfig(max_iterations=c.iterations,
                                        cost_tolerance=_COST_TOLERANCE),
                               retract=problem.retract)  # fmt: skip
        return result.x


class _OnePosed(NamedTuple):
    points: np.ndarray  # (1, M, 3)
    args: tuple  # (betas, bio, rotation, transl) of the frame


class _OneFrame:
    """A one-frame kinematics (``TorchPointKinematics``) behind ``FastKeypointKinematics``'s
    batched ``pose`` / ``jacobians`` interface (batches of one)."""

    def __init__(self, kinematics: TorchPointKinematics) -> None:
        self.kinematics = kinematics

    def pose(self, betas, bio, rotation, transl) -> _OnePosed:
        if len(bio) != 1:
            raise ValueError(f"one frame at a time, got {len(bio)}")
        args = (betas[0], bio[0], rotation[0], transl[0])
        points, _ = self.kinematics.forward(*args, jacobians=False)
        return _OnePosed(points[None], args)

    def jacobian_into(self, posed: _OnePosed, out: np.ndarray,
                      shape_jacobian: bool = True) -> None:  # fmt: skip
        _, jac = self.kinematics.forward(*posed.args, jacobians=True)
        names = ["bio"] + (["betas"] if shape_jacobian else []) + ["rot", "transl"]
        out[0] = np.concatenate([jac[name] for name in names], axis=1)


def _adam(problem: PostOptProblem, x0: np.ndarray, iterations: int, lr: float,
          betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> np.ndarray:  # fmt: skip
    """First-order refinement of one frame (seed 002 runs 20 iterations), for comparison.

    Adam (``torch.optim.Adam``'s update) on [bio, betas, rotation vector, translation]
    with the gradient ``J^T r`` of the same objective; the rotation's gradient is moved
    from the objective's left perturbation to the rotation vector. ``x0``: (P,).
    """
    bio, shape, rotation, transl = problem.unpack(x0)
    params = np.concatenate([bio] + ([] if problem.fix_betas else [shape])
                            + [rotmat_to_rotvec(rotation), transl])  # fmt: skip
    nb = len(params) - 29
    shape = shape.reshape(-1)
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
        x = problem.pack(params[None, :23], (params[23 : 23 + nb] if nb else shape)[None],
                         rotation[None], params[None, 26 + nb :])[0]  # fmt: skip
    return x
