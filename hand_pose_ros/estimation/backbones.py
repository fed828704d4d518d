"""Plain-torch ResNet-50 and EfficientNet-B0 feature extractors with torchvision names.

torchvision and timm do not import beside the CPU torch wheel here, so the two
backbones are written out; parameter names and shapes equal torchvision's
(``conv1``, ``bn1``, ``layer1..4`` for ResNet-50; ``features.0`` ... ``features.8``
for EfficientNet-B0), so an ImageNet state dict saved by torchvision loads with
:func:`load_backbone_weights` (the classifier keys ``fc.*`` / ``classifier.*`` are
dropped). EfficientNet with ``width_mult != 1`` keeps the names, not the shapes.

Both backbones expose the two cuts I2L MeshNet needs:
``forward_early(x)`` -> stride-4 "early" features (shared with the mesh stage) and
``forward_from(feat, stride)`` -> stride-32 features, entering at stride 1, 2 or 4.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from hand_pose_ros.estimation._layers import SqueezeExcitation, conv_bn_act

log = logging.getLogger(__name__)


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck (stride on the 3x3 conv), torchvision names."""

    expansion = 4

    def __init__(self, in_ch: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_ch = planes * self.expansion
        self.conv1 = nn.Conv2d(in_ch, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNet50Backbone(nn.Module):
    """ResNet-50 without pooling/classifier: (B,3,H,W) -> (B,2048,H/32,W/32).

    Attributes:
        early_channels: channels of the stride-4 features (after max-pool): 64.
        out_channels: 2048.
    """

    early_channels = 64
    out_channels = 2048

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        in_ch = 64
        for i, (planes, blocks, stride) in enumerate(
            ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)), start=1
        ):
            layers = []
            for b in range(blocks):
                layers.append(Bottleneck(in_ch, planes, stride if b == 0 else 1))
                in_ch = planes * Bottleneck.expansion
            setattr(self, f"layer{i}", nn.Sequential(*layers))

    def entry_channels(self, stride: int) -> int:
        """Channels :meth:`forward_from` expects when entering at ``stride`` (1 or 4)."""
        if stride == 1:
            return 3
        if stride == 4:
            return 64
        raise ValueError(f"stride: ResNet-50 can be entered at stride 1 or 4, not {stride}")

    def forward_early(self, x: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) image -> (B,64,H/4,W/4) early features."""
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def forward_from(self, x: torch.Tensor, stride: int = 4) -> torch.Tensor:
        """Features at ``stride`` (1: the image) -> (B,2048,H/32,W/32)."""
        if stride == 1:
            x = self.forward_early(x)
        elif stride != 4:
            raise ValueError(f"stride: ResNet-50 can be entered at stride 1 or 4, not {stride}")
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def _make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of ``divisor``, never below 90% of it (torchvision)."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return int(new)


class MBConv(nn.Module):
    """EfficientNet inverted bottleneck: [expand 1x1] -> depthwise kxk -> SE -> project 1x1.

    torchvision layout: ``block.0..3`` (``block.0`` is the depthwise conv when
    ``expand_ratio == 1``); SE hidden width is ``in_ch // 4``; residual when
    stride 1 and ``in_ch == out_ch`` (stochastic depth is a training-only no-op here).
    """

    def __init__(self, in_ch: int, out_ch: int, expand: int, kernel: int, stride: int) -> None:
        super().__init__()
        mid = _make_divisible(in_ch * expand)
        layers: list[nn.Module] = []
        if mid != in_ch:
            layers.append(conv_bn_act(in_ch, mid, 1, act=nn.SiLU))
        layers.append(conv_bn_act(mid, mid, kernel, stride, groups=mid, act=nn.SiLU))
        layers.append(SqueezeExcitation(mid, max(1, in_ch // 4), act=nn.SiLU))
        layers.append(conv_bn_act(mid, out_ch, 1, act=None))
        self.block = nn.Sequential(*layers)
        self.use_res_connect = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return out + x if self.use_res_connect else out


#: EfficientNet-B0 stages: (expand ratio, kernel, stride, in channels, out channels, layers).
EFFICIENTNET_B0_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)


class EfficientNetB0Backbone(nn.Module):
    """EfficientNet-B0 ``features`` (no pooling/classifier): (B,3,H,W) -> (B,C,H/32,W/32).

    Args:
        width_mult: channel multiplier (1.0 = torchvision B0; 0.5 for the CPU variants).
            Depth is unchanged.

    Attributes:
        early_channels: channels of the stride-4 features (output of ``features.2``).
        out_channels: channels of ``features.8`` (1280 at width 1).
    """

    #: features index entered at each input stride.
    _ENTRY_INDEX: ClassVar[dict[int, int]] = {1: 0, 2: 1, 4: 3}

    def __init__(self, width_mult: float = 1.0) -> None:
        super().__init__()
        if width_mult <= 0:
            raise ValueError(f"width_mult must be > 0, got {width_mult}")
        ch = [_make_divisible(c * width_mult) for c in (32, 16, 24, 40, 80, 112, 192, 320)]
        stem = ch[0]
        layers: list[nn.Module] = [conv_bn_act(3, stem, 3, 2, act=nn.SiLU)]
        self._entry_ch = {1: 3, 2: stem}
        for s, (expand, kernel, stride, _, _, n) in enumerate(EFFICIENTNET_B0_STAGES):
            in_ch, out_ch = ch[s], ch[s + 1]
            blocks = [
                MBConv(in_ch if i == 0 else out_ch, out_ch, expand, kernel, stride if i == 0 else 1)
                for i in range(n)
            ]
            layers.append(nn.Sequential(*blocks))
        self._entry_ch[4] = ch[2]
        self.early_channels = ch[2]
        self.out_channels = 4 * ch[-1]
        layers.append(conv_bn_act(ch[-1], self.out_channels, 1, act=nn.SiLU))
        self.features = nn.Sequential(*layers)

    def entry_channels(self, stride: int) -> int:
        """Channels :meth:`forward_from` expects when entering at ``stride`` (1, 2 or 4)."""
        if stride not in self._entry_ch:
            raise ValueError(f"stride: EfficientNet can be entered at 1, 2 or 4, not {stride}")
        return self._entry_ch[stride]

    def forward_early(self, x: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) image -> (B,early_channels,H/4,W/4) (output of ``features.2``)."""
        return self.features[2](self.features[1](self.features[0](x)))

    def forward_from(self, x: torch.Tensor, stride: int = 4) -> torch.Tensor:
        """Features at ``stride`` (1: the image) -> (B,out_channels,H/32,W/32)."""
        self.entry_channels(stride)  # validates
        for layer in self.features[self._ENTRY_INDEX[stride] :]:
            x = layer(x)
        return x


