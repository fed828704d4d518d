"""The crop handedness network (config and runtime: :mod:`hand_pose_ros.detection.handedness`)."""

from __future__ import annotations

import torch
from torch import nn

from hand_pose_ros.detection.handedness import HandednessConfig
from hand_pose_ros.detection.model import ConvBNAct


def left_from_factors(p_clockwise: torch.Tensor, p_palm: torch.Tensor) -> torch.Tensor:
    """P(left) = P(thumb side clockwise XOR palm factor), the factors independent."""
    return p_clockwise * (1.0 - p_palm) + (1.0 - p_clockwise) * p_palm


class HandednessNet(nn.Module):
    """(B, 3, S, S) RGB crop in [0, 1] -> (B, 2) logits of the two handedness factors in
    training mode, or ``(left_prob,)`` with ``left_prob`` (B, 1) in [0, 1] in eval mode /
    ONNX.

    The side of a hand is the XOR of two image properties (see
    :mod:`hand_pose_ros.detection.handedness`): factor 0, ``clockwise``, whether the
    thumb side of the palm lies clockwise of the finger direction in the image; factor 1,
    ``palm``, ``left XOR clockwise`` (whether the palm faces the camera, up to a constant).
    Each alone is learnable and mirror-consistent; their XOR is what a single logit could
    not learn (it stayed at chance).

    Five stride-2 stages of ConvBNAct (a second 3x3 conv from stride 8 on), then a linear
    layer on the flattened stride-32 map: which side thumb, fingers and palm lie on is what
    matters, so there is no global pooling.
    """

    def __init__(self, cfg: HandednessConfig) -> None:
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = []
        prev = 3
        for i, width in enumerate(cfg.widths):
            layers.append(ConvBNAct(prev, width, 3, 2))
            if i > 1:
                layers.append(ConvBNAct(width, width, 3))
            prev = width
        self.features = nn.Sequential(*layers)
        cells = (cfg.input_size // 32) ** 2
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Dropout(cfg.dropout), nn.Linear(prev * cells, 2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor]:
        logits = self.classifier(self.features(x))
        if self.training:
            return logits
        p = torch.sigmoid(logits)
        return (left_from_factors(p[:, :1], p[:, 1:2]),)
