"""ONNX export of an estimator network and the model hash that names caches.

The graph maps ``image`` (B, 3, S, S) float32, ImageNet-normalised, to ``joints``
(B, J, 3), ``vertices`` (B, V, 3) (lixel units) and ``joint_confidence`` (B, J); see
:mod:`~hand_pose_ros.estimation.runtime.prepost` for the processing around it. The
estimator config is stored in the ONNX metadata (key ``estimator_config``) so a backend
can decode outputs from the file alone.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from hand_pose_ros.estimation.config import EstimatorConfig

log = logging.getLogger(__name__)

INPUT_NAME = "image"
OUTPUT_NAMES = ("joints", "vertices", "joint_confidence")
METADATA_KEY = "estimator_config"
DEFAULT_OPSET = 17


def model_hash(model) -> str:
    """sha256 (16 hex) of a network's config and parameters/buffers: names caches."""
    h = hashlib.sha256(json.dumps(model.cfg.to_dict(), sort_keys=True).encode())
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


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


def export_image_model(
    model, path: str | Path, output_names: tuple[str, ...], metadata_key: str,
    dynamic_batch: bool = True, opset: int = DEFAULT_OPSET,
) -> Path:  # fmt: skip
    """Export a square-image network (input ``image`` (B, 3, S, S), S = ``model.cfg.input_size``)
    with ``model.cfg.to_dict()`` stored as JSON under ``metadata_key``."""
    import onnx
    import torch

    if opset < 17:
        raise ValueError(f"opset: must be >= 17, got {opset}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().cpu()
    s = model.cfg.input_size
    dummy = torch.zeros(1, 3, s, s)
    axes = None
    if dynamic_batch:
        axes = {n: {0: "batch"} for n in (INPUT_NAME, *output_names)}
    with torch.no_grad():
        torch.onnx.export(
            model,
            (dummy,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=list(output_names),
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,
        )
    proto = onnx.load(str(path))
    entry = proto.metadata_props.add()
    entry.key, entry.value = metadata_key, json.dumps(model.cfg.to_dict())
    onnx.save(proto, str(path))
    log.info(
        "exported %s (%s batch, opset %d)", path, "dynamic" if dynamic_batch else "fixed", opset
    )
    return path


def config_from_onnx_metadata(metadata: dict[str, str], source: str) -> EstimatorConfig:
    """EstimatorConfig stored by :func:`export_onnx` (``metadata``: the custom metadata map)."""
    if METADATA_KEY not in metadata:
        raise ValueError(
            f"{source}: no '{METADATA_KEY}' metadata; re-export with hand-teleop export"
        )
    return EstimatorConfig(**json.loads(metadata[METADATA_KEY]))


def metadata_config_reader(key: str, from_dict, what: str):
    """``read_config(metadata_map, source)`` for a network exported by
    :func:`export_image_model` under ``key``: ``from_dict`` of the stored JSON; ValueError
    naming ``what`` the export should have been when the key is missing."""

    def read_config(metadata: dict[str, str], source: str):
        if key not in metadata:
            raise ValueError(f"{source}: no '{key}' metadata: not a {what} export")
        return from_dict(json.loads(metadata[key]))

    return read_config


def cached_export(model, folder: str | Path, prefix: str, export) -> Path:
    """``folder/{prefix}_{model_hash}.onnx``, written by ``export(model, path)`` only when it
    is not there yet (the hash covers config and weights, so a stale file is never used)."""
    path = Path(folder) / f"{prefix}_{model_hash(model)}.onnx"
    if not path.is_file():
        export(model, path)
    return path

