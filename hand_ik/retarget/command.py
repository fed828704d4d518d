"""Robot joint command: what the retargeter and the command filter produce."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class RobotCommand:
    """Positions of a robot's movable joints.

    Attributes:
        names: URDF joint names (all movable joints, mimic joints included).
        positions: (n,) radians (metres for prismatic joints), same order.
    """

    names: tuple[str, ...]
    positions: np.ndarray

    def as_dict(self) -> dict[str, float]:
        """Joint name -> position."""
        return dict(zip(self.names, self.positions.tolist(), strict=True))
