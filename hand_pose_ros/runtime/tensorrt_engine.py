"""TensorRT 10 engine builder and runner (FP16), from the ONNX export.

For Jetson Orin (TensorRT from JetPack) and desktop GPUs (NVIDIA's ``tensorrt`` wheels).
Not installable on the CPU development machines: everything imports ``tensorrt``
lazily, and the tests skip when it is absent.

Engines are cached as ``<cache_dir>/<onnx sha256[:16]>_<gpu>_trt<version>_<fp16|fp32>.engine``:
an engine is only valid for the exact network, GPU model and TensorRT version. The
engine has one optimisation profile over the batch axis (1..``max_batch``, optimised
for 1) when the ONNX has a dynamic batch.

I/O uses torch CUDA tensors (TensorRT 10 name-based API: ``set_input_shape``,
``set_tensor_address``, ``execute_async_v3``), so no pycuda is needed.
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

import numpy as np

from hand_pose_ros.runtime.export import INPUT_NAME

log = logging.getLogger(__name__)


def _import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise ImportError(
            "tensorrt is not installed: use JetPack's TensorRT on Jetson or "
            "`pip install tensorrt` (NVIDIA GPU, TensorRT 10) on a desktop"
        ) from exc
    return trt


def engine_path(onnx_path: str | Path, cache_dir: str | Path, gpu_name: str, trt_version: str,
                fp16: bool = True) -> Path:  # fmt: skip
    """Cache file of the engine for this ONNX file, GPU and TensorRT version."""
    digest = hashlib.sha256(Path(onnx_path).read_bytes()).hexdigest()[:16]
    gpu = re.sub(r"[^A-Za-z0-9]+", "-", gpu_name).strip("-")
    return Path(cache_dir) / f"{digest}_{gpu}_trt{trt_version}_{'fp16' if fp16 else 'fp32'}.engine"


def build_engine(
    onnx_path: str | Path,
    cache_dir: str | Path,
    fp16: bool = True,
    max_batch: int = 8,
    workspace_gib: float = 2.0,
) -> Path:
    """Build (or reuse from the cache) a serialized TensorRT engine for ``onnx_path``.

    Returns:
        Path of the ``.engine`` file.

    Raises:
        ImportError: tensorrt or a CUDA torch is absent.
        RuntimeError: the ONNX parser or the builder failed (parser errors included).
    """
    import torch

    trt = _import_tensorrt()
    if not torch.cuda.is_available():
        raise ImportError("TensorRT engines need a CUDA GPU and a CUDA build of torch")
    out = engine_path(onnx_path, cache_dir, torch.cuda.get_device_name(0), trt.__version__, fp16)
    if out.is_file():
        log.info("TensorRT engine from cache: %s", out)
        return out
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    shape = tuple(network.get_input(0).shape)
    if shape[0] == -1:  # dynamic batch
        profile = builder.create_optimization_profile()
        rest = shape[1:]
        profile.set_shape(INPUT_NAME, (1, *rest), (1, *rest), (max_batch, *rest))
        config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(bytes(serialized))
    log.info("TensorRT engine built: %s", out)
    return out


class TensorRTRunner:
    """Runs a cached engine: (B, 3, S, S) float32 numpy -> the outputs as numpy.

    ``output_names`` and ``read_config`` (ONNX metadata map, source -> config) are the
    network's own.
    """

    def __init__(self, onnx_path: str | Path, cache_dir: str | Path, *,
                 output_names: tuple[str, ...], read_config, fp16: bool = True,
                 max_batch: int = 8) -> None:  # fmt: skip
        import onnx
        import torch

        trt = _import_tensorrt()
        self._torch = torch
        meta = {
            p.key: p.value
            for p in onnx.load(str(onnx_path), load_external_data=False).metadata_props
        }
        self.cfg = read_config(meta, str(onnx_path))
        self.output_names = tuple(output_names)
        path = build_engine(onnx_path, cache_dir, fp16=fp16, max_batch=max_batch)
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise RuntimeError(f"could not deserialize {path}; delete it to rebuild")
        self.context = self.engine.create_execution_context()
        self.stream = torch.cuda.Stream()

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, ...]:
        torch = self._torch
        image = torch.from_numpy(np.ascontiguousarray(batch)).cuda()
        self.context.set_input_shape(INPUT_NAME, tuple(image.shape))
        self.context.set_tensor_address(INPUT_NAME, image.data_ptr())
        outputs = {}
        for name in self.output_names:
            shape = tuple(self.context.get_tensor_shape(name))
            outputs[name] = torch.empty(shape, dtype=torch.float32, device="cuda")
            self.context.set_tensor_address(name, outputs[name].data_ptr())
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise RuntimeError("TensorRT execution failed")
        self.stream.synchronize()
        return tuple(outputs[n].cpu().numpy() for n in self.output_names)
