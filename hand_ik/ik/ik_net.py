"""The IK nets of seed 002 Fig. 6A: bone features -> shape beta and joint rotations."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from hand_ik.ik.features import NUM_FEATURES


class IKNet(nn.Module):
    """Three Linear+BatchNorm+ReLU layers and two heads: beta (10) and rotations.

    ``num_rotation_params`` is 23 for the biomechanical net (our default) and 45 for
    the paper's baseline that regresses MANO's axis-angle pose.
    """

    def __init__(
        self, num_rotation_params: int = 23, num_betas: int = 10, hidden: int = 512,
        num_features: int = NUM_FEATURES,
    ) -> None:  # fmt: skip
        super().__init__()
        layers: list[nn.Module] = []
        width = num_features
        for _ in range(3):
            layers += [nn.Linear(width, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)]
            width = hidden
        self.trunk = nn.Sequential(*layers)
        self.beta_head = nn.Linear(hidden, num_betas)
        self.rotation_head = nn.Linear(hidden, num_rotation_params)
        self.num_rotation_params = num_rotation_params
        self.num_betas = num_betas

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 80) features -> betas (B, 10), rotation parameters (B, 23 or 45) in radians."""
        h = self.trunk(features)
        return self.beta_head(h), self.rotation_head(h)


def _np64(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy()


class NumpyIKNet:
    """An eval-mode :class:`IKNet` in numpy: BatchNorm folded into the linear layers.

    Per frame the net is three matrix-vector products; numpy does them without torch's
    dispatch overhead. Same outputs as the torch net (tested); the folding is done in
    float64, the products in ``dtype`` (float32 by default, like the trained net: half the
    memory traffic of float64 for the 2 MB of weights read per frame).

    Args:
        net: the torch net (its eval-mode statistics are used).
        dtype: of the folded weights and the products.
    """

    def __init__(self, net: IKNet, dtype=np.float32) -> None:
        self.layers: list[tuple[np.ndarray, np.ndarray]] = []
        mods = list(net.trunk)
        for linear, norm in zip(mods[0::3], mods[1::3], strict=True):
            weight, bias = _np64(linear.weight), _np64(linear.bias)
            scale = _np64(norm.weight) / np.sqrt(_np64(norm.running_var) + norm.eps)
            shift = _np64(norm.bias) - _np64(norm.running_mean) * scale
            # y = scale * (W x + b) + shift, stored transposed for x @ W.T.
            self.layers.append((np.ascontiguousarray((weight * scale[:, None]).T, dtype=dtype),
                                (bias * scale + shift).astype(dtype)))  # fmt: skip
        heads = (net.beta_head, net.rotation_head)
        self.head_weight = np.ascontiguousarray(
            np.concatenate([_np64(h.weight) for h in heads]).T, dtype=dtype)  # fmt: skip
        self.head_bias = np.concatenate([_np64(h.bias) for h in heads]).astype(dtype)
        self.dtype = dtype
        self.num_betas = net.num_betas
        self.num_rotation_params = net.num_rotation_params

    def __call__(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, 80) features -> betas (B, 10), rotation parameters (B, 23 or 45), radians.

        Outputs are float64 whatever ``dtype`` computed them.
        """
        h = features.astype(self.dtype)
        for weight, bias in self.layers:
            h = h @ weight
            h += bias
            np.maximum(h, 0.0, out=h)
        out = (h @ self.head_weight + self.head_bias).astype(np.float64)
        return out[:, : self.num_betas], out[:, self.num_betas :]
