"""Torch residual functions as numpy ones for :func:`hand_ik.optim.least_squares`.

Offline fits (the 45 -> 23 DoF fit, operator shape calibration) write their residuals
with the torch hand model and take Jacobians from forward-mode autodiff; the solver
itself runs in numpy (float64).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.func import jacfwd, vmap

from hand_ik.optim import ResidualFn

#: (B, P) parameters and per-sample constants (each (B, ...)) -> (B, R) residuals.
TorchResidualFn = Callable[..., torch.Tensor]


def batched_jacobian(
    residual_fn: TorchResidualFn, x: torch.Tensor, consts: tuple[torch.Tensor, ...] = ()
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


def numpy_residuals(
    residual_fn: TorchResidualFn, consts: tuple[torch.Tensor, ...], dtype: torch.dtype
) -> ResidualFn:
    """Wrap a batched torch residual function as ``(x (B, P), jacobian) -> (r, J)`` in numpy.

    Args:
        residual_fn: ``(x (B, P), *consts) -> (B, R)``, samples independent,
            differentiable with torch.func.
        consts: per-sample constants (targets, fixed betas, ...), each (B, ...).
        dtype: the torch dtype the residuals are evaluated in (the model's).
    """

    def residuals(x: np.ndarray, jacobian: bool) -> tuple[np.ndarray, np.ndarray | None]:
        xt = torch.as_tensor(x, dtype=dtype)
        if jacobian:
            res, jac = batched_jacobian(residual_fn, xt, consts)
            return res.double().numpy(), jac.double().numpy()
        with torch.no_grad():
            return residual_fn(xt, *consts).double().numpy(), None

    return residuals
