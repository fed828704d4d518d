"""The IK nets of seed 002 Fig. 6A: bone features -> shape beta and joint rotations."""

from __future__ import annotations

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
