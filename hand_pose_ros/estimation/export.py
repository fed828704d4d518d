"""ONNX export of the mesh estimator network.

The graph maps ``image`` (B, 3, S, S) float32, ImageNet-normalised, to ``joints``
(B, J, 3), ``vertices`` (B, V, 3) (lixel units) and ``joint_confidence`` (B, J); see
:mod:`~hand_pose_ros.estimation.prepost` for the processing around it. The estimator
config is stored in the ONNX metadata (key ``estimator_config``) so a backend can decode
outputs from the file alone (:mod:`hand_pose_ros.runtime.export`).
"""

from __future__ import annotations

import json
from pathlib import Path

from hand_pose_ros.estimation.config import EstimatorConfig
from hand_pose_ros.runtime.export import DEFAULT_OPSET, export_image_model

OUTPUT_NAMES = ("joints", "vertices", "joint_confidence")
METADATA_KEY = "estimator_config"


def export_onnx(
    model, path: str | Path, dynamic_batch: bool = True, opset: int = DEFAULT_OPSET
) -> Path:
    """Export ``model`` (an :class:`~hand_pose_ros.estimation.i2l.I2LMeshNet`) to ONNX.

    Args:
        model: the network (exported in eval mode, on CPU).
        path: output ``.onnx`` file (parent folders are created).
        dynamic_batch: batch axis symbolic (``batch``); else fixed at 1.
        opset: ONNX opset, >= 17.

    Returns:
        The written path.
    """
    return export_image_model(model, path, OUTPUT_NAMES, METADATA_KEY, dynamic_batch, opset)


def config_from_onnx_metadata(metadata: dict[str, str], source: str) -> EstimatorConfig:
    """EstimatorConfig stored by :func:`export_onnx` (``metadata``: the custom metadata map)."""
    if METADATA_KEY not in metadata:
        raise ValueError(
            f"{source}: no '{METADATA_KEY}' metadata; re-export with hand-teleop export"
        )
    return EstimatorConfig(**json.loads(metadata[METADATA_KEY]))
