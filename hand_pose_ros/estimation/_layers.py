"""Private building blocks: conv-BN-activation stacks, squeeze-excitation, upsampling blocks.

Module names follow torchvision (``Conv2dNormActivation`` is a ``Sequential`` of
conv ``.0``, batch norm ``.1``, activation ``.2``; squeeze-excitation has ``fc1``
and ``fc2``) so state dicts written by torchvision load into the backbones.
"""

from __future__ import annotations

import torch
from torch import nn

from hand_pose_ros.estimation.config import BLOCK_KINDS


def conv_bn_act(
    in_ch: int,
    out_ch: int,
    kernel: int = 1,
    stride: int = 1,
    groups: int = 1,
    act: type[nn.Module] | None = nn.ReLU,
) -> nn.Sequential:
    """Conv2d (no bias, 'same' padding for odd kernels) -> BatchNorm2d -> activation."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_ch, out_ch, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_ch),
    ]
    if act is not None:
        layers.append(act(inplace=True))
    return nn.Sequential(*layers)


class SqueezeExcitation(nn.Module):
    """Channel re-weighting (Hu et al. 2018), torchvision parameter names ``fc1``/``fc2``.

    Args:
        channels: channels of the (B, C, H, W) input.
        squeeze: hidden width.
        act: activation after ``fc1`` (SiLU in EfficientNet, ReLU in the decoders).
    """

    def __init__(self, channels: int, squeeze: int, act: type[nn.Module] = nn.SiLU) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.activation = act(inplace=True)
        self.scale_activation = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return x * scale


def _deconv_bn_relu(in_ch: int, out_ch: int, groups: int = 1) -> list[nn.Module]:
    """4x4 stride-2 transposed conv (exactly doubles H and W) -> BN -> ReLU."""
    return [
        nn.ConvTranspose2d(in_ch, out_ch, 4, 2, 1, output_padding=0, groups=groups, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    ]


def upsample_block(kind: str, in_ch: int, out_ch: int, se_reduction: int = 16) -> nn.Sequential:
    """One x2 upsampling block of a decoder or heatmap aggregator.

    Args:
        kind: ``"deconv"``: dense 4x4 transposed conv (I2L MeshNet).
            ``"dw"`` (Fig. 3A): depthwise 4x4 transposed conv -> pointwise conv.
            ``"mbconv"`` (Fig. 3B): depthwise transposed conv -> SE -> pointwise conv.
            ``"dwse"`` (Fig. 3C): depthwise transposed conv -> SE, no pointwise conv; the
            pointwise conv stays only where the width changes (``in_ch != out_ch``).
            In all three the width changes in the pointwise conv after upsampling.
        in_ch: input channels.
        out_ch: output channels.
        se_reduction: SE hidden width is ``channels // se_reduction``.

    Returns:
        Module mapping (B, in_ch, H, W) -> (B, out_ch, 2H, 2W).
    """
    if kind == "deconv":
        return nn.Sequential(*_deconv_bn_relu(in_ch, out_ch))
    if kind == "dw":
        return nn.Sequential(
            *_deconv_bn_relu(in_ch, in_ch, groups=in_ch), *conv_bn_act(in_ch, out_ch)
        )
    if kind == "mbconv":
        return nn.Sequential(
            *_deconv_bn_relu(in_ch, in_ch, groups=in_ch),
            SqueezeExcitation(in_ch, max(1, in_ch // se_reduction), act=nn.ReLU),
            *conv_bn_act(in_ch, out_ch),
        )
    if kind == "dwse":
        post = list(conv_bn_act(in_ch, out_ch)) if in_ch != out_ch else []
        return nn.Sequential(
            *_deconv_bn_relu(in_ch, in_ch, groups=in_ch),
            SqueezeExcitation(in_ch, max(1, in_ch // se_reduction), act=nn.ReLU),
            *post,
        )
    raise ValueError(f"block kind {kind!r} unknown; valid: {', '.join(BLOCK_KINDS)}")


def conv1d_bn_relu(in_ch: int, out_ch: int) -> nn.Sequential:
    """1x1 Conv1d -> BatchNorm1d -> ReLU (I2L MeshNet's ``make_conv1d_layers`` hidden layer)."""
    return nn.Sequential(nn.Conv1d(in_ch, out_ch, 1), nn.BatchNorm1d(out_ch), nn.ReLU(inplace=True))
