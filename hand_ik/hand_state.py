"""The IK result: the human hand as the robot is driven by it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class HandState:
    """Batched IK result (numpy, batch first).

    The solver works on right hands: a left hand's input is mirrored (x -> -x) into
    right-hand form first. So the model parameters describe the RIGHT hand model in
    the mirrored frame, while the re-posed points are mirrored back into the input
    frame. For every row::

        right_model(betas, bio_to_pose(bio), global_orient, transl).joints * m == joints

    with ``m = (1, 1, 1)`` for a right hand and ``(-1, 1, 1)`` for a left one.

    Attributes:
        betas: (N, 10) shape coefficients of the hand model in use (side-independent).
        bio: (N, 23) biomechanical DoF in radians, order ``hand_ik.BIO_DOF_NAMES``
            (anatomical, side-independent).
        global_orient: (N, 3) axis-angle of the right hand model's root (about its wrist
            joint), in the input frame for a right hand, in the mirrored input frame for
            a left hand.
        transl: (N, 3) model translation, metres, in the same frame as ``global_orient``.
        joints: (N, 21, 3) re-posed keypoints in the input frame, metres.
        vertices: (N, V, 3) re-posed mesh in the input frame, metres, or None.
        fit_error: (N,) mean keypoint distance between the fit and the input, metres.
        valid: (N,) False where the input was degenerate (the other fields then
            hold a neutral pose, never NaN).
        handedness: "right" or "left".
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
