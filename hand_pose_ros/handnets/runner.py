"""One factory for the hand networks on every backend (torch, ONNX Runtime, TensorRT),
built on the estimator runtime's runners."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hand_pose_ros.handnets.config import HandNetConfig
from hand_pose_ros.handnets.export import cached_source_onnx, read_handnet_config
from hand_pose_ros.handnets.registry import get_spec, locate_tflite
from hand_pose_ros.runtime.backends import OnnxRunner, TorchRunner, exported_runner
from hand_pose_ros.runtime.weights import BACKENDS, default_cache_dir


class HandNetRunner:
    """A converted network on one backend: ``runner(batch)`` -> outputs as numpy.

    Attributes:
        name: registered network name.
        backend: ``"onnx"``, ``"torch"`` or ``"tensorrt"``.
        cfg: the network's config (source sha256, converter version).
        input_size: side S of the (B, 3, S, S) input, pixels.
        output_names: names of the returned arrays, in order.
    """

    def __init__(self, name: str, backend: str, runner, cfg: HandNetConfig) -> None:
        self.name, self.backend, self._runner, self.cfg = name, backend, runner, cfg
        self.input_size = cfg.input_size
        self.output_names = cfg.output_names

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, ...]:
        """Args:
            batch: (B, 3, S, S) float32 RGB in [0, 1], NCHW.

        Returns:
            landmark nets: ``landmarks`` (B, 21, 3) pixels of the input, ``presence`` (B,),
            ``handedness`` (B,) (raw, mirrored-image convention), ``world_landmarks``
            (B, 21, 3) metres; palm nets: ``palm_regressors`` (B, 2016, 18),
            ``palm_logits`` (B, 2016).
        """
        s = self.input_size
        if not isinstance(batch, np.ndarray) or batch.dtype != np.float32:
            raise ValueError(
                f"{self.name}: batch must be a float32 numpy array, got "
                f"{getattr(batch, 'dtype', type(batch).__name__)}"
            )
        if batch.ndim != 4 or batch.shape[1:] != (3, s, s) or batch.shape[0] < 1:
            raise ValueError(f"{self.name}: batch must be (B, 3, {s}, {s}), got {batch.shape}")
        return tuple(self._runner(batch))


def network_runner(
    name: str,
    backend: str = "onnx",
    device: str = "cpu",
    threads: int | None = 1,
    tflite_path: str | Path | None = None,
    allow_sha_mismatch: bool = False,
    cache_dir: str | Path | None = None,
) -> HandNetRunner:
    """The runner of a registered hand network, converted on first use into the cache.

    Args:
        name: ``palm_full``, ``palm_lite``, ``landmark_full`` or ``landmark_lite``.
        backend: ``"onnx"`` (ONNX Runtime; CUDA provider with ``device="cuda"``),
            ``"torch"`` (the converted module) or ``"tensorrt"`` (FP16 engine, cached).
        device: ``"cpu"`` or ``"cuda[:i]"``.
        threads: intra-op threads (ONNX Runtime); for torch this sets the process-wide
            ``torch.set_num_threads`` (torch has no per-module setting); None: library default.
        tflite_path: convert this file instead of the installed wheel's.
        allow_sha_mismatch: accept a ``tflite_path`` that is not the pinned file.
        cache_dir: cache root (default :func:`default_cache_dir`).

    Raises:
        ValueError: unknown name or backend.
        WheelNotInstalledError, FileNotFoundError, OSError, Sha256MismatchError: see
            :func:`~hand_pose_ros.handnets.registry.locate_tflite`.
    """
    spec = get_spec(name)
    if backend not in BACKENDS:
        raise ValueError(f"backend: one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "torch":
        return _torch_runner(name, device, threads, tflite_path, allow_sha_mismatch)
    source = locate_tflite(name, tflite_path, allow_sha_mismatch)
    onnx_path = cached_source_onnx(source, cache_dir)
    read_config = _config_guard(name, source.sha256)
    if backend == "onnx":
        runner = OnnxRunner(onnx_path, device, threads, read_config=read_config)
    else:
        cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        runner = exported_runner(
            "tensorrt",
            onnx_path,
            device,
            threads,
            cache / "tensorrt",
            output_names=spec.output_names,
            read_config=read_config,
        )
    return HandNetRunner(name, backend, runner, runner.cfg)


def _torch_runner(
    name: str, device: str, threads: int | None, tflite_path: str | Path | None,
    allow_sha_mismatch: bool,
) -> HandNetRunner:  # fmt: skip
    """The converted torch module of ``name`` (``threads`` sets torch's process-wide count)."""
    import torch

    from hand_pose_ros.handnets.converter import build_torch_network

    if threads:
        torch.set_num_threads(threads)
    model = build_torch_network(name, tflite_path, allow_sha_mismatch)
    return HandNetRunner(name, "torch", TorchRunner(model, device), model.cfg)


def _config_guard(name: str, source_sha: str):
    """``read_config(metadata, where)`` of an export that refuses one converted from another
    network or another ``.tflite`` file (guard against a swapped file in the cache)."""

    def read_config(metadata: dict[str, str], where: str) -> HandNetConfig:
        cfg = read_handnet_config(metadata, where)
        if cfg.name != name or cfg.source_sha256 != source_sha:
            raise ValueError(
                f"{where}: holds {cfg.name} from {cfg.source_sha256[:16]}..., "
                f"expected {name} from {source_sha[:16]}...; delete it to rebuild"
            )
        return cfg

    return read_config
