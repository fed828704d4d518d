"""FAR-HandNet: a YOLOv8-pose-style, anchor-free hand detector in plain torch.

CSPDarkNet backbone (optionally CSPDarkNet-VT: focused linear attention blocks after the
stride-16 and stride-32 stages), YOLOv8 PAN neck, decoupled head with box (l, t, r, b
distances), class (right / left) and keypoint (dx, dy, c1, c2 per keypoint) branches.

All coordinates are input pixels of the (B, 3, S, S) letterboxed network input, x right,
y down. Anchors are cell centres ``((ix + 0.5) * stride, (iy + 0.5) * stride)``, levels
in the order of ``cfg.strides`` (8, 16, 32), row-major (x fastest) within a level.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from hand_pose_ros.detection.config import (
    OUTPUT_NAMES,
    DetectorConfig,
    create_detector_config,
)
from hand_pose_ros.detection.flow import RealNVP2D, keypoint_confidence_from_sigma

__all__ = [
    "OUTPUT_NAMES",
    "PAN",
    "SPPF",
    "Bottleneck",
    "C2f",
    "CSPDarkNet",
    "ConvBNAct",
    "DetectionHead",
    "FocusedLinearAttention",
    "FocusedLinearAttentionBlock",
    "HandDetectorNet",
    "LayerNorm2d",
    "anchor_points",
    "create_detector",
    "focused_map",
    "linear_attention",
]

#: Raw box output such that softplus(raw) = 2: initial l, t, r, b of 2 strides.
_BOX_BIAS = math.log(math.expm1(2.0))
#: Class logit bias of a 0.01 prior probability.
_CLS_BIAS = -4.6


# --------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------


class ConvBNAct(nn.Module):
    """Conv2d (no bias, 'same' padding) -> BatchNorm2d -> SiLU."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 1, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)
        self.act = nn.SiLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    """Two 3x3 ConvBNAct with an optional residual connection (same width)."""

    def __init__(self, channels: int, shortcut: bool = True) -> None:
        super().__init__()
        self.cv1 = ConvBNAct(channels, channels, 3)
        self.cv2 = ConvBNAct(channels, channels, 3)
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.shortcut else y


