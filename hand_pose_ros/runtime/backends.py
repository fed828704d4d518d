"""Network runners shared by every network: (B, 3, S, S) float32 batch -> the network's
outputs as numpy (mesh estimator: joints, vertices, joint_confidence; detector: boxes,
scores, keypoints; ...). Each network passes its own output names and config reader."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from hand_pose_ros.runtime.export import INPUT_NAME
from hand_pose_ros.runtime.tensorrt_engine import TensorRTRunner

log = logging.getLogger(__name__)


class TorchRunner:
    """Eager PyTorch on CPU or CUDA."""

    def __init__(self, model, device: str = "cpu") -> None:
        import torch

        self._torch = torch
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)
        self.cfg = model.cfg

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            out = self.model(torch.from_numpy(batch).to(self.device))
        return tuple(t.float().cpu().numpy() for t in out)


class OnnxRunner:
    """ONNX Runtime (CPU; CUDA execution provider when asked for and installed)."""

    def __init__(self, onnx_path: str | Path, device: str = "cpu", threads: int | None = None,
                 *, read_config):  # fmt: skip
        """``read_config(metadata_map, source)`` gives the network's config (each network
        passes its own)."""
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise ValueError("device: CUDA asked for but onnxruntime has no CUDA provider")
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(str(onnx_path), opts, providers=providers)
        meta = self.session.get_modelmeta().custom_metadata_map
        self.cfg = read_config(meta, str(onnx_path))

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, ...]:
        return tuple(self.session.run(None, {INPUT_NAME: np.ascontiguousarray(batch)}))


def exported_runner(backend: str, onnx_path: str | Path, device: str, threads: int | None,
                    engine_dir: str | Path | None, output_names: tuple[str, ...],
                    read_config) -> OnnxRunner | TensorRTRunner:  # fmt: skip
    """The ``"onnx"`` (ONNX Runtime) or ``"tensorrt"`` (FP16 engine cached in ``engine_dir``)
    runner of an exported network with outputs ``output_names`` and config reader
    ``read_config(metadata_map, source)``; the torch backend runs the module itself
    (:class:`TorchRunner`)."""
    if backend == "onnx":
        return OnnxRunner(onnx_path, device, threads, read_config=read_config)
    if backend != "tensorrt":
        raise ValueError(f"backend: 'onnx' or 'tensorrt' for an exported network, got {backend!r}")
    if engine_dir is None:
        raise ValueError("engine_dir: the TensorRT engine cache folder is required")
    return TensorRTRunner(onnx_path, engine_dir, output_names=output_names,
                          read_config=read_config)  # fmt: skip

