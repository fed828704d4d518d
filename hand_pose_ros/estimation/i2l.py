"""I2L MeshNet family (Moon & Lee 2020; seed 002 §3.2): PoseNet -> heatmap aggregation -> MeshNet.

Module names follow the original code (``pose_backbone``, ``pose_net``, ``pose2feat``,
``mesh_backbone``, ``mesh_net``) and give the five parts of seed 002 Table 1.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from hand_pose_ros.estimation._layers import conv1d_bn_relu, conv_bn_act, upsample_block
from hand_pose_ros.estimation.backbones import build_backbone
from hand_pose_ros.estimation.config import EstimatorConfig
from hand_pose_ros.estimation.lixel import gaussian_heatmap_3d, soft_argmax_1d


class LixelOutput(NamedTuple):
    """Network output, lixel units (bins in [0, D-1]; x, y over the model input, z root-relative).

    Attributes:
        joints: (B, J, 3) PoseNet joints (lixel x, y, z).
        vertices: (B, V, 3) MeshNet vertices (lixel x, y, z).
        joint_confidence: (B, J) mean over x, y, z of the softmax mass near the peak, [0, 1].
    """

    joints: torch.Tensor
    vertices: torch.Tensor
    joint_confidence: torch.Tensor


class LixelHead(nn.Module):
    """Decoder + 1D lixel heads (I2L MeshNet ``PoseNet`` / ``MeshNet`` minus the backbone).

    x and y heatmaps come from the decoded 2D features averaged over y and x; z from
    the globally pooled backbone features through ``conv_z_1`` (C -> z_channels * D) and
    ``conv_z_2`` (z_channels -> points).
    """

    def __init__(self, in_ch: int, points: int, cfg: EstimatorConfig) -> None:
        super().__init__()
        ch, kind = cfg.decoder_channels, cfg.decoder_block
        self.bins, self.z_channels, self.radius = (
            cfg.bins,
            cfg.z_channels,
            cfg.confidence_radius_bins,
        )
        self.deconv = nn.Sequential(
            upsample_block(kind, in_ch, ch, cfg.se_reduction),
            upsample_block(kind, ch, ch, cfg.se_reduction),
            upsample_block(kind, ch, ch, cfg.se_reduction),
        )
        self.conv_x = nn.Conv1d(ch, points, 1)
        self.conv_y = nn.Conv1d(ch, points, 1)
        self.conv_z_1 = conv1d_bn_relu(in_ch, cfg.z_channels * cfg.bins)
        self.conv_z_2 = nn.Conv1d(cfg.z_channels, points, 1)

    def forward(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, h, w) backbone features -> (B, P, 3) lixel coords and (B, P, 3) peak mass."""
        xy = self.deconv(feat)  # (B, ch, D, D)
        hx = self.conv_x(xy.mean(2))  # marginalise y -> (B, P, D)
        hy = self.conv_y(xy.mean(3))
        z = self.conv_z_1(feat.mean((2, 3)).unsqueeze(-1))  # (B, z_ch * D, 1)
        hz = self.conv_z_2(z.reshape(-1, self.z_channels, self.bins))
        coord, mass = soft_argmax_1d(torch.stack((hx, hy, hz), dim=-2), self.radius)  # (B,P,3)
        return coord, mass


class HeatmapAggregator(nn.Module):
    """Early image features + Gaussian 3D joint heatmaps -> mesh backbone input (``Pose2Feat``).

    ``conv``: I2L MeshNet's 3x3 conv (early + J*D -> early channels) at stride 4.
    ``upsample``: seed 002's aggregator with upsampling: ``aggregator_upsamples`` blocks of
    the decoder kind (the first changes the width to ``aggregator_channels``), then a
    pointwise conv to the mesh backbone's entry width when it differs.
    """

    def __init__(self, early_ch: int, entry_ch: int, cfg: EstimatorConfig) -> None:
        super().__init__()
        self.bins, self.num_joints = cfg.bins, cfg.num_joints
        self.sigma = cfg.heatmap_sigma * cfg.bins / 64.0
        in_ch = early_ch + cfg.num_joints * cfg.bins
        layers: list[nn.Module] = []
        if cfg.aggregator == "conv":
            layers.append(conv_bn_act(in_ch, entry_ch, 3))
        else:
            width = in_ch
            for _ in range(cfg.aggregator_upsamples):
                layers.append(
                    upsample_block(
                        cfg.decoder_block, width, cfg.aggregator_channels, cfg.se_reduction
                    )
                )
                width = cfg.aggregator_channels
            if width != entry_ch:
                layers.append(conv_bn_act(width, entry_ch, 1))
        self.conv = nn.Sequential(*layers)

    def forward(self, early: torch.Tensor, joints: torch.Tensor) -> torch.Tensor:
        """(B, C, D, D) early features, (B, J, 3) lixel joints -> mesh backbone input."""
        with torch.no_grad():  # as in I2L MeshNet: no gradient through the heatmap rendering
            heat = gaussian_heatmap_3d(joints.detach(), self.bins, self.sigma)
        heat = heat.reshape(-1, self.num_joints * self.bins, self.bins, self.bins)
        return self.conv(torch.cat((early, heat), dim=1))


class I2LMeshNet(nn.Module):
    """Two-stage lixel estimator: (B, 3, S, S) ImageNet-normalised image -> :class:`LixelOutput`."""

    def __init__(self, cfg: EstimatorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.entry_stride = 4 if cfg.aggregator == "conv" else 4 // 2**cfg.aggregator_upsamples
        self.pose_backbone = build_backbone(cfg.backbone, cfg.width_mult)
        self.pose_net = LixelHead(self.pose_backbone.out_channels, cfg.num_joints, cfg)
        self.mesh_backbone = build_backbone(cfg.backbone, cfg.width_mult)
        entry_ch = self.mesh_backbone.entry_channels(self.entry_stride)
        self.pose2feat = HeatmapAggregator(self.pose_backbone.early_channels, entry_ch, cfg)
        self.mesh_net = LixelHead(self.mesh_backbone.out_channels, cfg.num_vertices, cfg)

    def forward(self, image: torch.Tensor) -> LixelOutput:
        """(B, 3, S, S) normalised image -> lixel joints, vertices and joint confidence."""
        size = self.cfg.input_size
        if not torch.jit.is_tracing() and (image.shape[-1] != size or image.shape[-2] != size):
            raise ValueError(
                f"image: expected (B, 3, {self.cfg.input_size}, {self.cfg.input_size}), "
                f"got {tuple(image.shape)}"
            )
        early = self.pose_backbone.forward_early(image)
        joints, joint_mass = self.pose_net(self.pose_backbone.forward_from(early, 4))
        mesh_in = self.pose2feat(early, joints)
        vertices, _ = self.mesh_net(self.mesh_backbone.forward_from(mesh_in, self.entry_stride))
        return LixelOutput(joints, vertices, joint_mass.mean(-1))