class C2f(nn.Module):
    """YOLOv8 C2f: 1x1 conv, split in two halves, chain of bottlenecks on the second
    half, concatenate every intermediate output, 1x1 conv.

    Args:
        in_ch, out_ch: channels of the (B, C, H, W) input and output.
        depth: number of bottlenecks.
        shortcut: residual bottlenecks (backbone) or plain (neck).
    """

    def __init__(self, in_ch: int, out_ch: int, depth: int = 1, shortcut: bool = True) -> None:
        super().__init__()
        self.hidden = max(out_ch // 2, 1)
        self.cv1 = ConvBNAct(in_ch, 2 * self.hidden, 1)
        self.cv2 = ConvBNAct((2 + depth) * self.hidden, out_ch, 1)
        self.m = nn.ModuleList(Bottleneck(self.hidden, shortcut) for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = list(self.cv1(x).split(self.hidden, dim=1))
        for block in self.m:
            y.append(block(y[-1]))
        return self.cv2(torch.cat(y, dim=1))


class SPPF(nn.Module):
    """Spatial pyramid pooling, fast (YOLOv5/8): three chained k x k stride-1 max pools."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 5) -> None:
        super().__init__()
        hidden = in_ch // 2
        self.cv1 = ConvBNAct(in_ch, hidden, 1)
        self.cv2 = ConvBNAct(4 * hidden, out_ch, 1)
        self.pool = nn.MaxPool2d(kernel, 1, kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [self.cv1(x)]
        for _ in range(3):
            y.append(self.pool(y[-1]))
        return self.cv2(torch.cat(y, dim=1))


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a (B, C, H, W) map (exports as LayerNormalization)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


# --------------------------------------------------------------------------------------
# Focused linear attention (Han et al. 2023, FLatten Transformer)
# --------------------------------------------------------------------------------------


def focused_map(x: torch.Tensor, p: float, eps: float = 1e-6) -> torch.Tensor:
    """Focused mapping ``phi_p(x) = ||r|| / ||r^p|| * r^p`` with ``r = relu(x) + eps``.

    Norms over the last (channel) dimension. ``phi_p`` keeps the norm of ``r`` and
    sharpens its direction towards its largest components. Computed as
    ``||r|| * normalize(normalize(r)^p)`` (equal, but free of underflow for large p).
    """
    r = F.relu(x) + eps
    r_norm = r.norm(dim=-1, keepdim=True)
    u = (r / r_norm) ** p
    return r_norm * u / u.norm(dim=-1, keepdim=True)


def linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``out_i = q_i (sum_j k_j^T v_j) / (q_i . sum_j k_j)``, O(N d^2).

    Args:
        q, k: (..., N, d) non-negative (focused) queries and keys.
        v: (..., N, d_v) values.

    Returns:
        (..., N, d_v): the attention-weighted values, weights ``q_i . k_j`` normalised
        over j (identical to the O(N^2) form ``softmax``-free attention).
    """
    kv = torch.matmul(k.transpose(-2, -1), v)
    k_sum = k.sum(dim=-2, keepdim=True)
    denom = torch.matmul(q, k_sum.transpose(-2, -1))
    return torch.matmul(q, kv) / (denom + 1e-6)


class FocusedLinearAttention(nn.Module):
    """Multi-head focused linear attention over the H*W tokens of a (B, C, H, W) map.

    q, k, v by a 1x1 conv; ``phi_p`` (:func:`focused_map`, per head, after division by a
    learnable softplus per-channel scale) on q and k; linear attention per head; plus a
    depthwise 3x3 conv of v on the map (rank restoration, shared across heads as in the
    paper); 1x1 output projection. The paper's learnable positional encoding of k is
    omitted (it fixes the input size); the depthwise conv supplies position.

    Args:
        channels: C, divisible by ``heads``.
        heads: number of attention heads.
        focusing_factor: p of ``phi_p``.
    """

    def __init__(self, channels: int, heads: int = 4, focusing_factor: float = 3.0) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels {channels} not divisible by heads {heads}")
        self.heads = heads
        self.head_dim = channels // heads
        self.focusing_factor = float(focusing_factor)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.scale = nn.Parameter(torch.zeros(1, heads, 1, self.head_dim))
        self.dwc = nn.Conv2d(self.head_dim, self.head_dim, 3, 1, 1, groups=self.head_dim)
        self.proj = nn.Conv2d(channels, channels, 1)

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, C, H, W) -> focused q, k and plain v, each (B, heads, H*W, head_dim)."""
        b, _, h, w = x.shape
        qkv = self.qkv(x).reshape(b, 3, self.heads, self.head_dim, h * w).transpose(-2, -1)
        scale = F.softplus(self.scale)
        q = focused_map(F.relu(qkv[:, 0]) / scale, self.focusing_factor)
        k = focused_map(F.relu(qkv[:, 1]) / scale, self.focusing_factor)
        return q, k, qkv[:, 2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.project(x)
        out = linear_attention(q, k, v)
        v_map = v.transpose(-2, -1).reshape(b * self.heads, self.head_dim, h, w)
        local = self.dwc(v_map).reshape(b, self.heads, self.head_dim, h * w)
        out = out.transpose(-2, -1) + local
        return self.proj(out.reshape(b, c, h, w))


class FocusedLinearAttentionBlock(nn.Module):
    """Pre-norm transformer block on a (B, C, H, W) map (shape preserved).

    ``x + attn(norm(x))`` then ``x + mlp(norm(x))``; channel LayerNorm; MLP of two 1x1
    convs with hidden width ``mlp_ratio * C`` and SiLU.
    """

    def __init__(
        self, channels: int, heads: int = 4, focusing_factor: float = 3.0, mlp_ratio: int = 2
    ) -> None:
        super().__init__()
        self.norm1 = LayerNorm2d(channels)
        self.attn = FocusedLinearAttention(channels, heads, focusing_factor)
        self.norm2 = LayerNorm2d(channels)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, mlp_ratio * channels, 1),
            nn.SiLU(inplace=True),
            nn.Conv2d(mlp_ratio * channels, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


# --------------------------------------------------------------------------------------
# Backbone, neck, head
# --------------------------------------------------------------------------------------


class CSPDarkNet(nn.Module):
    """CSPDarkNet (YOLOv8), or CSPDarkNet-VT with ``cfg.focused_attention``.

    Stem 3x3 s2 conv -> 4 stages (3x3 s2 ConvBNAct + C2f of ``cfg.depths[i]``) -> SPPF.
    With focused attention, a :class:`FocusedLinearAttentionBlock` follows stages 3 and 4
    (before SPPF). ``forward`` returns the (stride 8, 16, 32) maps of widths
    ``cfg.widths[2:]``.
    """

    def __init__(self, cfg: DetectorConfig) -> None:
        super().__init__()
        w = cfg.widths
        self.stem = ConvBNAct(3, w[0], 3, 2)
        self.stages = nn.ModuleList(
            nn.Sequential(ConvBNAct(w[i], w[i + 1], 3, 2), C2f(w[i + 1], w[i + 1], d, True))
            for i, d in enumerate(cfg.depths)
        )
        self.attn3: nn.Module = nn.Identity()
        self.attn4: nn.Module = nn.Identity()
        if cfg.focused_attention:
            heads, p = cfg.attention_heads, cfg.focusing_factor
            self.attn3 = FocusedLinearAttentionBlock(w[3], heads, p)
            self.attn4 = FocusedLinearAttentionBlock(w[4], heads, p)
        self.sppf = SPPF(w[4], w[4], 5)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.stem(x)
        x = self.stages[0](x)
        c3 = self.stages[1](x)
        c4 = self.attn3(self.stages[2](c3))
        c5 = self.sppf(self.attn4(self.stages[3](c4)))
        return c3, c4, c5


class PAN(nn.Module):
    """YOLOv8 PAN neck: top-down FPN then bottom-up path, C2f (no shortcut) fusions.

    Inputs: backbone maps at strides 8, 16, 32 with channels ``in_chs``; outputs three
    maps with ``width`` channels at the same strides.
    """

    def __init__(self, in_chs: tuple[int, int, int], width: int, depth: int = 1) -> None:
        super().__init__()
        c3, c4, c5 = in_chs
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.td4 = C2f(c5 + c4, width, depth, False)
        self.td3 = C2f(width + c3, width, depth, False)
        self.down3 = ConvBNAct(width, width, 3, 2)
        self.bu4 = C2f(2 * width, width, depth, False)
        self.down4 = ConvBNAct(width, width, 3, 2)
        self.bu5 = C2f(width + c5, width, depth, False)

    def forward(
        self, feats: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    ) -> list[torch.Tensor]:
        c3, c4, c5 = feats
        t4 = self.td4(torch.cat([self.up(c5), c4], dim=1))
        p3 = self.td3(torch.cat([self.up(t4), c3], dim=1))
        p4 = self.bu4(torch.cat([self.down3(p3), t4], dim=1))
        p5 = self.bu5(torch.cat([self.down4(p4), c5], dim=1))
        return [p3, p4, p5]


def _branch(in_ch: int, hidden: int, out_ch: int) -> nn.Sequential:
    """Two 3x3 ConvBNAct then a 1x1 conv (with bias) to ``out_ch`` channels."""
    return nn.Sequential(
        ConvBNAct(in_ch, hidden, 3), ConvBNAct(hidden, hidden, 3), nn.Conv2d(hidden, out_ch, 1)
    )


class DetectionHead(nn.Module):
    """Decoupled anchor-free head: per level, box / class / keypoint branches.

    ``forward`` maps the neck outputs to raw, level-concatenated per-anchor tensors:
    ``box`` (B, A, 4) raw l, t, r, b; ``cls`` (B, A, C) logits; ``kpt`` (B, A, K, 4) raw
    dx, dy, c1, c2. Initial box distances are ``softplus(bias) = 2`` strides, initial
    class probabilities 0.01.
    """

    def __init__(self, cfg: DetectorConfig) -> None:
        super().__init__()
        n, hw = cfg.neck_width, cfg.head_width
        self.num_classes = cfg.num_classes
        self.num_keypoints = cfg.num_keypoints
        self.handedness_head = cfg.handedness_head
        levels = range(len(cfg.strides))
        self.box = nn.ModuleList(_branch(n, hw, 4) for _ in levels)
        self.cls = nn.ModuleList(_branch(n, hw, cfg.num_classes) for _ in levels)
        self.kpt = nn.ModuleList(_branch(n, hw, 4 * cfg.num_keypoints) for _ in levels)
        self.reset_output_layers()

    def reset_output_layers(self) -> None:
        """Small last-layer weights and prior biases (box 2 strides, class 0.01, kpt 0;
        the left-vs-right logit of a handedness head 0, i.e. P(left | hand) = 0.5)."""
        for branches, bias in ((self.box, _BOX_BIAS), (self.cls, _CLS_BIAS), (self.kpt, 0.0)):
            for branch in branches:
                last = branch[-1]
                nn.init.normal_(last.weight, std=0.01)
                nn.init.constant_(last.bias, bias)
        if self.handedness_head:
            for branch in self.cls:
                nn.init.zeros_(branch[-1].bias[1:])

    def forward(self, feats: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        boxes, logits, kpts = [], [], []
        for i, f in enumerate(feats):
            b = f.shape[0]
            boxes.append(self.box[i](f).flatten(2).transpose(1, 2))
            logits.append(self.cls[i](f).flatten(2).transpose(1, 2))
            k = self.kpt[i](f).reshape(b, self.num_keypoints, 4, -1)
            kpts.append(k.permute(0, 3, 1, 2))
        return {
            "box": torch.cat(boxes, dim=1),
            "cls": torch.cat(logits, dim=1),
            "kpt": torch.cat(kpts, dim=1),
        }


# --------------------------------------------------------------------------------------
# Anchors and the full network
# --------------------------------------------------------------------------------------


def _grid_anchors(
    sizes: list[tuple[int, int]], strides: tuple[int, ...] | list[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cell centres of (H, W) grids per level: ((A, 2) px float32, (A,) float32)."""
    points, stride_list = [], []
    for (h, w), s in zip(sizes, strides, strict=True):
        ys, xs = torch.meshgrid(
            torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
            indexing="ij",
        )
        xy = torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1)
        points.append((xy + 0.5) * s)
        stride_list.append(torch.full((h * w,), float(s)))
    return torch.cat(points), torch.cat(stride_list)


