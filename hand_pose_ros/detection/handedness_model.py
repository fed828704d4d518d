"""The crop handedness networks: the CNN and the probe on the mesh estimator's features
(config and runtime: :mod:`hand_pose_ros.detection.handedness`,
:mod:`hand_pose_ros.detection.handedness_probe`)."""

from __future__ import annotations

import torch
from torch import nn

from hand_pose_ros.detection.handedness_config import HandednessConfig
from hand_pose_ros.detection.model import ConvBNAct
from hand_pose_ros.estimation.prepost import IMAGENET_MEAN, IMAGENET_STD


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


def feature_count(net) -> int:
    """Length of ``phi`` for an :class:`~hand_pose_ros.estimation.i2l.I2LMeshNet`."""
    return (net.pose_backbone.out_channels + net.mesh_backbone.out_channels
            + net.cfg.num_joints + net.pose_backbone.early_channels)  # fmt: skip


def estimator_features(net, image: torch.Tensor) -> torch.Tensor:
    """``phi``: (B, 3, S, S) ImageNet-normalised images -> (B, D) pooled features of an
    :class:`~hand_pose_ros.estimation.i2l.I2LMeshNet` (pose, mesh, early stage, joint
    confidences)."""
    early = net.pose_backbone.forward_early(image)
    pose_feat = net.pose_backbone.forward_from(early, 4)
    joints, joint_mass = net.pose_net(pose_feat)
    mesh_feat = net.mesh_backbone.forward_from(net.pose2feat(early, joints), net.entry_stride)
    return torch.cat([pose_feat.mean((2, 3)), mesh_feat.mean((2, 3)), joint_mass.mean(-1),
                      early.mean((2, 3))], 1)  # fmt: skip


class HandednessProbe(nn.Module):
    """(B, 3, S, S) RGB crops in [0, 1] -> ``(P(left),)``, (B, 1), as :class:`HandednessNet`
    in eval mode: the mirror-antisymmetric linear probe of
    :mod:`hand_pose_ros.detection.handedness_probe` on the frozen mesh estimator ``net``.

    Args:
        cfg: a :class:`~hand_pose_ros.detection.handedness_probe.HandednessProbeConfig`
            (its ``features`` and ``input_size`` are set from ``net``).
        net: an :class:`~hand_pose_ros.estimation.i2l.I2LMeshNet`; frozen here.
    """

    def __init__(self, cfg, net) -> None:
        super().__init__()
        cfg.features = feature_count(net)
        cfg.input_size = net.cfg.input_size
        self.cfg = cfg
        self.net = net.eval().requires_grad_(False)
        self.register_buffer("mean", torch.from_numpy(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.from_numpy(IMAGENET_STD).view(1, 3, 1, 1))
        self.register_buffer("weight", torch.zeros(cfg.features))
        self.register_buffer("scale", torch.ones(cfg.features))

    def mirror_difference(self, image: torch.Tensor) -> torch.Tensor:
        """``d(x) = phi(x) - phi(mirror x)``, (B, D), unscaled."""
        x = (image - self.mean) / self.std
        both = estimator_features(self.net, torch.cat([x, torch.flip(x, dims=[3])], 0))
        n = image.shape[0]
        return both[:n] - both[n:]

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor]:
        z = (self.mirror_difference(image) / self.scale) @ self.weight
        return (torch.sigmoid(z)[:, None],)
