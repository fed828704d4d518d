"""Damped least squares (Levenberg-Marquardt) for small problems, in numpy.

The project's three least-squares problems -- the 45 -> 23 DoF fit (``bio_fit``), the
IK post-optimization and the retargeting vector optimizer -- all have a few dozen
parameters and at most a few thousand residuals, so forming ``J^T J`` and solving the
damped normal equations directly is cheap. One solver serves them all:

- the caller's ``residuals(x, jacobian)`` returns the residuals ``r`` and, when asked,
  ``J = d r / d step``, where a step moves ``x`` through ``retract`` (plain addition by
  default; a rotation can be updated on its manifold instead);
- each iteration solves ``(J^T J + lam D) step = -J^T r`` (``D``: the diagonal of
  ``J^T J``, Marquardt's scaling, or the identity), optionally capped and projected onto
  box bounds, and keeps the step only if the cost ``0.5 |r|^2`` does not rise; the
  damping ``lam`` falls after a kept step and rises after a refused one;
- problems can be batched: ``x (B, P)`` solves B independent problems at once
  (residuals ``(B, R)``, Jacobians ``(B, R, S)``), each with its own damping and
  stopping state.

The result says whether a problem converged and, if not, why it stopped.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.linalg.lapack import dposv

#: ``residuals(x, jacobian) -> (r, J or None)``: x (P,) -> r (R,), J (R, S); or batched,
#: x (B, P) -> r (B, R), J (B, R, S). S is the step size (P unless ``retract`` says otherwise).
ResidualFn = Callable[[np.ndarray, bool], tuple[np.ndarray, np.ndarray | None]]
#: ``retract(x, step) -> x'``: x (P,) or (B, P), step (S,) or (B, S).
RetractFn = Callable[[np.ndarray, np.ndarray], np.ndarray]

#: Why a problem stopped (``LMResult.reason``).
CONVERGED_COST = "cost_tolerance"
CONVERGED_STEP = "step_tolerance"
MAX_ITERATIONS = "max_iterations"
MAX_ACCEPTED = "max_accepted"
STALLED = "stalled"
_CONVERGED = (CONVERGED_COST, CONVERGED_STEP)

#: A Marquardt scale below this is raised to it, so a parameter the residuals do not
#: depend on (a zero Jacobian column) still gets a positive, finite damping term.
_MIN_SCALE = 1e-9


@dataclass(frozen=True)
class LMConfig:
    """Budget, damping schedule and stopping rules of :func:`least_squares`."""

    max_iterations: int | None = 10
    """Trial steps in all (each solves the damped system and evaluates the cost once);
    None: no limit (then ``max_accepted`` and ``max_rejections`` must be set)."""
    max_accepted: int | None = None
    """Accepted steps (one Jacobian each) at most; None: no limit."""
    max_rejections: int | None = None
    """Consecutive refused trial steps after which the problem counts as stalled."""
    damping: float = 1e-3
    """Initial damping ``lam``."""
    min_damping: float = 1e-9
    """Floor of ``lam`` (reached by decreases after accepted steps)."""
    max_damping: float = 1e9
    """Ceiling of ``lam``; a refused step at the ceiling means the problem stalled."""
    damping_decrease: float = 0.3
    """Factor on ``lam`` after an accepted step."""
    damping_increase: float = 10.0
    """Factor on ``lam`` after a refused step."""
    scaling: str = "marquardt"
    """``marquardt``: damp by ``lam * diag(J^T J)``; ``identity``: by ``lam * I``."""
    cost_tolerance: float = 1e-12
    """Converged once an accepted step lowers the cost by less than this."""
    step_tolerance: float = 0.0
    """Converged once an accepted step moves no parameter by this much or more."""
    max_step: float = np.inf
    """Trust region: a step is scaled so that no component exceeds this."""

    def __post_init__(self) -> None:
        for name in ("max_iterations", "max_accepted", "max_rejections"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0 or None, got {value}")
        if self.max_iterations is None and (self.max_accepted is None
                                            or self.max_rejections is None):  # fmt: skip
            raise ValueError("max_iterations=None needs max_accepted and max_rejections")
        if not 0 <= self.min_damping <= self.damping <= self.max_damping:
            raise ValueError(
                f"damping must satisfy 0 <= min_damping <= damping <= max_damping, got "
                f"{self.min_damping}, {self.damping}, {self.max_damping}"
            )
        if not 0 < self.damping_decrease < 1:
            raise ValueError(f"damping_decrease must be in (0, 1), got {self.damping_decrease}")
        if not self.damping_increase > 1:
            raise ValueError(f"damping_increase must be > 1, got {self.damping_increase}")
        if self.scaling not in ("marquardt", "identity"):
            raise ValueError(f"scaling must be 'marquardt' or 'identity', got {self.scaling!r}")
        for name in ("cost_tolerance", "step_tolerance"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.max_step > 0:
            raise ValueError(f"max_step must be > 0, got {self.max_step}")


@dataclass
class LMResult:
    """Solution and diagnostics of :func:`least_squares`.

    Fields are per problem: scalars (0-d arrays) for one problem, (B,) arrays batched.
    """

    x: np.ndarray
    """(P,) or (B, P): the best parameters found (the cost never rises)."""
    cost: np.ndarray
    """``0.5 * |r(x)|^2``."""
    iterations: np.ndarray
    """Trial steps taken."""
    accepted: np.ndarray
    """Trial steps kept (they did not raise the cost)."""
    converged: np.ndarray
    """True when a tolerance stopped the problem (not the budget, not a stall)."""
    reason: np.ndarray
    """``cost_tolerance`` / ``step_tolerance`` (converged), ``max_iterations`` /
    ``max_accepted`` (budget spent), ``stalled`` (no step lowers the cost)."""


def least_squares(
    residuals: ResidualFn,
    x0: np.ndarray,
    config: LMConfig | None = None,
    *,
    retract: RetractFn | None = None,
    lower: np.ndarray | None = None,
    upper: np.ndarray | None = None,
) -> LMResult:
    """Minimise ``0.5 * |r(x)|^2`` with Levenberg-Marquardt (see the module docstring).

    Args:
        residuals: ``(x, jacobian) -> (r, J)``; J only when ``jacobian`` is True.
        x0: (P,) one problem or (B, P) independent problems; the start.
        config: budget, damping and tolerances (default :class:`LMConfig`).
        retract: ``(x, step) -> x'`` (default ``x + step``).
        lower, upper: box bounds on x (broadcast to x0), or None; a step pushing a
            parameter at a bound outward is re-solved with that parameter held
            (projected Newton), then the candidate is clipped. Only with plain addition.

    Returns:
        An :class:`LMResult` with the shape of ``x0``'s batch.
    """
    cfg = config or LMConfig()
    single = np.ndim(x0) == 1
    x = np.array(x0, dtype=float, copy=True).reshape(1, -1) if single else np.array(
        x0, dtype=float, copy=True)  # fmt: skip
    bounded = lower is not None or upper is not None
    if bounded and retract is not None:
        raise ValueError("box bounds need plain addition (retract=None)")
    lo = np.broadcast_to(-np.inf if lower is None else lower, x.shape)
    hi = np.broadcast_to(np.inf if upper is None else upper, x.shape)
    if bounded:
        x = np.clip(x, lo, hi)

    def evaluate(at: np.ndarray, jacobian: bool) -> tuple[np.ndarray, np.ndarray | None]:
        if not single:
            return residuals(at, jacobian)
        r, j = residuals(at[0], jacobian)
        return r[None], None if j is None else j[None]

    states = [_Problem(cfg) for _ in range(len(x))]
    res, jac = evaluate(x, True)
    for state, r in zip(states, res, strict=True):
        state.cost = 0.5 * float(r @ r)
    active = [i for i, state in enumerate(states) if state.active]
    while active:
        lam = np.array([state.lam for state in states])
        step = _damped_step(jac, res, lam, cfg, x if bounded else None, lo, hi)
        if retract is None:
            candidate = x + step
            if bounded:
                candidate = np.clip(candidate, lo, hi)
            moved = np.abs(candidate - x).max(axis=1, initial=0.0)
        else:
            candidate = retract(x[0], step[0])[None] if single else retract(x, step)
            moved = np.abs(step).max(axis=1, initial=0.0)
        res_c, _ = evaluate(candidate, False)
        cost_c = 0.5 * np.einsum("br,br->b", res_c, res_c)
        better = [i for i in active if states[i].update(float(cost_c[i]), float(moved[i]))]
        active = [i for i in active if states[i].active]
        if better:
            x[better] = candidate[better]
            if any(states[i].active for i in better):
                # Re-linearise where a step was kept (others' x, hence r and J, are unchanged).
                res_n, jac_n = evaluate(x, True)
                res[better], jac[better] = res_n[better], jac_n[better]
    out = LMResult(
        x=x,
        cost=np.array([state.cost for state in states]),
        iterations=np.array([state.iterations for state in states]),
        accepted=np.array([state.accepted for state in states]),
        converged=np.array([state.reason in _CONVERGED for state in states]),
        reason=np.array([state.reason for state in states], dtype=object),
    )
    if single:
        out.x = out.x[0]
        for name in ("cost", "iterations", "accepted", "converged", "reason"):
            setattr(out, name, getattr(out, name)[0])
    return out


class _Problem:
    """Damping, counters and stopping state of one problem of a :func:`least_squares` run."""

    def __init__(self, cfg: LMConfig) -> None:
        self.cfg = cfg
        self.lam = cfg.damping
        self.cost = 0.0
        self.iterations = 0
        self.accepted = 0
        self.rejections = 0  # consecutive
        self.reason = MAX_ITERATIONS if cfg.max_iterations == 0 else MAX_ACCEPTED
        self.active = cfg.max_iterations != 0 and cfg.max_accepted != 0

    def update(self, cost_c: float, moved: float) -> bool:
        """Accept or refuse a candidate of cost ``cost_c``; True when accepted."""
        cfg = self.cfg
        self.iterations += 1
        # A NaN or infinite cost (a degenerate candidate) counts as no improvement; an
        # equal cost is kept (a zero step at a stationary point then converges).
        if math.isfinite(cost_c) and cost_c <= self.cost:
            improvement = self.cost - cost_c
            self.cost = cost_c
            self.accepted += 1
            self.rejections = 0
            self.lam = max(self.lam * cfg.damping_decrease, cfg.min_damping)
            if improvement < cfg.cost_tolerance:
                self._stop(CONVERGED_COST)
            elif moved < cfg.step_tolerance:
                self._stop(CONVERGED_STEP)
            elif cfg.max_accepted is not None and self.accepted >= cfg.max_accepted:
                self._stop(MAX_ACCEPTED)
            accepted = True
        else:
            self.rejections += 1
            self.lam = min(self.lam * cfg.damping_increase, cfg.max_damping)
            if self.lam >= cfg.max_damping or (cfg.max_rejections is not None
                                                and self.rejections >= cfg.max_rejections):
                self._stop(STALLED)
            accepted = False
        if self.active and cfg.max_iterations is not None and self.iterations >= cfg.max_iterations:
            self._stop(MAX_ITERATIONS)
        return accepted

    def _stop(self, reason: str) -> None:
        self.reason, self.active = reason, False


def _damped_step(jac: np.ndarray, res: np.ndarray, lam: np.ndarray, cfg: LMConfig,
                 x: np.ndarray | None, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:  # fmt: skip
    """(B, S) Levenberg-Marquardt steps, projected at the bounds and capped (see module)."""
    jt = jac.transpose(0, 2, 1)
    hess = jt @ jac
    grad = (jt @ res[..., None])[..., 0]
    diag = np.einsum("bii->bi", hess)
    scale = np.maximum(diag, _MIN_SCALE) if cfg.scaling == "marquardt" else np.ones_like(diag)
    idx = np.arange(hess.shape[1])
    hess[:, idx, idx] += lam[:, None] * scale
    step = -_solve(hess, grad)
    if x is not None:
        # Projected Newton: parameters at a bound that the step pushes outward are held
        # there and the step is re-solved on the others (a decoupled unit block for the
        # held ones leaves the others' system exactly as if they were removed).
        pinned = ((x <= lo) & (step < 0)) | ((x >= hi) & (step > 0))
        if pinned.any():
            keep = ~pinned
            masked = hess * (keep[:, :, None] & keep[:, None, :])
            masked[:, idx, idx] = np.where(pinned, 1.0, masked[:, idx, idx])
            step = -_solve(masked, np.where(keep, grad, 0.0))
    largest = np.abs(step).max(axis=1, initial=0.0)
    over = largest > cfg.max_step
    if over.any():
        step[over] *= (cfg.max_step / largest[over])[:, None]
    return step


def _solve(matrix: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """(B, S, S) @ x = (B, S): damped normal equations (symmetric positive definite)."""
    if len(matrix) == 1:
        # One problem: LAPACK's Cholesky solver directly (numpy's batched solve costs
        # tens of microseconds of overhead at this size, per iteration, per frame).
        _, x, info = dposv(matrix[0], rhs[0])
        if info == 0:
            return x[None]
    try:
        return np.linalg.solve(matrix, rhs[..., None])[..., 0]
    except np.linalg.LinAlgError:
        # Exactly singular even with damping (e.g. a zero scale under identity damping
        # with lam underflowing): the least-norm solution instead of an exception.
        return np.stack([np.linalg.lstsq(m, b, rcond=None)[0] for m, b in zip(matrix, rhs,
                                                                                strict=True)])
