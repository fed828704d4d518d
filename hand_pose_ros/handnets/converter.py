"""A parsed TFLite graph -> a torch ``nn.Module`` with fp32 trainable parameters.

The module runs NCHW: input (B, 3, S, S) float32 RGB in [0, 1]; rank-4 activations are
NCHW, others keep TFLite's layout. Outputs follow the registry's contract (names, order,
per-sample shapes); :meth:`TfliteNet.features` returns intermediate maps by TFLite name.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from torch import nn

from hand_pose_ros.handnets._ops import build_op
from hand_pose_ros.handnets.config import HandNetConfig
from hand_pose_ros.handnets.registry import OutputSpec, get_spec, locate_tflite
from hand_pose_ros.handnets.tflite_reader import TfliteGraph, read_tflite


def match_outputs(graph: TfliteGraph, outputs: Sequence[OutputSpec]) -> list[int]:
    """TFLite output tensor index of each spec, identified by its marker (in the output's
    name or in a name of its producing op's inputs) and checked by element count.

    Raises:
        ValueError: a spec matches no output or several, or the element count differs.
    """
    found = []
    for spec in outputs:
        hits = []
        for index in graph.outputs:
            producer = graph.producer(index)
            names = [graph.tensors[index].name]
            names += [
                graph.tensors[i].name for i in (producer.inputs if producer else ()) if i >= 0
            ]
            if any(spec.marker in n for n in names):
                hits.append(index)
        if len(hits) != 1:
            raise ValueError(
                f"output {spec.name!r}: {len(hits)} TFLite outputs carry the marker "
                f"{spec.marker!r}; this is not the expected network"
            )
        shape = graph.tensors[hits[0]].shape
        per_sample = 1
        for s in spec.shape:
            per_sample *= s
        if shape[0] != 1 or _numel(shape[1:]) != per_sample:
            raise ValueError(
                f"output {spec.name!r}: TFLite shape {shape} does not hold "
                f"(1, {', '.join(map(str, spec.shape))})"
            )
        found.append(hits[0])
    return found


def _numel(shape: Iterable[int]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


class TfliteNet(nn.Module):
    """A TFLite graph rebuilt as torch ops, run in the file's (topological) op order.

    Args:
        graph: the parsed graph (FLOAT16 weights folded).
        outputs: the output contract (registry order).
        cfg: the network's config (name, input size, source sha256).
    """

    def __init__(
        self, graph: TfliteGraph, outputs: Sequence[OutputSpec], cfg: HandNetConfig
    ) -> None:
        super().__init__()
        if len(graph.inputs) != 1:
            raise ValueError(f"expected one input tensor, got {len(graph.inputs)}")
        self.cfg = cfg
        (self._input,) = graph.inputs
        shape = graph.tensors[self._input].shape
        if shape != (1, cfg.input_size, cfg.input_size, 3):
            raise ValueError(
                f"input shape {shape}: expected (1, {cfg.input_size}, {cfg.input_size}, 3) NHWC"
            )
        self.ops = nn.ModuleList(build_op(op, graph) for op in graph.ops)
        self._op_inputs = [
            tuple(i for i in op.inputs if i >= 0 and i not in graph.constants) for op in graph.ops
        ]
        self._op_outputs = [op.outputs[0] for op in graph.ops]
        if any(len(op.outputs) != 1 for op in graph.ops):
            raise ValueError("ops with several outputs are not supported")
        self._outputs = match_outputs(graph, outputs)
        self._output_shapes = [spec.shape for spec in outputs]
        self.tensor_names = [t.name for t in graph.tensors]
        self._tensor_shapes = [t.shape for t in graph.tensors]
        self._index = {name: i for i, name in enumerate(self.tensor_names)}

    def _run(self, x: torch.Tensor, wanted: set[int]) -> dict[int, torch.Tensor]:
        """Run ops until every tensor in ``wanted`` is computed."""
        env = {self._input: x}
        missing = set(wanted) - env.keys()
        for op, inputs, out in zip(self.ops, self._op_inputs, self._op_outputs, strict=True):
            if not missing:
                break
            env[out] = op(*(env[i] for i in inputs))
            missing.discard(out)
        return env

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Args:
            image: (B, 3, S, S) float32 RGB in [0, 1].

        Returns:
            The outputs in ``cfg.output_names`` order, each (B, *per-sample shape).
        """
        env = self._run(image, set(self._outputs))
        return tuple(
            env[i].reshape(-1, *shape)
            for i, shape in zip(self._outputs, self._output_shapes, strict=True)
        )

    def features(self, image: torch.Tensor, names: Sequence[str]) -> dict[str, torch.Tensor]:
        """Intermediate tensors by TFLite name (rank 4: NCHW), running only as far as needed.

        Args:
            image: (B, 3, S, S) float32 RGB in [0, 1].
            names: TFLite tensor names (see :meth:`feature_maps`).
        """
        unknown = [n for n in names if n not in self._index]
        if unknown:
            raise KeyError(f"unknown tensor names {unknown}; see feature_maps()")
        env = self._run(image, {self._index[n] for n in names})
        return {n: env[self._index[n]] for n in names}

    def forward_with_features(self, image: torch.Tensor, names: Sequence[str]
                              ) -> tuple[tuple[torch.Tensor, ...], dict[str, torch.Tensor]]:
        """:meth:`forward`'s outputs and :meth:`features` of ``names`` from one pass."""
        unknown = [n for n in names if n not in self._index]
        if unknown:
            raise KeyError(f"unknown tensor names {unknown}; see feature_maps()")
        env = self._run(image, set(self._outputs) | {self._index[n] for n in names})
        outs = tuple(env[i].reshape(-1, *shape)
                     for i, shape in zip(self._outputs, self._output_shapes, strict=True))
        return outs, {n: env[self._index[n]] for n in names}

    def feature_maps(self) -> list[tuple[str, tuple[int, int, int]]]:
        """(TFLite name, per-sample NCHW shape (C, H, W)) of every rank-4 op output, in run
        order: candidates for :meth:`features` (e.g. 14x14 and 28x28 maps for a new head)."""
        maps = []
        for out in self._op_outputs:
            shape = self._tensor_shapes[out]
            if len(shape) == 4:
                maps.append((self.tensor_names[out], (shape[3], shape[1], shape[2])))
        return maps


def convert_graph(graph: TfliteGraph, name: str, source_sha256: str) -> TfliteNet:
    """The registered network ``name`` built from ``graph`` (eval mode, CPU, fp32).

    Raises:
        UnsupportedOpError: the graph has an op the converter cannot rebuild (named).
        ValueError: inputs / outputs do not match the registry's contract.
    """
    spec = get_spec(name)
    cfg = HandNetConfig(name, spec.input_size, spec.output_names, source_sha256)
    return TfliteNet(graph, spec.outputs, cfg).eval()


def build_torch_network(
    name: str, tflite_path: str | Path | None = None, allow_sha_mismatch: bool = False
) -> TfliteNet:
    """Convert the network ``name`` from the installed wheel (or ``tflite_path``) to torch.

    See :func:`~hand_pose_ros.handnets.registry.locate_tflite` for the checks and errors.
    """
    source = locate_tflite(name, tflite_path, allow_sha_mismatch)
    return convert_graph(read_tflite(source.path), name, source.sha256)
