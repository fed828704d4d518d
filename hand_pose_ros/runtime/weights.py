"""Shipped network weights, the export/engine cache and the weight loader shared by every
network (mesh estimator, detector, handedness)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

#: Backends of our networks (:mod:`hand_pose_ros.runtime.backends`).
BACKENDS: tuple[str, ...] = ("torch", "onnx", "tensorrt")

#: Where the package's trained network weights ship (estimator, detector, handedness).
WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"


def default_cache_dir() -> Path:
    """``$HAND_POSE_ROS_CACHE`` or ``~/.cache/hand_pose_ros`` (ONNX exports, TensorRT engines)."""
    return Path(os.environ.get("HAND_POSE_ROS_CACHE", Path.home() / ".cache" / "hand_pose_ros"))


def seeded_network_with_weights(create, model_name: str, weights, seed: int, load, hint: str):
    """``create()`` under a fixed torch seed, then ``load(model, state)`` of the state dict at
    ``weights`` (fp16 entries become fp32); None keeps the seeded init (logged)."""
    import torch

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = create()
    if weights is None:
        log.warning("%s: no weights given, randomly initialised (seed %d)", model_name, seed)
        return model.eval()
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"weights not found: {path} ({hint})")
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k: v.float() if getattr(v, "is_floating_point", lambda: False)() else v
             for k, v in state.items()}  # fmt: skip
    try:
        load(model, state)
    except RuntimeError as exc:
        raise ValueError(f"{path}: weights do not match {model_name}: {exc}") from exc
    return model.eval()
