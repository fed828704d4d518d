"""Reading our small YAML files (robot configs, operator profiles) with clear errors."""

from __future__ import annotations

from pathlib import Path

import yaml


def read_yaml_mapping(path: Path, what: str) -> dict:
    """The mapping in the YAML file ``path`` (empty file: ``{}``).

    Raises:
        ValueError: not valid YAML, not text, or not a mapping (``what`` names the kind of
            file in the message, e.g. "robot config").
    """
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ValueError(f"{what} {path} is not valid YAML: {error}") from error
    if not isinstance(data, dict):
        raise ValueError(f"{what} {path} must be a YAML mapping, got {type(data).__name__}")
    return data
