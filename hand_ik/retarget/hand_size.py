"""The operator's hand size: a rigid palm measure and its running estimate per track.

The retargeter scales the operator's keypoints so that their palm is as large as the
template hand the calibration used (``RetargetingConfig.palm_length_m``): a flat hand of
any size then maps onto the robot's open pose, and a finger's closure does not depend on
the operator's size.
"""

from __future__ import annotations

import math

import numpy as np

from hand_ik.keypoints import KEYPOINT_NAMES

#: Keypoints whose distances from the wrist make the palm measure: the four finger MCPs,
#: rigid in the hand model's kinematics (they do not move with the finger joints).
PALM_KEYPOINTS: tuple[str, ...] = ("index_mcp", "middle_mcp", "ring_mcp", "little_mcp")
_WRIST = KEYPOINT_NAMES.index("wrist")
_PALM = np.array([KEYPOINT_NAMES.index(k) for k in PALM_KEYPOINTS])
#: Frames over which the estimate is a plain running mean; afterwards an exponential
#: average with this time constant (frames), so one noisy frame moves it little.
AVERAGE_FRAMES = 30
#: Hand size factors (template palm / operator palm) outside this range are clipped: a
#: measure this far off is a broken detection, not a hand.
FACTOR_RANGE: tuple[float, float] = (0.5, 2.0)


def palm_length(keypoints: np.ndarray) -> float:
    """(21, 3) keypoints, metres -> mean wrist -> finger MCP distance (m)."""
    kp = np.asarray(keypoints, dtype=float)
    d = kp[_PALM] - kp[_WRIST]
    return float(np.sqrt((d * d).sum(axis=1)).mean())


class HandSizeEstimate:
    """Running estimate of one hand's palm length (``palm_length``) since ``reset()``.

    A per-track constant, not per-frame noise: the mean of the first ``AVERAGE_FRAMES``
    measures, then an exponential average with that time constant.
    """

    def __init__(self, frames: int = AVERAGE_FRAMES) -> None:
        if frames < 1:
            raise ValueError(f"frames must be >= 1, got {frames}")
        self.frames = frames
        self.reset()

    def reset(self) -> None:
        """Forget the hand (a new track starts)."""
        self.count = 0
        self.length_m: float | None = None

    def update(self, keypoints: np.ndarray) -> float | None:
        """Add one frame's (21, 3) keypoints; returns the estimate (m), None if none yet.

        A frame whose measure is not finite or not positive is skipped.
        """
        length = palm_length(keypoints)
        if not (math.isfinite(length) and length > 0):
            return self.length_m
        self.count = min(self.count + 1, self.frames)
        if self.length_m is None:
            self.length_m = length
        else:
            self.length_m += (length - self.length_m) / self.count
        return self.length_m

    def factor(self, reference_m: float) -> float:
        """``reference_m`` over the estimate, clipped to ``FACTOR_RANGE``; 1 without one."""
        if self.length_m is None:
            return 1.0
        return min(max(reference_m / self.length_m, FACTOR_RANGE[0]), FACTOR_RANGE[1])
