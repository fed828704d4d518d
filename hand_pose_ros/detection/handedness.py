"""Crop-level handedness: is the hand in a tracker crop a left or a right hand?

In a whole frame a hand is often only 20-60 input pixels, and the side of a hand is in
fine detail: a right hand seen from the palm has the silhouette of a left hand seen from
the back, so only the palm or the back (creases, nails, knuckles, which fingers occlude
which) tells them apart. MediaPipe Hands decides the side in its landmark model, on the
crop; so do we.

The side is an XOR of two image properties, each uncorrelated with it: whether the thumb
side of the palm lies clockwise of the finger direction in the image (the 2D keypoints
say), and whether the palm or the back faces the camera (measured on 300 synthetic test
crops: ``left == clockwise XOR palm`` for 97 %, edge-on views the rest). A single
left-vs-right logit stayed at chance in our CPU runs, in the detector and in a crop
classifier alike: neither factor alone gives a gradient towards the XOR. The network
therefore learns the two factors (targets from the labelled keypoints and side) and
combines them, ``P(left) = P(cw) (1 - P(palm)) + (1 - P(cw)) P(palm)``
(:func:`~hand_pose_ros.detection.handedness_model.left_from_factors`).

``HandednessNet`` is a small CNN on the tracker's crop (the one the mesh estimator gets),
trained on our synthetic crops (``hand-teleop train handedness``); no weights of it ship,
as it did not learn the side on CPU budgets. What ships is the linear probe of
:mod:`hand_pose_ros.detection.handedness_probe` on the frozen mesh estimator's features
(``hand-teleop train handedness-probe``). :class:`HandednessClassifier` runs either with the
detector's backends (torch / ONNX / TensorRT) and feeds the tracker's handedness vote
(``HandTracker(side_probability=...)``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from hand_pose_ros.crop import roi_input
from hand_pose_ros.detection.handedness_config import HandednessConfig
from hand_pose_ros.detection.handedness_probe import (
    PROBE_FORMAT,
    HandednessProbeConfig,
    build_handedness_probe,
    default_probe_weights,
)
from hand_pose_ros.detection.postprocess import to_batch
from hand_pose_ros.detection.tracker import roi_from_box
from hand_pose_ros.runtime.backends import TorchRunner, exported_runner
from hand_pose_ros.runtime.export import cached_export, export_image_model, metadata_config_reader
from hand_pose_ros.runtime.weights import BACKENDS, default_cache_dir, seeded_network_with_weights

OUTPUT_NAMES: tuple[str, ...] = ("left_prob",)
METADATA_KEY = "handedness_config"


def create_handedness_net(cfg: HandednessConfig | None = None):
    """A randomly initialised :class:`~hand_pose_ros.detection.handedness_model.HandednessNet`."""
    from hand_pose_ros.detection.handedness_model import HandednessNet

    return HandednessNet(cfg or HandednessConfig())


def build_handedness_network(weights: str | Path | None, seed: int = 0):
    """The classifier of the manifest beside ``weights`` (else the default config) with
    those weights, or a seeded random init when ``weights`` is None. A probe manifest
    (``hand-teleop train handedness-probe``) gives the probe."""
    cfg = HandednessConfig()
    if weights is not None and Path(weights).with_suffix(".json").is_file():
        manifest = json.loads(Path(weights).with_suffix(".json").read_text())
        if manifest.get("format") == PROBE_FORMAT:
            return build_handedness_probe(weights)
        cfg = HandednessConfig.from_dict(manifest["config"])
    return seeded_network_with_weights(
        lambda: create_handedness_net(cfg), cfg.name, weights, seed,
        load=lambda model, state: model.load_state_dict(state),
        hint="hand-teleop train handedness",
    )  # fmt: skip


def handedness_config_from_dict(data: dict):
    """A :class:`HandednessConfig`, or a probe's config (it names an ``estimator``)."""
    if "estimator" in data:
        return HandednessProbeConfig.from_dict(data)
    return HandednessConfig.from_dict(data)


#: ``read_config(metadata_map, source) -> config`` of an ONNX export.
config_from_metadata = metadata_config_reader(METADATA_KEY, handedness_config_from_dict,
                                              "handedness")  # fmt: skip


class HandednessClassifier:
    """P(left hand) of hand crops, on the detector's backends.

    Args:
        weights: state dict path (a CNN's or a probe's, told by the manifest beside it),
            ``"default"`` for the shipped probe, None for a seeded random CNN (tests of the
            plumbing only).
        backend: ``"torch"``, ``"onnx"`` or ``"tensorrt"``.
        device: ``"cpu"`` or ``"cuda"``. threads: ONNX Runtime intra-op threads.
    """

    def __init__(self, weights: str | Path | None = "default", backend: str = "onnx",
                 device: str = "cpu", threads: int | None = None,
                 cache_dir: str | Path | None = None) -> None:  # fmt: skip
        if backend not in BACKENDS:
            raise ValueError(f"backend: one of {BACKENDS}, got {backend!r}")
        if weights == "default":
            weights = default_probe_weights()
        model = build_handedness_network(weights)
        if backend == "torch":
            self.runner = TorchRunner(model, device)
        else:
            cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
            onnx_path = cached_export(
                model, cache / "onnx", f"handedness_{model.cfg.name}",
                lambda m, path: export_image_model(m, path, OUTPUT_NAMES, METADATA_KEY),
            )  # fmt: skip
            self.runner = exported_runner(backend, onnx_path, device, threads, cache / "tensorrt",
                                          OUTPUT_NAMES, config_from_metadata)  # fmt: skip
        self.cfg = self.runner.cfg

    @classmethod
    def from_model(cls, model, device: str = "cpu") -> HandednessClassifier:
        """Wrap an in-memory torch network (e.g. at the end of training), same processing."""
        self = cls.__new__(cls)
        self.runner = TorchRunner(model, device)
        self.cfg = model.cfg
        return self

    def left_probability(self, crops: list[np.ndarray]) -> np.ndarray:
        """(S', S', 3) uint8 RGB hand crops (any square size) -> (N,) P(left) in [0, 1]."""
        import cv2

        if not crops:
            return np.zeros(0)
        s = self.cfg.input_size
        resized = []
        for crop in crops:
            crop = np.asarray(crop)
            if crop.dtype != np.uint8 or crop.ndim != 3 or crop.shape[2] != 3:
                raise ValueError(f"crop: (H, W, 3) uint8 RGB expected, got {crop.dtype} "
                                 f"{crop.shape}")  # fmt: skip
            interp = cv2.INTER_AREA if crop.shape[0] > s else cv2.INTER_LINEAR
            resized.append(cv2.resize(crop, (s, s), interpolation=interp))
        (prob,) = self.runner(to_batch(resized))
        return np.asarray(prob, np.float64).reshape(-1)


def crop_side_probability(classifier: HandednessClassifier, crop_scale: float):
    """A ``side_probability(image, detection) -> P(left)`` for
    :class:`~hand_pose_ros.detection.tracker.HandTracker`: the classifier on the square
    crop of ``crop_scale`` x the detection's box (the mesh estimator's crop)."""
    def side_probability(image: np.ndarray, det) -> float:
        roi = roi_from_box(det.box, crop_scale)
        crop, _ = roi_input(image, roi, classifier.cfg.input_size)
        return float(classifier.left_probability([crop])[0])

    return side_probability
