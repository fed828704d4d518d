"""RealNVP flow and the residual log-likelihood (RLE) keypoint loss (training only).

Residual log-likelihood estimation (Li et al. 2021, "Human Pose Regression with
Residual Log-likelihood Estimation"), as used by seed 000: the network predicts a
keypoint position mu and a per-axis scale sigma; the scale-free error
``e = (mu - target) / box_size`` is modelled as ``e = sigma * bar`` where ``bar``
follows a learned density ``G`` (a small 2-D RealNVP flow) times a fixed Laplace
prior ``Q`` (the "residual" form). The flow is used by the loss only: it is not part
of the exported inference graph.
"""

from __future__ import annotations

import math

import torch
from torch import nn

_LOG_2PI = math.log(2.0 * math.pi)


def _mlp(hidden: int, tanh: bool) -> nn.Sequential:
    """2 -> hidden -> hidden -> 2 MLP with LeakyReLU (tanh output for the scale net)."""
    layers: list[nn.Module] = [
        nn.Linear(2, hidden),
        nn.LeakyReLU(),
        nn.Linear(hidden, hidden),
        nn.LeakyReLU(),
        nn.Linear(hidden, 2),
    ]
    if tanh:
        layers.append(nn.Tanh())
    return nn.Sequential(*layers)


class RealNVP2D(nn.Module):
    """2-D RealNVP flow (Dinh et al. 2017) with a standard normal base N(0, I2).

    ``layers`` pairs of affine coupling layers with alternating masks [1, 0], [0, 1].
    Coupling i (data -> latent direction): ``z = m * x + (1 - m) * (x * exp(s) + t)``
    with ``s = s_i(m * x)`` (tanh-bounded) and ``t = t_i(m * x)``. Inputs are unitless
    (normalised keypoint residuals in RLE).

    Args:
        hidden: width of the scale and translation MLPs.
        layers: number of coupling layer pairs (2 * layers couplings in total).
    """

    def __init__(self, hidden: int = 64, layers: int = 3) -> None:
        super().__init__()
        if hidden < 1 or layers < 1:
            raise ValueError(f"hidden, layers: must be >= 1, got {hidden}, {layers}")
        masks = torch.tensor([[1.0, 0.0], [0.0, 1.0]] * layers)
        self.register_buffer("masks", masks)
        self.s = nn.ModuleList(_mlp(hidden, tanh=True) for _ in range(2 * layers))
        self.t = nn.ModuleList(_mlp(hidden, tanh=False) for _ in range(2 * layers))
        self.reset_parameters()

    def reset_parameters(self, gain: float = 0.01) -> None:
        """Xavier-uniform weights with a small gain (near-identity flow, as in RLE)."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight, gain=gain)
                nn.init.zeros_(module.bias)

    def _st(self, i: int, x_masked: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        inv = 1.0 - self.masks[i]
        return self.s[i](x_masked) * inv, self.t[i](x_masked) * inv

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Data -> latent: (..., 2) x -> ((N, 2) z, (N,) log|det dz/dx|), N = x[..., 0].numel()."""
        z = x.reshape(-1, 2)
        log_det = z.new_zeros(z.shape[0])
        for i in range(len(self.s)):
            mask = self.masks[i]
            s, t = self._st(i, z * mask)
            z = z * mask + (1.0 - mask) * (z * torch.exp(s) + t)
            log_det = log_det + s.sum(dim=1)
        return z, log_det

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """Latent -> data: (..., 2) z -> (N, 2) x."""
        x = z.reshape(-1, 2)
        for i in reversed(range(len(self.s))):
            mask = self.masks[i]
            s, t = self._st(i, x * mask)
            x = x * mask + (1.0 - mask) * (x - t) * torch.exp(-s)
        return x

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """(..., 2) points -> (N,) log density: log N(z; 0, I2) + log|det dz/dx|."""
        z, log_det = self(x)
        return -0.5 * (z * z).sum(dim=1) - _LOG_2PI + log_det

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, 2) samples of the flow density."""
        z = torch.randn(n, 2, generator=generator, device=self.masks.device)
        return self.inverse(z)


def _zero_with_grad(*tensors: torch.Tensor, flow: nn.Module) -> torch.Tensor:
    """A 0 that keeps the autograd graph connected to the inputs and the flow."""
    total = sum(t.sum() for t in tensors)
    for p in flow.parameters():
        total = total + p.sum()
    return total * 0.0


def rle_loss(
    pred_xy: torch.Tensor,
    sigma: torch.Tensor,
    target_xy: torch.Tensor,
    scale: torch.Tensor,
    valid: torch.Tensor,
    flow: RealNVP2D,
) -> torch.Tensor:
    """Residual log-likelihood keypoint loss (RLE), mean over labelled keypoints.

    Per keypoint, with ``e = (pred - target) / scale`` (scale-free error) and
    ``bar = e / sigma`` (per axis x, y)::

        loss = sum_{x,y} [ log(sigma) - log G(bar) ]       # flow term
             + sum_{x,y} [ log(2 sigma) + |bar| ]          # Laplace Q, residual form

    where ``log G`` is the flow's 2-D log density (broadcast to both axes, exactly as
    the RLE reference implementation's ``nf_loss = log(sigma) - log_phi``). Only the
    flow term depends on the flow's parameters, so the flow is fitted to the
    distribution of ``bar`` by maximum likelihood while the keypoint head learns
    ``pred`` and ``sigma``.

    Args:
        pred_xy: (N, K, 2) predicted keypoints, pixels.
        sigma: (N, K, 2) predicted scales in (0, 1) (sigmoid), in units of ``scale``.
        target_xy: (N, K, 2) labelled keypoints, pixels.
        scale: (N,) normalising length per instance, pixels (the target box size).
        valid: (N, K) bool, True where the keypoint is labelled.
        flow: the :class:`RealNVP2D` density of normalised residuals.

    Returns:
        Scalar loss (0 with a gradient path if no keypoint is valid).
    """
    valid = valid.bool()
    if not bool(valid.any()):
        return _zero_with_grad(pred_xy, sigma, flow=flow)
    scale_k = scale.clamp_min(1e-6)[:, None, None].expand_as(pred_xy)
    err = (pred_xy[valid] - target_xy[valid]) / scale_k[valid]
    sig = sigma[valid].clamp_min(1e-9)
    bar = err / sig
    log_g = flow.log_prob(bar)[:, None]
    flow_term = torch.log(sig) - log_g
    q_term = torch.log(2.0 * sig) + bar.abs()
    return (flow_term + q_term).sum(dim=1).mean()


def keypoint_confidence_from_sigma(sigma: torch.Tensor) -> torch.Tensor:
    """(..., K, 2) RLE sigma in (0, 1) -> (..., K) confidence ``1 - mean(sigma)``."""
    return 1.0 - sigma.mean(dim=-1)
