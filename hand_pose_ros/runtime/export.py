"""ONNX export of a square-image network, the model hash that names caches, and the
config stored in the export's metadata (shared by every network: mesh estimator, detector,
handedness, converted hand networks).

A network maps ``image`` (B, 3, S, S) float32 to its named outputs; its config is stored
as JSON in the ONNX metadata under a per-network key, so a backend can decode outputs
from the file alone.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)

INPUT_NAME = "image"
DEFAULT_OPSET = 17


def model_hash(model) -> str:
    """sha256 (16 hex) of a network's config and parameters/buffers: names caches."""
    h = hashlib.sha256(json.dumps(model.cfg.to_dict(), sort_keys=True).encode())
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


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

