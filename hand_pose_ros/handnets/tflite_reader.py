"""Read a ``.tflite`` flatbuffer into plain data: ops, tensor descriptions, numpy constants.

Parsing uses the PyPI ``tflite`` package (generated flatbuffer accessors, pure Python).
FLOAT16 constants behind a ``DEQUANTIZE`` op are folded into float32 constants of the
op's output tensor and the op is dropped, so the converter sees fp32 weights directly.
Tensor layouts are TFLite's (activations NHWC, conv weights OHWI, depthwise 1HWO).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tflite

_NUMPY_TYPES = {
    tflite.TensorType.FLOAT32: np.float32,
    tflite.TensorType.FLOAT16: np.float16,
    tflite.TensorType.FLOAT64: np.float64,
    tflite.TensorType.INT32: np.int32,
    tflite.TensorType.INT64: np.int64,
    tflite.TensorType.INT16: np.int16,
    tflite.TensorType.INT8: np.int8,
    tflite.TensorType.UINT8: np.uint8,
    tflite.TensorType.BOOL: np.bool_,
}
_OPTION_CLASSES = {
    value: name for name, value in vars(tflite.BuiltinOptions).items() if not name.startswith("_")
}
# Generated accessors that are not option fields.
_SKIP_SUFFIXES = ("Length", "IsNone", "BufferHasIdentifier")


class TfliteFormatError(ValueError):
    """The bytes are not a readable TFLite model."""


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of the graph: its name, static shape (TFLite layout) and numpy dtype."""

    name: str
    shape: tuple[int, ...]
    dtype: str


@dataclass(frozen=True)
class TfliteOp:
    """One builtin op: type name (``"CONV_2D"``), tensor indices (-1: absent optional
    input) and its builtin options as ``{schema field name: value}`` (``"StrideW"`` ...)."""

    type: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class TfliteGraph:
    """The first subgraph of a model as plain data."""

    tensors: list[TensorInfo]
    constants: dict[int, np.ndarray]
    ops: list[TfliteOp]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]

    def index(self, name: str) -> int:
        """Tensor index of ``name``; KeyError when absent."""
        for i, tensor in enumerate(self.tensors):
            if tensor.name == name:
                return i
        raise KeyError(f"no tensor named {name!r} in the graph")

    def producer(self, tensor: int) -> TfliteOp | None:
        """The op that writes ``tensor`` (None for inputs and constants)."""
        for op in self.ops:
            if tensor in op.outputs:
                return op
        return None


def _read_options(op) -> dict[str, Any]:
    """Builtin options of ``op`` as a dict of every scalar / vector schema field."""
    table = op.BuiltinOptions()
    if table is None or op.BuiltinOptionsType() == 0:
        return {}
    cls = getattr(tflite, _OPTION_CLASSES[op.BuiltinOptionsType()])
    options = cls()
    options.Init(table.Bytes, table.Pos)
    out: dict[str, Any] = {}
    for name, method in inspect.getmembers(cls, inspect.isfunction):
        if name.startswith("_") or name == "Init" or name.endswith(_SKIP_SUFFIXES):
            continue
        if len(inspect.signature(method).parameters) != 1:  # vector element getters take j
            continue
        value = method(options)
        if name.endswith("AsNumpy"):
            name, value = name[: -len("AsNumpy")], np.asarray(value).tolist() if value else []
        out[name] = value
    return out


def _buffer_data(model, data: bytes, buffer_index: int) -> bytes | None:
    """Raw bytes of a buffer (inline, or by offset for models stored past 2 GB)."""
    buffer = model.Buffers(buffer_index)
    if buffer is None:
        return None
    if buffer.Offset() > 1:
        return data[buffer.Offset() : buffer.Offset() + buffer.Size()]
    if buffer.DataLength() == 0:
        return None
    return buffer.DataAsNumpy().tobytes()


def _parse(data: bytes) -> TfliteGraph:
    model = tflite.Model.GetRootAs(data, 0)
    if model.SubgraphsLength() < 1:
        raise TfliteFormatError("the model has no subgraph")
    graph = model.Subgraphs(0)
    codes = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        # The schema moved builtin codes > 127 to a new field; older files use the old one.
        codes.append(max(code.DeprecatedBuiltinCode(), code.BuiltinCode()))
    tensors: list[TensorInfo] = []
    constants: dict[int, np.ndarray] = {}
    for i in range(graph.TensorsLength()):
        t = graph.Tensors(i)
        shape = tuple(int(s) for s in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        dtype = _NUMPY_TYPES.get(t.Type())
        tensors.append(TensorInfo(t.Name().decode(), shape, np.dtype(dtype).name if dtype else "?"))
        raw = _buffer_data(model, data, t.Buffer())
        if raw is not None:
            if dtype is None:
                raise TfliteFormatError(f"tensor {tensors[-1].name!r}: unsupported type {t.Type()}")
            constants[i] = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    ops = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        opcode = codes[op.OpcodeIndex()]
        name = tflite.BUILTIN_OPCODE2NAME.get(opcode, f"CUSTOM({opcode})")
        ops.append(
            TfliteOp(
                name,
                tuple(int(x) for x in op.InputsAsNumpy()),
                tuple(int(x) for x in op.OutputsAsNumpy()),
                _read_options(op),
            )
        )
    return TfliteGraph(
        tensors,
        constants,
        ops,
        tuple(int(x) for x in graph.InputsAsNumpy()),
        tuple(int(x) for x in graph.OutputsAsNumpy()),
    )


def fold_dequantize(graph: TfliteGraph) -> TfliteGraph:
    """Replace each DEQUANTIZE of a FLOAT16 constant by a float32 constant (returns a new
    graph; DEQUANTIZE ops of activations are kept)."""
    constants = dict(graph.constants)
    ops = []
    for op in graph.ops:
        src = op.inputs[0] if op.inputs else -1
        if op.type == "DEQUANTIZE" and src in constants:
            if constants[src].dtype != np.float16:
                raise TfliteFormatError(
                    f"DEQUANTIZE of {graph.tensors[src].name!r} ({constants[src].dtype}): only "
                    "float16 weights are supported (integer-quantised models are not)"
                )
            constants[op.outputs[0]] = constants[src].astype(np.float32)
            continue
        ops.append(op)
    return TfliteGraph(graph.tensors, constants, ops, graph.inputs, graph.outputs)


def read_tflite(source: str | Path | bytes) -> TfliteGraph:
    """Parse a TFLite model (a path or its bytes) with FLOAT16 weights folded to float32.

    Raises:
        OSError: the file cannot be read.
        TfliteFormatError: the bytes are not a TFLite flatbuffer (truncated, corrupt).
    """
    where = "<bytes>" if isinstance(source, bytes) else str(source)
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    if len(data) < 8 or not tflite.Model.ModelBufferHasIdentifier(data, 0):
        raise TfliteFormatError(f"{where}: not a TFLite model (no 'TFL3' identifier)")
    try:
        graph = _parse(data)
    except TfliteFormatError as exc:
        raise TfliteFormatError(f"{where}: {exc}") from exc
    except Exception as exc:  # the generated accessors fail in many ways on corrupt bytes
        raise TfliteFormatError(f"{where}: corrupt or truncated TFLite file ({exc!r})") from exc
    return fold_dequantize(graph)
