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

    Fields are per problem: scalars for one problem, (B,) arrays batched.
    """

    x: np.ndarray
    """(P,) or (B, P): the best parameters found (the cost never rises)."""
    cost: float | np.ndarray
    """``0.5 * |r(x)|^2``."""
    iterations: int | np.ndarray
    """Trial steps taken."""
    accepted: int | np.ndarray
    """Trial steps kept (they did not raise the cost)."""
    converged: bool | np.ndarray
    """True when a tolerance stopped the problem (not the budget, not a stall)."""
    reason: str | np.ndarray
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
    x = np.array(x0, dtype=float)  # a copy
    if x.ndim not in (1, 2):
        raise ValueError(f"x0 must be (P,) or (B, P), got shape {x.shape}")
    bounds = None
    if lower is not None or upper is not None:
        if retract is not None:
            raise ValueError("box bounds need plain addition (retract=None)")
        lo = np.asarray(-np.inf if lower is None else lower, dtype=float)
        hi = np.asarray(np.inf if upper is None else upper, dtype=float)
        bounds = (lo, hi)
        x = np.minimum(np.maximum(x, lo), hi)  # (np.clip has more call overhead)
    if x.ndim == 1:
        return _solve_one(residuals, x, cfg, retract, bounds)
    return _solve_batch(residuals, x, cfg, retract, bounds)


def _solve_one(residuals: ResidualFn, x: np.ndarray, cfg: LMConfig, retract: RetractFn | None,
               bounds: tuple[np.ndarray, np.ndarray] | None) -> LMResult:  # fmt: skip
    """:func:`least_squares` for one problem (the per-frame case: lean bookkeeping)."""
    state = _Problem(cfg)
    res, jac = residuals(x, True)
    state.cost = 0.5 * float(res @ res)
    while state.active:
        step = _damped_step(jac, res, state.lam, cfg, None if bounds is None else (x, *bounds))
        candidate, moved = _candidate(x, step, retract, bounds)
        res_c, _ = residuals(candidate, False)
        if state.update(0.5 * float(res_c @ res_c), float(moved)):
            x = candidate
            if state.active:
                res, jac = residuals(x, True)
    return LMResult(x=x, cost=state.cost, iterations=state.iterations, accepted=state.accepted,
                    converged=state.reason in _CONVERGED, reason=state.reason)  # fmt: skip


def _solve_batch(residuals: ResidualFn, x: np.ndarray, cfg: LMConfig, retract: RetractFn | None,
                 bounds: tuple[np.ndarray, np.ndarray] | None) -> LMResult:  # fmt: skip
    """:func:`least_squares` for B independent problems evaluated together (x (B, P))."""
    states = [_Problem(cfg) for _ in range(len(x))]
    res, jac = residuals(x, True)
    for state, r in zip(states, res, strict=True):
        state.cost = 0.5 * float(r @ r)
    active = [i for i, state in enumerate(states) if state.active]
    while active:
        step = np.zeros((len(x), jac.shape[2]))
        for i in active:
            step[i] = _damped_step(jac[i], res[i], states[i].lam, cfg,
                                   None if bounds is None else _bounds_of(x, bounds, i))
        candidate, moved = _candidate(x, step, retract, bounds)
        res_c, _ = residuals(candidate, False)
        better = [i for i in active
                  if states[i].update(0.5 * float(res_c[i] @ res_c[i]), float(moved[i]))]
        active = [i for i in active if states[i].active]
        if better:
            x[better] = candidate[better]
            if any(states[i].active for i in better):
                # Re-linearise where a step was kept (others' x, hence r and J, are unchanged).
                res_n, jac_n = residuals(x, True)
                res[better], jac[better] = res_n[better], jac_n[better]
    return LMResult(
        x=x,
        cost=np.array([state.cost for state in states]),
        iterations=np.array([state.iterations for state in states]),
        accepted=np.array([state.accepted for state in states]),
        converged=np.array([state.reason in _CONVERGED for state in states]),
        reason=np.array([state.reason for state in states], dtype=object),
    )


def _bounds_of(x: np.ndarray, bounds: tuple[np.ndarray, np.ndarray], i: int) -> tuple:
    """Problem i's (x, lower, upper), bounds given per problem (B, P) or shared (P,)."""
    lo, hi = bounds
    return x[i], lo if lo.ndim < 2 else lo[i], hi if hi.ndim < 2 else hi[i]


def _candidate(
    x: np.ndarray,
    step: np.ndarray,
    retract: RetractFn | None,
    bounds: tuple[np.ndarray, np.ndarray] | None,
) -> tuple[np.ndarray, np.ndarray]:
    """The trial point(s) and how far each problem moves (largest component; last axis)."""
    if retract is not None:
        return retract(x, step), np.abs(step).max(axis=-1, initial=0.0)
    candidate = x + step if bounds is None else np.minimum(np.maximum(x + step, bounds[0]),
                                                           bounds[1])  # fmt: skip
    return candidate, np.abs(candidate - x).max(axis=-1, initial=0.0)


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


def _damped_step(
    jac: np.ndarray,
    res: np.ndarray,
    lam: float,
    cfg: LMConfig,
    bounds: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
) -> np.ndarray:
    """One problem's Levenberg-Marquardt step (S,), projected at the bounds and capped.

    Args:
        jac: (R, S); res: (R,); lam: the damping.
        bounds: (x, lower, upper), each (S,), or None.
    """
    hess = jac.T @ jac
    grad = jac.T @ res
    size = len(grad)
    diagonal = hess.reshape(-1)[:: size + 1]  # a writable view (hess is a fresh C array)
    if cfg.scaling == "marquardt":
        diagonal += lam * np.maximum(diagonal, _MIN_SCALE)
    else:
        diagonal += lam
    step = -_solve(hess, grad)
    if bounds is not None:
        # Projected Newton: parameters at a bound that the step pushes outward are held
        # there and the step is re-solved on the others.
        x, lo, hi = bounds
        pinned = ((x <= lo) & (step < 0)) | ((x >= hi) & (step > 0))
        if pinned.any():
            free = ~pinned
            step = np.zeros(size)
            if free.any():
                step[free] = -_solve(hess[free][:, free], grad[free])
    if cfg.max_step < np.inf:
        largest = float(np.abs(step).max(initial=0.0))
        if largest > cfg.max_step:
            step *= cfg.max_step / largest
    return step


def _solve(matrix: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """``matrix @ x = rhs`` for the damped normal equations (symmetric positive definite)."""
    # LAPACK's Cholesky solver directly: numpy's solve costs tens of microseconds of
    # overhead at this size, per iteration, per frame.
    _, x, info = dposv(matrix, rhs)
    if info == 0:
        return x
    # Not positive definite in floating point (e.g. zero damping on a rank-deficient
    # Jacobian): the least-norm solution instead of an exception or NaN.
    return np.linalg.lstsq(matrix, rhs, rcond=None)[0]
