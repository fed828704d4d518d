"""Robot joint command: what the retargeter and the command filter produce."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hand_ik.optim import LMResult


@dataclass
class RobotCommand:
    """Positions of a robot's movable joints.

    Attributes:
        names: URDF joint names (all movable joints, mimic joints included).
        positions: (n,) radians (metres for prismatic joints), same order.
        solve: the task-space optimizer's result for this frame, or None (joint mapping
            alone, or a pose not solved for). ``solve.reason == "stalled"``: no step
            lowered the cost (the command holds the best point found).
    """

    names: tuple[str, ...]
    positions: np.ndarray
    solve: LMResult | None = None

    def as_dict(self) -> dict[str, float]:
        """Joint name -> position."""
        return dict(zip(self.names, self.positions.tolist(), strict=True))
