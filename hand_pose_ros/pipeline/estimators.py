"""Full-frame keypoint estimators the pipeline can use, by name.

An estimator maps an (H, W, 3) uint8 RGB image and its intrinsics K to a list of
``KeypointDetection`` (21 camera-frame points in metres, 21 pixels, handedness, score).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from hand_pose_ros.estimation.mediapipe_hands import KeypointDetection

Estimator = Callable[[np.ndarray, np.ndarray], list[KeypointDetection]]

#: Names accepted by ``create_estimator`` (``auto``: the best one installed).
ESTIMATOR_NAMES = ("auto", "mediapipe")


def create_estimator(name: str = "auto", **kwargs) -> Estimator:
    """Build a full-frame estimator.

    ``auto`` and ``mediapipe`` use MediaPipe Hands. Our own detector + Lite I2L MeshNet
    joins this list when its trained weights ship (issues 7 and 8).
    """
    if name not in ESTIMATOR_NAMES:
        raise ValueError(f"unknown estimator {name!r}; valid: {ESTIMATOR_NAMES}")
    from hand_pose_ros.estimation.mediapipe_hands import MediaPipeHands

    return MediaPipeHands(**kwargs)
