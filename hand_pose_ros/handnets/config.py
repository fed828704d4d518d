"""Config of a converted hand network, stored in its ONNX metadata (a leaf module)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

CONVERTER_VERSION = "1"
"""Bumped whenever the conversion changes its output; cached ONNX of another version are
rebuilt."""


@dataclass(frozen=True)
class HandNetConfig:
    """What a runner needs to know about a converted network."""

    name: str
    """Registered network name (``landmark_full`` ...)."""
    input_size: int
    """Side S of the square input (B, 3, S, S), pixels."""
    output_names: tuple[str, ...]
    """Output names in output order."""
    source_sha256: str
    """sha256 (64 hex) of the .tflite file the network was converted from."""
    converter_version: str = CONVERTER_VERSION
    """:data:`CONVERTER_VERSION` of the conversion."""

    def __post_init__(self) -> None:
        if self.input_size <= 0:
            raise ValueError(f"input_size: must be positive, got {self.input_size}")
        if len(self.source_sha256) != 64:
            raise ValueError(f"source_sha256: 64 hex digits expected, got {self.source_sha256!r}")

    def to_dict(self) -> dict:
        return {**asdict(self), "output_names": list(self.output_names)}

    @classmethod
    def from_dict(cls, data: dict) -> HandNetConfig:
        return cls(**{**data, "output_names": tuple(data["output_names"])})
