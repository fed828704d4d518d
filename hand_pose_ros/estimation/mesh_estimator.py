"""``MeshEstimator``: hand crop -> :class:`HandObservation`, with a chosen backend.

Backends share :mod:`prepost` exactly; only the network call differs:

- ``torch``: eager PyTorch (``device="cpu"`` or ``"cuda"``).
- ``onnx``: ONNX Runtime; the network is exported once to ``cache_dir`` (named by the
  model hash) unless ``onnx_path`` is given.
- ``tensorrt``: a TensorRT 10 FP16 engine built from that ONNX, cached by ONNX hash +
  GPU + TensorRT version.

Without ``weights`` the network is randomly initialised with a fixed seed (0): useful
for speed benchmarks and export tests only, and logged as a warning.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hand_pose_ros.estimation.camera import REFERENCE_BONE, REFERENCE_BONE_LENGTH_M
from hand_pose_ros.estimation.export import OUTPUT_NAMES, config_from_onnx_metadata, export_onnx
from hand_pose_ros.estimation.observation import HandObservation
from hand_pose_ros.estimation.prepost import postprocess, preprocess
from hand_pose_ros.estimation.registry import create_mesh_net
from hand_pose_ros.runtime.backends import TorchRunner, exported_runner
from hand_pose_ros.runtime.export import cached_export
from hand_pose_ros.runtime.weights import (
    BACKENDS,
    WEIGHTS_DIR,
    default_cache_dir,
    seeded_network_with_weights,
)

#: The mesh estimator variant whose weights ship in :data:`WEIGHTS_DIR`.
SHIPPED_ESTIMATOR = "cpu_effb0_w05_128"


def shipped_estimator_weights() -> tuple[str, Path]:
    """(variant, weights path) of the shipped mesh estimator (trained on our synthetic crops)."""
    return SHIPPED_ESTIMATOR, WEIGHTS_DIR / f"{SHIPPED_ESTIMATOR}.pt"


def build_network(model_name: str, weights: str | Path | None = None, seed: int = 0, **overrides):
    """Registered network with weights loaded from ``weights`` (a state dict) or seeded init."""
    return seeded_network_with_weights(
        lambda: create_mesh_net(model_name, **overrides), model_name, weights, seed,
        load=lambda model, state: model.load_state_dict(state.get("model", state)),
        hint="hand-teleop train meshnet",
    )  # fmt: skip


class MeshEstimator:
    """Hand mesh + keypoint estimator on right-hand canonical crops.

    Args:
        model_name: a registered variant (``hand_pose_ros.estimation.list_estimators()``).
        backend: ``"torch"``, ``"onnx"`` or ``"tensorrt"``.
        weights: state dict path, or None for a seeded random init (speed tests only).
        device: ``"cpu"`` or ``"cuda"`` (torch, onnx); TensorRT always runs on CUDA.
        onnx_path: use this exported file (onnx / tensorrt) instead of exporting.
        cache_dir: where exports and engines are cached (default :func:`default_cache_dir`).
        threads: ONNX Runtime intra-op threads (None: its default).
        bone, bone_length: reference bone for root depth estimation when no depth is given.
        **overrides: config overrides, e.g. ``num_vertices`` of the hand model in use.
    """

    def __init__(
        self,
        model_name: str,
        backend: str = "torch",
        weights: str | Path | None = None,
        device: str = "cpu",
        onnx_path: str | Path | None = None,
        cache_dir: str | Path | None = None,
        threads: int | None = None,
        bone: tuple[int, int] = REFERENCE_BONE,
        bone_length: float = REFERENCE_BONE_LENGTH_M,
        **overrides,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend {backend!r} unknown; valid: {', '.join(BACKENDS)}")
        self.model_name, self.backend = model_name, backend
        self.bone, self.bone_length = bone, bone_length
        cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        if backend == "torch":
            self.runner = TorchRunner(build_network(model_name, weights, **overrides), device)
        else:
            if onnx_path is None:
                onnx_path = self._export(model_name, weights, cache / "onnx", overrides)
            self.runner = exported_runner(backend, onnx_path, device, threads, cache / "tensorrt",
                                          OUTPUT_NAMES, config_from_onnx_metadata)  # fmt: skip
        self.cfg = self.runner.cfg

    @staticmethod
    def _export(model_name: str, weights, folder: Path, overrides: dict) -> Path:
        model = build_network(model_name, weights, **overrides)
        return cached_export(model, folder, model_name,
                             lambda m, path: export_onnx(m, path, dynamic_batch=True))  # fmt: skip

    def estimate(
        self, crop_rgb: np.ndarray, crop_k: np.ndarray, root_depth: float | None = None
    ) -> HandObservation:
        """One crop.

        Args:
            crop_rgb: (H, W, 3) uint8 RGB crop, right-hand canonical (mirror left hands first).
            crop_k: (3, 3) intrinsics of the crop.
            root_depth: wrist depth in metres; None estimates it from the reference bone.
        """
        return self.estimate_batch([crop_rgb], [crop_k], [root_depth])[0]

    def estimate_batch(
        self,
        crops: list[np.ndarray],
        crop_ks: list[np.ndarray] | np.ndarray,
        root_depths: list[float | None] | None = None,
    ) -> list[HandObservation]:
        """Several crops in one network call; arguments as :meth:`estimate`, one per crop."""
        if len(crops) != len(crop_ks):
            raise ValueError(f"crop_ks: {len(crop_ks)} given for {len(crops)} crops")
        if root_depths is None:
            root_depths = [None] * len(crops)
        if len(root_depths) != len(crops):
            raise ValueError(f"root_depths: {len(root_depths)} given for {len(crops)} crops")
        joints, vertices, conf = self.run_network(preprocess(crops, self.cfg.input_size))
        return [
            postprocess(
                joints[b],
                vertices[b],
                conf[b],
                np.asarray(crops[b]).shape[:2],
                np.asarray(crop_ks[b]),
                self.cfg,
                root_depths[b],
                self.bone,
                self.bone_length,
            )
            for b in range(len(crops))
        ]

    def run_network(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(B, 3, S, S) preprocessed batch -> lixel joints, vertices, joint confidence."""
        return self.runner(batch)
