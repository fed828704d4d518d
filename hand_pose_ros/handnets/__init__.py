"""Real-image-trained hand networks (palm detector, 21-keypoint hand landmarks) on our runtimes.

The networks are Google's, shipped under Apache-2.0 as TFLite files in the
``mediapipe==0.10.21`` wheel; this package reads those files (``tflite`` flatbuffer
parser), rebuilds them as torch modules with fp32 trainable parameters, exports ONNX and
runs them on ONNX Runtime, torch or TensorRT (``network_runner``). See docs/handnets.md.

Why convert at first use into the cache rather than commit converted weights: it keeps
about 12 MB of derived binaries out of git; the licence text travels with the wheel the
user installs (and is written as LICENSE + NOTICE beside every export); the sha256 pin of
each source file plus a deterministic converter make the result the same everywhere, and
the cache records the source sha256 and converter version so a stale file is rebuilt.

Networks (``list_networks()``) and outputs, in order:

- ``landmark_full`` / ``landmark_lite`` (input 224): ``landmarks`` (B, 21, 3) pixels of
  the input (x, y, z), ``presence`` (B,) probability, ``handedness`` (B,) probability as
  the network gives it (mirrored-image convention, not flipped here), ``world_landmarks``
  (B, 21, 3) metres.
- ``palm_full`` / ``palm_lite`` (input 192): ``palm_regressors`` (B, 2016, 18) raw,
  anchor-relative pixels; ``palm_logits`` (B, 2016) raw score logits.

Inputs are (B, 3, S, S) float32 RGB in [0, 1], NCHW. The torch module
(:func:`~hand_pose_ros.handnets.converter.build_torch_network`, imported from its module
so that this package does not import torch) also returns intermediate feature maps by
TFLite tensor name (``features``, ``feature_maps``).
"""

from hand_pose_ros.handnets.config import CONVERTER_VERSION, HandNetConfig
from hand_pose_ros.handnets.export import (
    cached_onnx,
    cached_source_onnx,
    export_network_onnx,
    read_handnet_config,
)
from hand_pose_ros.handnets.licence import write_notice
from hand_pose_ros.handnets.registry import (
    HandNetSpec,
    OutputSpec,
    Sha256MismatchError,
    TfliteSource,
    WheelNotInstalledError,
    get_spec,
    list_networks,
    locate_tflite,
)
from hand_pose_ros.handnets.runner import BACKENDS, HandNetRunner, network_runner

__all__ = [
    "BACKENDS",
    "CONVERTER_VERSION",
    "HandNetConfig",
    "HandNetRunner",
    "HandNetSpec",
    "OutputSpec",
    "Sha256MismatchError",
    "TfliteSource",
    "WheelNotInstalledError",
    "cached_onnx",
    "cached_source_onnx",
    "export_network_onnx",
    "get_spec",
    "list_networks",
    "locate_tflite",
    "network_runner",
    "read_handnet_config",
    "write_notice",
]
