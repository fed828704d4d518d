"""ONNX export of a converted hand network and its cache.

Cache file: ``default_cache_dir()/handnets/<name>_<sha256[:16] of the .tflite>.onnx``,
opset 17, weights inside, dynamic batch, written to a temporary file and renamed (two
processes never see a half-written file). The :class:`~hand_pose_ros.handnets.config.
HandNetConfig` is stored as JSON under the metadata key ``handnet_config`` (source sha256,
converter version); a cached file whose record does not match is rebuilt, with a log line.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from pathlib import Path

from hand_pose_ros.handnets.config import CONVERTER_VERSION, HandNetConfig
from hand_pose_ros.handnets.licence import write_notice
from hand_pose_ros.handnets.registry import HandNetSpec, TfliteSource, get_spec, locate_tflite
from hand_pose_ros.runtime.export import DEFAULT_OPSET, export_image_model
from hand_pose_ros.runtime.weights import default_cache_dir

log = logging.getLogger(__name__)

METADATA_KEY = "handnet_config"


def read_handnet_config(metadata: dict[str, str], source: str) -> HandNetConfig:
    """``read_config`` for the runners: the HandNetConfig stored in an export's metadata."""
    if METADATA_KEY not in metadata:
        raise ValueError(
            f"{source}: no '{METADATA_KEY}' metadata: not a hand network export "
            "(re-export with hand-teleop export --model <palm_full|...>)"
        )
    return HandNetConfig.from_dict(json.loads(metadata[METADATA_KEY]))


def export_network_onnx(
    source: TfliteSource, path: str | Path, dynamic_batch: bool = True, opset: int = DEFAULT_OPSET
) -> Path:
    """Convert ``source`` and write it to ``path`` atomically (temporary file + rename).

    Args:
        source: a located .tflite (:func:`~hand_pose_ros.handnets.registry.locate_tflite`).
        path: the ``.onnx`` to write (parent folders are created).
        dynamic_batch: batch axis symbolic (``batch``); else fixed at 1.
        opset: ONNX opset, >= 17.
    """
    from hand_pose_ros.handnets.converter import convert_graph  # torch only when converting
    from hand_pose_ros.handnets.tflite_reader import read_tflite

    model = convert_graph(read_tflite(source.path), source.name, source.sha256)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Unique per process and call, same folder (so the rename is atomic), default permissions.
    tmp = str(path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"))
    try:
        export_image_model(model, tmp, model.cfg.output_names, METADATA_KEY, dynamic_batch, opset)
        _set_output_shapes(tmp, get_spec(source.name), dynamic_batch)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _set_output_shapes(path: str, spec: HandNetSpec, dynamic_batch: bool) -> None:
    """Write the outputs' static per-sample dims into the graph (the tracer leaves them
    symbolic after a reshape with a free batch axis)."""
    import onnx

    proto = onnx.load(path)
    for output, out_spec in zip(proto.graph.output, spec.outputs, strict=True):
        dims = output.type.tensor_type.shape.dim
        del dims[:]
        batch = dims.add()
        if dynamic_batch:
            batch.dim_param = "batch"
        else:
            batch.dim_value = 1
        for size in out_spec.shape:
            dims.add().dim_value = size
    onnx.checker.check_model(proto)
    onnx.save(proto, path)


def _cached_config(path: Path) -> HandNetConfig | None:
    """The config recorded in a cached export, None when the file is unreadable."""
    import onnx

    try:
        meta = {
            p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props
        }
        return read_handnet_config(meta, str(path))
    except Exception as exc:  # corrupt protobuf, bad JSON: rebuild rather than use it
        log.warning("cached hand network %s is unreadable (%r); rebuilding it", path, exc)
        return None


def cached_onnx(
    name: str,
    tflite_path: str | Path | None = None,
    allow_sha_mismatch: bool = False,
    cache_dir: str | Path | None = None,
) -> Path:
    """The dynamic-batch ONNX of ``name`` in the cache, converted on first use.

    Args:
        name: a registered network (``palm_full``, ``palm_lite``, ``landmark_full``,
            ``landmark_lite``).
        tflite_path: convert this file instead of the installed wheel's.
        allow_sha_mismatch: accept a ``tflite_path`` that is not the pinned file.
        cache_dir: cache root (default :func:`default_cache_dir`); files go to ``handnets/``.

    Returns:
        Path of the ONNX file; a cached file recording another source sha256 or converter
        version is rebuilt (logged), never used.
    """
    source = locate_tflite(name, tflite_path, allow_sha_mismatch)
    return cached_source_onnx(source, cache_dir)


def cached_source_onnx(source: TfliteSource, cache_dir: str | Path | None = None) -> Path:
    """:func:`cached_onnx` for an already located and checked ``source``."""
    name = source.name
    folder = Path(cache_dir if cache_dir is not None else default_cache_dir()) / "handnets"
    path = folder / f"{name}_{source.sha256[:16]}.onnx"
    if path.is_file():
        cfg = _cached_config(path)
        if cfg is not None:
            recorded = (cfg.name, cfg.source_sha256, cfg.converter_version)
            if recorded == (name, source.sha256, CONVERTER_VERSION):
                return path
            log.warning(
                "cached %s records %s from %s... (converter %s), expected %s from "
                "%s... (converter %s); rebuilding it",
                path,
                cfg.name,
                cfg.source_sha256[:16],
                cfg.converter_version,
                name,
                source.sha256[:16],
                CONVERTER_VERSION,
            )
    log.info("converting %s (%s) to %s", name, source.path, path)
    export_network_onnx(source, path)
    if not (folder / "NOTICE").is_file():
        try:
            write_notice(folder)
        except ImportError as exc:  # user-given file without the wheel: no licence text here
            log.warning("no NOTICE written beside %s: %s", path, exc)
    return path
