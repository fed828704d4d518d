"""Full-frame keypoint estimators the pipeline can use, by name.

An estimator maps an (H, W, 3) uint8 RGB image and its intrinsics K to a list of
``KeypointDetection`` (21 camera-frame points in metres, 21 pixels, handedness, score).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from hand_pose_ros.estimation.mediapipe_hands import KeypointDetection

Estimator = Callable[[np.ndarray, np.ndarray], list[KeypointDetection]]

#: Names accepted by ``create_estimator`` (``auto``: the best one installed; ``ours``: our
#: detector + tracker + Lite I2L MeshNet, trained only on our synthetic data).
ESTIMATOR_NAMES = ("auto", "mediapipe", "ours")


def create_estimator(name: str = "auto", **kwargs) -> Estimator:
    """Build a full-frame estimator.

    ``auto`` and ``mediapipe`` use MediaPipe Hands (``max_hands``, ``mirrored_input``, ...).
    ``ours`` is our two-stage estimator (:mod:`hand_pose_ros.pipeline.two_stage`; ``max_hands``,
    ``backend``, ``device``). ``auto`` stays MediaPipe while ours is less accurate on real
    images (docs/meshnet_training.md, docs/detector.md give the measured gap).
    """
    if name not in ESTIMATOR_NAMES:
        raise ValueError(f"unknown estimator {name!r}; valid: {ESTIMATOR_NAMES}")
    if name == "ours":
        from hand_pose_ros.pipeline.two_stage import create_detector_mesh_estimator

        return create_detector_mesh_estimator(**kwargs)
    from hand_pose_ros.estimation.mediapipe_hands import MediaPipeHands

    kwargs.pop("backend", None)
    return MediaPipeHands(**kwargs)
