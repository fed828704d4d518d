"""Read the ROS 2 parameter YAML (config/teleop.yaml) without ROS, for the runner and tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"
DEFAULT_PARAMS = CONFIG_DIR / "teleop.yaml"


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, sub in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), sub, out)
    else:
        out[prefix] = value


def load_node_parameters(path: str | Path = DEFAULT_PARAMS) -> dict[str, dict[str, Any]]:
    """``{node_name: {param.name: value}}`` from a ROS 2 parameter file (nested keys dotted)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"parameter file not found: {path}")
    data = yaml.safe_load(path.read_text()) or {}
    result: dict[str, dict[str, Any]] = {}
    for node, section in data.items():
        params = (section or {}).get("ros__parameters")
        if params is None:
            raise ValueError(f"{path}: node {node!r} has no 'ros__parameters' section")
        flat: dict[str, Any] = {}
        _flatten("", params, flat)
        result[str(node)] = flat
    return result
