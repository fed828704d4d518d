"""``HandDetector``: RGB frame -> hand detections, with the mesh estimator's backends.

Backends (as :class:`~hand_pose_ros.estimation.mesh_estimator.MeshEstimator`): ``torch``
(eager, CPU or CUDA), ``onnx`` (ONNX Runtime; exported once to the cache, named by the
model hash) and ``tensorrt`` (FP16 engine built from that ONNX). Pre- and post-processing
(:mod:`~hand_pose_ros.detection.postprocess`) are shared; only the network call differs.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from hand_pose_ros.crop import letterbox_input, roi_input
from hand_pose_ros.detection.config import OUTPUT_NAMES, DetectorConfig
from hand_pose_ros.detection.postprocess import select_detections, to_batch
from hand_pose_ros.runtime.backends import TorchRunner, exported_runner
from hand_pose_ros.runtime.export import cached_export, export_image_model, metadata_config_reader
from hand_pose_ros.runtime.weights import (
    BACKENDS,
    WEIGHTS_DIR,
    default_cache_dir,
    seeded_network_with_weights,
)

log = logging.getLogger(__name__)

METADATA_KEY = "detector_config"
#: The shipped detector and its weights (trained on our synthetic frames only).
DEFAULT_DETECTOR = "far_handnet_cpu_256"


def default_weights(model_name: str = DEFAULT_DETECTOR) -> Path:
    """Path of the shipped weights of ``model_name`` (may not exist for every variant)."""
    return WEIGHTS_DIR / f"detector_{model_name}.pt"


def manifest_config(weights: str | Path | None) -> DetectorConfig | None:
    """The config in the ``.json`` manifest beside ``weights`` (None if there is none): it
    describes ablation variants exactly (options switched off at training time)."""
    if weights is None:
        return None
    path = Path(weights).with_suffix(".json")
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return DetectorConfig.from_dict(data["config"]) if "config" in data else None


def build_detector_network(model_name: str, weights: str | Path | None = None, seed: int = 0,
                           **overrides):  # fmt: skip
    """Registered detector with weights (state dict; the RLE flow may be absent) or seeded init.
    A manifest beside the weights gives the exact config (ablation variants)."""
    from hand_pose_ros.detection.model import create_detector

    spec = manifest_config(weights) or model_name
    return seeded_network_with_weights(
        lambda: create_detector(spec, **overrides), model_name, weights, seed,
        load=lambda model, state: model.load_weights(state), hint="hand-teleop train detector",
    )  # fmt: skip


def export_detector_onnx(model, path: str | Path, dynamic_batch: bool = True,
                         opset: int = 17) -> Path:  # fmt: skip
    """ONNX graph ``image`` (B, 3, S, S) in [0, 1] -> ``boxes``, ``scores``, ``keypoints``,
    with the config in the metadata (key ``detector_config``)."""
    return export_image_model(model, path, OUTPUT_NAMES, METADATA_KEY, dynamic_batch, opset)


#: ``read_config(metadata_map, source) -> DetectorConfig`` of an ONNX export.
config_from_metadata = metadata_config_reader(METADATA_KEY, DetectorConfig.from_dict, "detector")


class HandDetector:
    """Full-frame (or region-of-interest) hand detector.

    Args:
        model_name: a registered variant (``hand_pose_ros.detection.list_detectors()``).
        backend: ``"torch"``, ``"onnx"`` or ``"tensorrt"``.
        weights: state dict path; ``"default"`` for the shipped weights; None for a seeded
            random init (speed tests only).
        device: ``"cpu"`` or ``"cuda"``.
        onnx_path: use this exported file (onnx / tensorrt) instead of exporting.
        cache_dir: ONNX exports and TensorRT engines (default: the estimator's cache).
        threads: ONNX Runtime intra-op threads.
        score_threshold: minimum hand probability. iou_threshold: NMS overlap.
        max_detections: hands returned per call at most.
    """

    def __init__(
        self,
        model_name: str = DEFAULT_DETECTOR,
        backend: str = "torch",
        weights: str | Path | None = "default",
        device: str = "cpu",
        onnx_path: str | Path | None = None,
        cache_dir: str | Path | None = None,
        threads: int | None = None,
        score_threshold: float = 0.3,
        iou_threshold: float = 0.5,
        max_detections: int = 4,
    ) -> None:
        self._setup(model_name, backend, score_threshold, iou_threshold, max_detections)
        if weights == "default":
            weights = default_weights(model_name)
        cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        if backend == "torch":
            self.runner = TorchRunner(build_detector_network(model_name, weights), device)
        else:
            if onnx_path is None:
                onnx_path = self._export(model_name, weights, cache / "onnx")
            self.runner = exported_runner(backend, onnx_path, device, threads, cache / "tensorrt",
                                          OUTPUT_NAMES, config_from_metadata)  # fmt: skip
        self.cfg: DetectorConfig = self.runner.cfg

    @classmethod
    def from_model(cls, model, device: str = "cpu", **kwargs) -> HandDetector:
        """Wrap an in-memory torch network (e.g. during training) with the same processing."""
        self = cls.__new__(cls)
        self._setup(getattr(model.cfg, "name", "custom"), "torch", **kwargs)
        self.runner = TorchRunner(model, device)
        self.cfg = model.cfg
        return self

    def _setup(self, model_name: str, backend: str, score_threshold: float = 0.3,
               iou_threshold: float = 0.5, max_detections: int = 4) -> None:  # fmt: skip
        if backend not in BACKENDS:
            raise ValueError(f"backend {backend!r} unknown; valid: {', '.join(BACKENDS)}")
        if not 0.0 <= score_threshold <= 1.0 or not 0.0 < iou_threshold <= 1.0:
            raise ValueError("score_threshold in [0, 1] and iou_threshold in (0, 1] expected")
        if max_detections < 1:
            raise ValueError(f"max_detections: >= 1 expected, got {max_detections}")
        self.model_name, self.backend = model_name, backend
        self.score_threshold, self.iou_threshold = score_threshold, iou_threshold
        self.max_detections = max_detections

    @staticmethod
    def _export(model_name: str, weights, folder: Path) -> Path:
        model = build_detector_network(model_name, weights)
        return cached_export(model, folder, f"detector_{model_name}", export_detector_onnx)

    def run_network(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(B, 3, S, S) float32 in [0, 1] -> boxes, scores, keypoints (input pixels)."""
        return self.runner(batch)

    def detect(self, image: np.ndarray, roi: np.ndarray | None = None) -> list:
        """Hands in an RGB frame (or in the square ``roi``, xyxy frame pixels), best first,
        as :class:`~hand_pose_ros.detection.postprocess.Detection` in frame pixels."""

        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image: (H, W, 3) uint8 RGB expected, got {image.shape} "
                             f"{image.dtype}")  # fmt: skip
        size = self.cfg.input_size
        if roi is None:
            inp, warp = letterbox_input(image, size)
        else:
            inp, warp = roi_input(image, np.asarray(roi, np.float64), size)
        boxes, scores, kpts = self.run_network(to_batch([inp]))
        return select_detections(boxes[0], scores[0], kpts[0], warp, self.score_threshold,
                                 self.iou_threshold, self.max_detections)  # fmt: skip

    __call__ = detect