#: Backbone name -> constructor taking ``width_mult``.
BACKBONES = {
    "resnet50": lambda width_mult=1.0: _resnet50(width_mult),
    "efficientnet_b0": lambda width_mult=1.0: EfficientNetB0Backbone(width_mult),
}


def _resnet50(width_mult: float) -> ResNet50Backbone:
    if width_mult != 1.0:
        raise ValueError(f"width_mult: ResNet-50 supports only 1.0, got {width_mult}")
    return ResNet50Backbone()


def build_backbone(name: str, width_mult: float = 1.0) -> nn.Module:
    """Backbone by name (``resnet50`` or ``efficientnet_b0``)."""
    if name not in BACKBONES:
        raise ValueError(f"backbone {name!r} unknown; valid: {', '.join(sorted(BACKBONES))}")
    return BACKBONES[name](width_mult)


def load_backbone_weights(backbone: nn.Module, path: str | Path) -> None:
    """Load a torchvision ImageNet state dict (``.pth``) into a backbone, in place.

    Classifier keys (``fc.*``, ``classifier.*``) are dropped; every other key must
    match in name and shape (strict), so a wrong file fails loudly.

    Args:
        backbone: a :class:`ResNet50Backbone` or :class:`EfficientNetB0Backbone`.
        path: file written by ``torch.save(torchvision_model.state_dict(), path)``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: keys or shapes do not match.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"backbone weights not found: {path} (save a torchvision ImageNet state dict there)"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith(("fc.", "classifier."))}
    own = backbone.state_dict()
    bad = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    if bad:
        raise ValueError(f"{path}: shape mismatch for {len(bad)} keys, e.g. {bad[:3]}")
    try:
        backbone.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{path}: not a matching torchvision state dict: {exc}") from exc
    log.info("loaded backbone weights from %s", path)
