"""The handedness classifier's config: a leaf module (no torch, no runtime imports).

:mod:`hand_pose_ros.detection.handedness` (the runtime classifier) and
:mod:`hand_pose_ros.detection.handedness_model` (the torch network) both import it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from hand_pose_ros.detection.config import config_from_dict

DEFAULT_HANDEDNESS = "handedness_cpu_128"


@dataclass
class HandednessConfig:
    """A handedness classifier variant: input side and stage widths."""

    name: str = DEFAULT_HANDEDNESS
    input_size: int = 128
    """Square crop side, pixels (a multiple of 32)."""
    widths: tuple[int, ...] = (16, 32, 64, 96, 128)
    """Channels of the stride-2, -4, -8, -16 and -32 stages."""
    dropout: float = 0.2

    def __post_init__(self) -> None:
        self.widths = tuple(int(w) for w in self.widths)
        if self.input_size < 32 or self.input_size % 32:
            raise ValueError(f"input_size: a multiple of 32 >= 32, got {self.input_size}")
        if len(self.widths) != 5 or min(self.widths) < 1:
            raise ValueError(f"widths: 5 positive channel counts, got {self.widths}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> HandednessConfig:
        return config_from_dict(cls, data, "handedness")