def anchor_points(cfg: DetectorConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Anchors of ``cfg.input_size``: ((A, 2) x, y input px, (A,) stride px), float32.

    Cell centres ``((ix + 0.5) * s, (iy + 0.5) * s)``, levels in ``cfg.strides`` order,
    row-major with x fastest; A = ``cfg.num_anchors``.
    """
    sizes = [(cfg.input_size // s, cfg.input_size // s) for s in cfg.strides]
    return _grid_anchors(sizes, cfg.strides)


class HandDetectorNet(nn.Module):
    """FAR-HandNet / YOLOv8-pose-style hand detector.

    ``forward`` returns :meth:`forward_raw` in training mode and :meth:`decode` of it in
    eval mode (the ONNX graph: ``boxes``, ``scores``, ``keypoints`` as OUTPUT_NAMES).
    With ``cfg.rle`` the module also holds ``flow`` (:class:`RealNVP2D`), used only by
    the RLE loss and absent from the exported graph.
    """

    def __init__(self, cfg: DetectorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = CSPDarkNet(cfg)
        self.neck = PAN((cfg.widths[2], cfg.widths[3], cfg.widths[4]), cfg.neck_width)
        self.head = DetectionHead(cfg)
        self.flow = RealNVP2D(cfg.flow_hidden, cfg.flow_layers) if cfg.rle else None
        points, strides = anchor_points(cfg)
        self.register_buffer("anchor_xy", points, persistent=False)
        self.register_buffer("anchor_strides", strides, persistent=False)

    def _anchors(self, sizes: list[tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Anchors for feature maps of ``sizes``: the buffers at cfg.input_size, else new."""
        if sum(h * w for h, w in sizes) == self.anchor_xy.shape[0] and all(
            h == w == self.cfg.input_size // s
            for (h, w), s in zip(sizes, self.cfg.strides, strict=True)
        ):
            return self.anchor_xy, self.anchor_strides
        points, strides = _grid_anchors(sizes, self.cfg.strides)
        return points.to(self.anchor_xy.device), strides.to(self.anchor_xy.device)

    def _anchors_for_count(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Anchors of a square input with ``count`` anchors (the buffers if they match)."""
        if count == self.anchor_xy.shape[0]:
            return self.anchor_xy, self.anchor_strides
        per_px2 = sum(1.0 / s**2 for s in self.cfg.strides)
        size = round(math.sqrt(count / per_px2))
        sizes = [(size // s, size // s) for s in self.cfg.strides]
        if sum(h * w for h, w in sizes) != count:
            raise ValueError(f"{count} anchors match no square input; pass anchors")
        return self._anchors(sizes)

    def forward_raw(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, 3, S, S) image in [0, 1] -> raw per-anchor outputs (A in anchor order).

        - ``box`` (B, A, 4): l, t, r, b distances from the anchor, input px,
          ``softplus(raw) * stride`` (>= 0).
        - ``cls`` (B, A, C): class logits: hand and left-vs-right with
          ``cfg.handedness_head``, else right and left (see :meth:`class_scores`).
        - ``kpt`` (B, A, K, 2): keypoints, input px, ``anchor_xy + raw_xy * 2 * stride``.
        - ``kpt_logit`` (B, A, K): c1, the visibility / confidence logit (without RLE).
        - ``kpt_sigma`` (B, A, K, 2): ``sigmoid(c1, c2)``, RLE sigma in units of the box
          size (with RLE).
        """
        feats = self.neck(self.backbone(x))
        raw = self.head(feats)
        points, strides = self._anchors([(int(f.shape[2]), int(f.shape[3])) for f in feats])
        kpt = raw["kpt"]
        s = strides[None, :, None]
        return {
            "box": F.softplus(raw["box"]) * s,
            "cls": raw["cls"],
            "kpt": points[None, :, None, :] + kpt[..., :2] * (2.0 * s[..., None]),
            "kpt_logit": kpt[..., 2],
            "kpt_sigma": torch.sigmoid(kpt[..., 2:4]),
        }

    def class_scores(self, cls_logits: torch.Tensor) -> torch.Tensor:
        """(B, A, 2) class logits -> (B, A, 2) P(right hand), P(left hand) at each anchor."""
        if not self.cfg.handedness_head:
            return torch.sigmoid(cls_logits)
        hand = torch.sigmoid(cls_logits[..., :1])
        left = torch.sigmoid(cls_logits[..., 1:2])
        return torch.cat([hand * (1.0 - left), hand * left], dim=-1)

    def decode(
        self,
        raw: dict[str, torch.Tensor],
        anchors: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Raw outputs -> (boxes, scores, keypoints), per anchor, input pixels.

        Args:
            raw: :meth:`forward_raw` output.
            anchors: (A, 2) anchor points, px; default: those of the square input with
                A anchors (the buffers at ``cfg.input_size``).

        Returns:
            ``boxes`` (B, A, 4) x1, y1, x2, y2; ``scores`` (B, A, C) class probabilities
            (:meth:`class_scores`); ``keypoints`` (B, A, K, 3) x, y, confidence in [0, 1]
            (``1 - mean(kpt_sigma)`` with ``cfg.rle``, else ``sigmoid(kpt_logit)``).
        """
        if anchors is None:
            anchors = self._anchors_for_count(raw["box"].shape[1])[0]
        ltrb = raw["box"]
        a = anchors[None]
        boxes = torch.cat([a - ltrb[..., :2], a + ltrb[..., 2:]], dim=-1)
        if self.cfg.rle:
            conf = keypoint_confidence_from_sigma(raw["kpt_sigma"])
        else:
            conf = torch.sigmoid(raw["kpt_logit"])
        keypoints = torch.cat([raw["kpt"], conf[..., None]], dim=-1)
        return boxes, self.class_scores(raw["cls"]), keypoints

    def forward(
        self, x: torch.Tensor
    ) -> dict[str, torch.Tensor] | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training: :meth:`forward_raw`; eval / ONNX: :meth:`decode` of it."""
        raw = self.forward_raw(x)
        if self.training:
            return raw
        return self.decode(raw)

    def inference_state_dict(self) -> dict[str, torch.Tensor]:
        """The state dict without the (training-only) ``flow.`` parameters."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("flow.")}

    def load_weights(self, state: dict[str, torch.Tensor]):
        """Strict ``load_state_dict`` except that missing ``flow.`` keys are allowed.

        Returns the ``(missing_keys, unexpected_keys)`` result; raises RuntimeError on any
        other missing or unexpected key.
        """
        result = self.load_state_dict(state, strict=False)
        missing = [k for k in result.missing_keys if not k.startswith("flow.")]
        if missing or result.unexpected_keys:
            raise RuntimeError(
                f"detector weights: missing keys {missing}, "
                f"unexpected keys {result.unexpected_keys}"
            )
        return result


def create_detector(name_or_cfg: str | DetectorConfig, **overrides) -> HandDetectorNet:
    """A randomly initialised :class:`HandDetectorNet` of a registered name or a config."""
    if isinstance(name_or_cfg, DetectorConfig):
        cfg = replace(name_or_cfg, **overrides)
    else:
        cfg = create_detector_config(name_or_cfg, **overrides)
    return HandDetectorNet(cfg)
