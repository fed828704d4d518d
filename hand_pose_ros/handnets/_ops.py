"""Torch modules for single TFLite ops, NCHW. Every rank-4 activation is held NCHW;
tensors of other ranks keep TFLite's layout. Weights become fp32 ``nn.Parameter``s.

Each builder takes ``(op, graph)`` and returns a module whose ``forward`` takes the op's
non-constant inputs in order; constants (weights, shapes, paddings) are baked in.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hand_pose_ros.handnets.tflite_reader import TfliteGraph, TfliteOp

SAME, VALID = 0, 1  # tflite.Padding
NHWC_TO_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1}


class UnsupportedOpError(NotImplementedError):
    """A TFLite op (or an option of one) the converter cannot rebuild."""


def _unsupported(op: TfliteOp, graph: TfliteGraph, why: str) -> UnsupportedOpError:
    out = graph.tensors[op.outputs[0]].name if op.outputs else "?"
    return UnsupportedOpError(f"TFLite op {op.type} (output {out!r}): {why}")


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _relu_n1_to_1(x: torch.Tensor) -> torch.Tensor:
    return torch.clamp(x, -1.0, 1.0)


def _to_float(x: torch.Tensor) -> torch.Tensor:
    return x.float()


def _activation(op: TfliteOp, graph: TfliteGraph) -> Callable[[torch.Tensor], torch.Tensor]:
    code = op.options.get("FusedActivationFunction", 0)
    table = {0: _identity, 1: F.relu, 2: _relu_n1_to_1, 3: F.relu6, 4: torch.tanh}
    if code not in table:
        raise _unsupported(op, graph, f"fused activation {code} is not supported")
    return table[code]


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TF "SAME" padding (before, after) along one axis, in pixels: the odd pixel goes
    after (bottom / right), so it is asymmetric at stride 2 on even sizes."""
    effective = (kernel - 1) * dilation + 1
    total = max((math.ceil(size / stride) - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def _pads(op: TfliteOp, graph: TfliteGraph, kh: int, kw: int) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) pixels for a window op on its NHWC input."""
    if op.options["Padding"] == VALID:
        return 0, 0, 0, 0
    _, h, w, _ = graph.tensors[op.inputs[0]].shape
    top, bottom = same_padding(h, kh, op.options["StrideH"], op.options.get("DilationHFactor", 1))
    left, right = same_padding(w, kw, op.options["StrideW"], op.options.get("DilationWFactor", 1))
    return left, right, top, bottom


def _constant(graph: TfliteGraph, index: int, op: TfliteOp) -> np.ndarray:
    if index not in graph.constants:
        raise _unsupported(op, graph, f"input {graph.tensors[index].name!r} must be a constant")
    return graph.constants[index]


def _nchw(array: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    return t.permute(0, 3, 1, 2).contiguous() if t.ndim == 4 else t


class Conv(nn.Module):
    """CONV_2D / DEPTHWISE_CONV_2D: explicit TF padding, ``nn.Conv2d``, fused activation."""

    def __init__(self, op: TfliteOp, graph: TfliteGraph) -> None:
        super().__init__()
        weight = _constant(graph, op.inputs[1], op)
        depthwise = op.type == "DEPTHWISE_CONV_2D"
        if depthwise:  # (1, kh, kw, C * multiplier) -> (C * multiplier, 1, kh, kw)
            c_in = graph.tensors[op.inputs[0]].shape[3]
            weight = weight.transpose(3, 0, 1, 2)
            groups = c_in
        else:  # (O, kh, kw, I) -> (O, I, kh, kw)
            weight = weight.transpose(0, 3, 1, 2)
            c_in, groups = weight.shape[1], 1
        c_out, _, kh, kw = weight.shape
        left, right, top, bottom = _pads(op, graph, kh, kw)
        symmetric = left == right and top == bottom
        self.pad = None if symmetric else (left, right, top, bottom)
        has_bias = len(op.inputs) > 2 and op.inputs[2] >= 0
        self.conv = nn.Conv2d(
            c_in,
            c_out,
            (kh, kw),
            stride=(op.options["StrideH"], op.options["StrideW"]),
            padding=(top, left) if symmetric else 0,
            dilation=(op.options.get("DilationHFactor", 1), op.options.get("DilationWFactor", 1)),
            groups=groups,
            bias=has_bias,
        )
        with torch.no_grad():
            self.conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(weight)))
            if has_bias:
                self.conv.bias.copy_(torch.from_numpy(_constant(graph, op.inputs[2], op)))
        self.act = _activation(op, graph)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad is not None:
            x = F.pad(x, self.pad)
        return self.act(self.conv(x))


class MaxPool(nn.Module):
    """MAX_POOL_2D; SAME padding pads with -inf so padded pixels never win."""

    def __init__(self, op: TfliteOp, graph: TfliteGraph) -> None:
        super().__init__()
        kh, kw = op.options["FilterHeight"], op.options["FilterWidth"]
        self.kernel, self.stride = (kh, kw), (op.options["StrideH"], op.options["StrideW"])
        pads = _pads(op, graph, kh, kw)
        self.pad = pads if any(pads) else None
        self.act = _activation(op, graph)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad is not None:
            x = F.pad(x, self.pad, value=float("-inf"))
        return self.act(F.max_pool2d(x, self.kernel, self.stride))


class Add(nn.Module):
    """ADD with broadcasting, an optional constant operand (buffer) and fused activation."""

    def __init__(self, op: TfliteOp, graph: TfliteGraph) -> None:
        super().__init__()
        consts = [i for i in op.inputs if i in graph.constants]
        self.register_buffer("const", _nchw(graph.constants[consts[0]]) if consts else None)
        if len(consts) > 1:
            raise _unsupported(op, graph, "both operands are constants")
        self.act = _activation(op, graph)

    def forward(self, a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        return self.act(a + (self.const if b is None else b))


class Mean(nn.Module):
    """MEAN over the spatial axes of an NHWC tensor (global average pooling)."""

    def __init__(self, op: TfliteOp, graph: TfliteGraph) -> None:
        super().__init__()
        axes = sorted(int(a) % 4 for a in np.ravel(_constant(graph, op.inputs[1], op)))
        if len(graph.tensors[op.inputs[0]].shape) != 4 or axes != [1, 2]:
            raise _unsupported(op, graph, f"only the mean over H, W of a 4D tensor, got {axes}")
        self.keepdim = bool(op.options.get("KeepDims", False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3), keepdim=self.keepdim)


class FullyConnected(nn.Module):
    """FULLY_CONNECTED: rows of the NHWC-flattened input times W^T (``nn.Linear``)."""

    def __init__(self, op: TfliteOp, graph: TfliteGraph) -> None:
        super().__init__()
        if op.options.get("KeepNumDims", False):
            raise _unsupported(op, graph, "keep_num_dims is not supported")
        weight = _constant(graph, op.inputs[1], op)
        has_bias = len(op.inputs) > 2 and op.inputs[2] >= 0
        self.linear = nn.Linear(weight.shape[1], weight.shape[0], bias=has_bias)
        with torch.no_grad():
            self.linear.weight.copy_(torch.from_numpy(weight))
            if has_bias:
                self.linear.bias.copy_(torch.from_numpy(_constant(graph, op.inputs[2], op)))
        self.act = _activation(op, graph)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4:  # TFLite flattens in NHWC order
            x = x.permute(0, 2, 3, 1)
        return self.act(self.linear(x.reshape(-1, self.linear.in_features)))


class PRelu(nn.Module):
    """PRELU with one slope per channel (``nn.PReLU``)."""

    def __init__(self, op: TfliteOp, graph: TfliteGraph) -> None:
        super().__init__()
        alpha = _constant(graph, op.inputs[1], op)
        channels = graph.tensors[op.inputs[0]].shape[-1]
        if alpha.size != channels or alpha.shape[-1] != channels:
            raise _unsupported(op, graph, f"slope shape {alpha.shape} is not per-channel")
        self.prelu = nn.PReLU(channels)
        with torch.no_grad():
            self.prelu.weight.copy_(torch.from_numpy(alpha.reshape(-1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prelu(x)


class Pad(nn.Module):
    """PAD with zeros (the palm net widens channels this way before residual adds)."""

    def __init__(self, op: TfliteOp, graph: TfliteGraph) -> None:
        super().__init__()
        pads = _constant(graph, op.inputs[1], op).astype(int)
        if pads.shape != (4, 2) or pads[0].any():
            raise _unsupported(op, graph, f"only H/W/C padding of a 4D tensor, got {pads.tolist()}")
        (top, bottom), (left, right), (front, back) = pads[1], pads[2], pads[3]
        self.pad = (int(left), int(right), int(top), int(bottom), int(front), int(back))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.pad)


class ResizeBilinear(nn.Module):
    """RESIZE_BILINEAR to a fixed size; half-pixel centres = ``align_corners=False``."""

    def __init__(self, op: TfliteOp, graph: TfliteGraph) -> None:
        super().__init__()
        h, w = (int(v) for v in _constant(graph, op.inputs[1], op))
        self.size = (h, w)
        if op.options.get("AlignCorners", False):
            self.align_corners = True
        elif op.options.get("HalfPixelCenters", False):
            self.align_corners = False
        else:
            raise _unsupported(
                op,
                graph,
                "legacy TF resize (no half-pixel centres, no "
                "align_corners) has no torch equivalent",
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=self.size, mode="bilinear", align_corners=self.align_corners)


class Reshape(nn.Module):
    """RESHAPE in TFLite's element order: NCHW inputs go to NHWC first, 4D outputs come
    back NCHW. The batch axis stays free (-1) so the graph keeps a dynamic batch."""

    def __init__(self, op: TfliteOp, graph: TfliteGraph) -> None:
        super().__init__()
        src, dst = graph.tensors[op.inputs[0]].shape, graph.tensors[op.outputs[0]].shape
        if not src or not dst or src[0] != 1 or dst[0] != 1:
            raise _unsupported(op, graph, f"only reshapes that keep batch 1 first: {src} -> {dst}")
        self.to_nhwc, self.to_nchw, self.shape = len(src) == 4, len(dst) == 4, tuple(dst[1:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.to_nhwc:
            x = x.permute(0, 2, 3, 1)
        x = x.reshape(-1, *self.shape)
        return x.permute(0, 3, 1, 2) if self.to_nchw else x


class Concat(nn.Module):
    """CONCATENATION along the TFLite axis (mapped to NCHW for 4D tensors)."""

    def __init__(self, op: TfliteOp, graph: TfliteGraph) -> None:
        super().__init__()
        if any(i in graph.constants for i in op.inputs):
            raise _unsupported(op, graph, "constant operands are not supported")
        rank = len(graph.tensors[op.outputs[0]].shape)
        axis = op.options["Axis"] % rank
        self.axis = NHWC_TO_NCHW_AXIS[axis] if rank == 4 else axis
        self.act = _activation(op, graph)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return self.act(torch.cat(xs, dim=self.axis))


class Elementwise(nn.Module):
    """A one-input op with no weights (LOGISTIC, a DEQUANTIZE of an activation)."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


OP_BUILDERS: dict[str, Callable[[TfliteOp, TfliteGraph], nn.Module]] = {
    "CONV_2D": Conv,
    "DEPTHWISE_CONV_2D": Conv,
    "MAX_POOL_2D": MaxPool,
    "ADD": Add,
    "MEAN": Mean,
    "FULLY_CONNECTED": FullyConnected,
    "PRELU": PRelu,
    "PAD": Pad,
    "RESIZE_BILINEAR": ResizeBilinear,
    "RESHAPE": Reshape,
    "CONCATENATION": Concat,
    "LOGISTIC": lambda op, graph: Elementwise(torch.sigmoid),
    "DEQUANTIZE": lambda op, graph: Elementwise(_to_float),
}


def build_op(op: TfliteOp, graph: TfliteGraph) -> nn.Module:
    """The torch module for ``op``; UnsupportedOpError names the op when there is none."""
    if op.type not in OP_BUILDERS:
        raise _unsupported(
            op, graph, f"op not supported; supported: {', '.join(sorted(OP_BUILDERS))}"
        )
    return OP_BUILDERS[op.type](op, graph)
