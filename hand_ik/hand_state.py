"""The IK result: the human hand as the robot is driven by it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class HandState:
    """Batched hand parameters in right-hand canonical form (numpy, batch first).

    Attributes:
        betas: (N, 10) shape coefficients of the hand model in use.
        bio: (N, 23) biomechanical DoF in radians, order ``hand_ik.BIO_DOF_NAMES``.
        global_orient: (N, 3) axis-angle of the hand model's root in the input frame.
        transl: (N, 3) model translation in the input frame, metres.
        joints: (N, 21, 3) re-posed keypoints in the input frame, metres.
        vertices: (N, V, 3) re-posed mesh in the input frame, metres, or None.
        fit_error: (N,) mean keypoint distance between the fit and the input, metres.
        valid: (N,) False where the input was degenerate (the other fields then
            hold a neutral pose, never NaN).
        handedness: "right" or "left" (left inputs were mirrored into right form).
    """

    betas: np.ndarray
    bio: np.ndarray
    global_orient: np.ndarray
    transl: np.ndarray
    joints: np.ndarray
    fit_error: np.ndarray
    valid: np.ndarray
    vertices: np.ndarray | None = None
    handedness: str = "right"

    def __len__(self) -> int:
        return len(self.bio)
