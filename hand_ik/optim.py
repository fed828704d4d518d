"""Batched damped Gauss-Newton (Levenberg-Marquardt) for small parameter vectors.

Used by the 45 -> 23 DoF fit and by the IK post-optimization: each sample has a few
dozen parameters and a few hundred residuals, so forming J^T J per sample and solving
the normal equations is cheap; Jacobians come from torch forward-mode autodiff.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.func import jacfwd, vmap

#: (B, P) parameters and per-sample constants (each (B, ...)) -> (B, R) residuals.
ResidualFn = Callable[..., torch.Tensor]


@dataclass
class LMResult:
    """Solution and diagnostics of :func:`levenberg_marquardt` (batch first)."""

    x: torch.Tensor  # (B, P)
    cost: torch.Tensor  # (B,) 0.5 * sum of squared residuals at x
    iterations: int


def batched_jacobian(
    residual_fn: ResidualFn, x: torch.Tensor, consts: tuple[torch.Tensor, ...] = ()
) -> tuple[torch.Tensor, torch.Tensor]:
    """Residuals (B, R) and their Jacobians (B, R, P) of a per-sample residual function.

    ``residual_fn(x, *consts)`` maps (B, P) parameters and per-sample constants to
    (B, R) residuals, samples independent of each other.
    """

    def single(xi: torch.Tensor, *ci: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r = residual_fn(xi[None], *(c[None] for c in ci))[0]
        return r, r

    jac, res = vmap(jacfwd(single, has_aux=True))(x, *consts)
    return res, jac


def levenberg_marquardt(
    residual_fn: ResidualFn,
    x0: torch.Tensor,
    consts: tuple[torch.Tensor, ...] = (),
    *,
    iterations: int = 10,
    damping: float = 1e-3,
    tolerance: float = 1e-12,
) -> LMResult:
    """Minimise 0.5 * ||r(x)||^2 per sample with Levenberg-Marquardt.

    Args:
        residual_fn: ``(x (B, P), *consts) -> (B, R)``, samples independent,
            differentiable with torch.func.
        x0: (B, P) initial parameters.
        consts: per-sample constants (targets, fixed betas, ...), each (B, ...).
        iterations: maximum number of steps.
        damping: initial lambda (scaled by the diagonal of J^T J, Marquardt's form).
        tolerance: stop when every sample's cost decrease is below this.

    Returns:
        The per-sample best parameters seen and their cost.
    """
    x = x0.detach().clone()
    lam = torch.full((x.shape[0],), damping, dtype=x.dtype, device=x.device)
    res, jac = batched_jacobian(residual_fn, x, consts)
    cost = 0.5 * (res**2).sum(-1)
    active = torch.ones_like(cost, dtype=torch.bool)
    done = 0
    for done in range(1, iterations + 1):
        jtj = jac.transpose(1, 2) @ jac
        jtr = (jac.transpose(1, 2) @ res[..., None])[..., 0]
        diag = torch.diagonal(jtj, dim1=1, dim2=2).clamp_min(1e-9)
        step = torch.linalg.solve(jtj + lam[:, None, None] * torch.diag_embed(diag), -jtr)
        candidate = x + step
        cost_c = 0.5 * (residual_fn(candidate, *consts) ** 2).sum(-1)
        # A NaN cost (e.g. from a degenerate candidate) counts as no improvement.
        better = torch.isfinite(cost_c) & (cost_c < cost)
        improvement = torch.where(better, cost - cost_c, torch.zeros_like(cost))
        x = torch.where(better[:, None], candidate, x)
        cost = torch.where(better, cost_c, cost)
        lam = torch.where(better, lam * 0.3, lam * 10.0).clamp(1e-9, 1e9)
        # A sample has converged when a successful step gained less than the tolerance, or
        # when no step helps even with the largest damping.
        active = active & ~((better & (improvement < tolerance)) | (lam >= 1e9))
        if not bool(active.any()):
            break
        if done < iterations and bool(better.any()):
            res, jac = batched_jacobian(residual_fn, x, consts)
    return LMResult(x=x, cost=cost, iterations=done)
