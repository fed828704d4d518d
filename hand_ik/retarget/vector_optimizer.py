"""Task-space vector optimizer: Levenberg-Marquardt on robot free joints with box limits.

Minimises, over the free joints ``q`` (mimic joints follow, limits respected)::

    sum_k w_k |v_k(q) - t_k|^2 / s^2 + a |q - q_map|^2 + b |q - q_prev|^2

where ``v_k`` are robot link-to-link (or palm-point-to-link) vectors in the
palm frame, ``t_k`` the scaled human vectors, ``s`` the residual scale. Each
step solves the regularised normal equations with analytic pinocchio
Jacobians (``hand_ik.optim.least_squares``: the damping grows until the step
lowers the cost, so the solution never oscillates between frames); joints
pinned at a bound by the step are removed and the step re-solved (a projected
Newton step), the step is capped (trust region), then clipped to the box. Warm
started from the previous frame, a few steps per frame suffice. When no step
lowers the cost the result says so (``reason == "stalled"``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hand_ik.optim import LMConfig, LMResult, least_squares
from hand_ik.retarget.config import OptimizerConfig
from hand_ik.robot import RobotModel

#: Origin marker for vectors that start at the palm point (the robot's "wrist").
PALM = "__palm__"
#: Refused trial steps in a row (each with 10x the damping) before a frame counts as stalled.
_MAX_REJECTIONS = 4


@dataclass(frozen=True)
class TaskVector:
    """One matched vector: robot ``origin`` -> ``task`` link, weight."""

    origin: str
    task: str
    weight: float


class VectorOptimizer:
    """Solve for free joint positions matching task vectors (see module docstring).

    Args:
        robot: the robot model.
        palm_link: link whose frame the vectors are expressed in (not moved by free joints).
        palm_offset: (3,) palm-frame point that plays the human wrist, metres.
        vectors: the task vectors.
        config: weights and iteration budget.
    """

    def __init__(
        self,
        robot: RobotModel,
        palm_link: str,
        palm_offset: np.ndarray,
        vectors: Sequence[TaskVector],
        config: OptimizerConfig,
    ):
        if robot.frame_moved_by_free_joints(palm_link):
            raise ValueError(
                f"palm_link {palm_link!r} is moved by free joints; lock them (locked_joints)"
            )
        self.robot, self.config, self.vectors = robot, config, tuple(vectors)
        links = sorted({v.task for v in vectors} | {v.origin for v in vectors} - {PALM})
        self._frame_ids = [robot.frame_id(name) for name in links]
        slot = {name: i for i, name in enumerate(links)}
        # Palm pose is constant: read it once at the zero of the free joints.
        robot.forward_kinematics(robot.full_q(np.clip(0.0, robot.free_lower, robot.free_upper)))
        rot, pos = robot.frame_pose(robot.frame_id(palm_link))
        self._palm_rot_t = rot.T
        self._palm_point_root = pos + rot @ np.asarray(palm_offset, dtype=float)
        # Vector k = sum_j sel[k, j] * p_j (links) - [origin is PALM] * palm point, in palm axes.
        n = len(vectors)
        self._select = np.zeros((n, len(links)))
        self._from_palm = np.zeros(n)
        for k, v in enumerate(vectors):
            self._select[k, slot[v.task]] += 1.0
            if v.origin == PALM:
                self._from_palm[k] = 1.0
            else:
                self._select[k, slot[v.origin]] -= 1.0
        self.weights = np.array([v.weight for v in vectors], dtype=float)
        # Stacked link positions (3L,) -> task vectors in palm axes (3K,): kron(select, R_palm^T).
        self._link_to_vec = np.kron(self._select, self._palm_rot_t)
        self._palm_term = (
            self._from_palm[:, None] * (self._palm_rot_t @ self._palm_point_root)
        ).reshape(-1)
        self._sqrt_w = np.sqrt(self.weights) / config.residual_scale_m
        self._pull_jacobians: dict[tuple[float, ...], np.ndarray] = {}
        self._lm_configs: dict[tuple, LMConfig] = {}

    def vectors_at(
        self, q_free: np.ndarray, jacobians: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Robot task vectors (K, 3) in palm axes, metres, and optionally d/dq (K, 3, n_free)."""
        robot = self.robot
        robot.forward_kinematics(
            robot.full_q(q_free), jacobians=jacobians, frame_ids=self._frame_ids
        )
        pos = np.concatenate([robot.frame_position(f) for f in self._frame_ids])  # (3L,) root frame
        vecs = (self._link_to_vec @ pos - self._palm_term).reshape(-1, 3)
        if not jacobians:
            return vecs, None
        jac_links = np.concatenate(
            [robot.frame_position_jacobian(f) for f in self._frame_ids]
        )  # (3L, nq)
        jac = (self._link_to_vec @ jac_links @ robot.mimic_matrix).reshape(len(vecs), 3, -1)
        return vecs, jac

    def _sqrt_weights(self, weights: np.ndarray | None) -> np.ndarray:
        """(K,) square roots of the vector weights over the residual scale."""
        if weights is None:
            return self._sqrt_w
        if np.shape(weights) != self.weights.shape:
            raise ValueError(f"weights must have shape {self.weights.shape}, got {weights}")
        # Negative weights would give NaN here: callers pass non-negative ones (per frame,
        # so the check is left to them: ``Retargeter.task`` scales the config's weights).
        return np.sqrt(weights) / self.config.residual_scale_m

    def task_cost(
        self, q_free: np.ndarray, targets: np.ndarray, weights: np.ndarray | None = None
    ) -> float:
        """Weighted squared vector residual (without regularisers) at ``q_free``."""
        vecs, _ = self.vectors_at(q_free)
        res = ((vecs - targets) * self._sqrt_weights(weights)[:, None]).reshape(-1)
        return float(res @ res)

    def residuals(
        self,
        q_free: np.ndarray,
        targets: np.ndarray,
        sqrt_w: np.ndarray,
        q_prev: np.ndarray,
        q_map: np.ndarray | None,
        jacobian: bool,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Residuals of the module docstring's cost (its square roots) and d/dq.

        Returns:
            (3K + n [+ n],) residuals: the scaled vector errors, then the pulls toward
            ``q_prev`` and ``q_map``; with ``jacobian``, their (R, n_free) Jacobian.
        """
        vecs, jac = self.vectors_at(q_free, jacobians=jacobian)
        cfg = self.config
        parts = [((vecs - targets) * sqrt_w[:, None]).reshape(-1),
                 math.sqrt(cfg.prev_weight) * (q_free - q_prev)]  # fmt: skip
        if q_map is not None:
            parts.append(math.sqrt(cfg.map_weight) * (q_free - q_map))
        res = np.concatenate(parts)
        if not jacobian:
            return res, None
        n = len(q_free)
        pulls = self._pulls(q_map is not None)
        return res, np.concatenate([(jac * sqrt_w[:, None, None]).reshape(-1, n),
                                    pulls.reshape(-1, n)])  # fmt: skip

    def _pulls(self, with_map: bool) -> np.ndarray:
        """(1 or 2, n, n) Jacobians of the pulls toward q_prev (and q_map): sqrt(w) I."""
        cfg, n = self.config, self.robot.num_free
        weights = (cfg.prev_weight, cfg.map_weight) if with_map else (cfg.prev_weight,)
        if weights not in self._pull_jacobians:
            self._pull_jacobians[weights] = np.stack([np.sqrt(w) * np.eye(n) for w in weights])
        return self._pull_jacobians[weights]

    def solve(
        self,
        targets: np.ndarray,
        q_init: np.ndarray,
        q_prev: np.ndarray,
        q_map: np.ndarray | None,
        iterations: int | None = None,
        weights: np.ndarray | None = None,
    ) -> LMResult:
        """Levenberg-Marquardt steps from ``q_init`` (see the module docstring).

        Args:
            targets: (K, 3) target vectors in palm axes, metres (finite).
            q_init: (n_free,) start (warm start: the previous solution).
            q_prev: (n_free,) previous solution (smoothness term).
            q_map: (n_free,) joint-mapping result, or None to skip that term.
            iterations: accepted-step budget (default ``config.iterations``).
            weights: (K,) this frame's vector weights (default: the vectors' own).

        Returns:
            The solver's result: ``x`` (n_free,) joint positions within
            ``robot.free_lower/upper``; ``reason == "stalled"`` when no step lowered the
            cost (x is then the best point found, often the start).
        """
        sqrt_w = self._sqrt_weights(weights)

        def residuals(q: np.ndarray, jacobian: bool) -> tuple[np.ndarray, np.ndarray | None]:
            return self.residuals(q, targets, sqrt_w, q_prev, q_map, jacobian)

        lm = self._lm_config(iterations or self.config.iterations)
        return least_squares(residuals, q_init, lm, lower=self.robot.free_lower,
                             upper=self.robot.free_upper)  # fmt: skip

    def _lm_config(self, iterations: int) -> LMConfig:
        """The solver settings for an accepted-step budget (cached per budget and settings)."""
        cfg = self.config
        key = (iterations, cfg.damping, cfg.tolerance_rad, cfg.max_step_rad)
        if key not in self._lm_configs:
            self._lm_configs[key] = LMConfig(
                max_iterations=None, max_accepted=iterations, max_rejections=_MAX_REJECTIONS,
                damping=cfg.damping, min_damping=cfg.damping, max_damping=np.inf,
                damping_decrease=1.0 / 3.0, scaling="identity", cost_tolerance=0.0,
                step_tolerance=cfg.tolerance_rad, max_step=cfg.max_step_rad,
            )  # fmt: skip
        return self._lm_configs[key]
