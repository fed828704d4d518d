"""Full-frame keypoint estimators the pipeline can use, by name.

An estimator maps an (H, W, 3) uint8 RGB image and its intrinsics K to a list of
``KeypointDetection`` (21 camera-frame points in metres, 21 pixels, handedness, score,
track id).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from hand_pose_ros.estimation.detections import KeypointDetection

Estimator = Callable[[np.ndarray, np.ndarray], list[KeypointDetection]]

#: Names accepted by :func:`create_estimator`:
#: - ``handtrack`` (the default; ``auto`` is the same): our hand tracking graph on the
#:   real-image-trained palm detector and landmark networks, converted from the installed
#:   wheel and run by our runtime (ONNX Runtime CPU / CUDA, TensorRT, torch);
#: - ``mediapipe``: the original Google graph of the same networks, as a reference;
#: - ``ours``: our detector + tracker + Lite I2L MeshNet, trained from scratch on our
#:   synthetic data only (research; far less accurate on real images).
ESTIMATOR_NAMES = ("auto", "handtrack", "mediapipe", "ours")
DEFAULT_ESTIMATOR = "handtrack"


def create_estimator(name: str = "auto", max_hands: int = 2, mirrored_input: bool = False,
                     hand_side: str = "auto", backend: str = "onnx", device: str = "cpu",
                     landmark_model: str = "landmark_full") -> Estimator:  # fmt: skip
    """Build a full-frame estimator.

    Args:
        name: one of :data:`ESTIMATOR_NAMES`.
        max_hands: hands followed at once.
        mirrored_input: images are mirrored (selfie view); sides are reported physically.
        hand_side: ``auto`` (the estimator's handedness) or the operator's ``right`` /
            ``left`` hand (one hand reported per frame).
        backend: runtime of our networks (``onnx``, ``torch``, ``tensorrt``); the
            ``mediapipe`` reference runs its own.
        device: ``cpu`` or ``cuda`` (ONNX Runtime, torch; TensorRT is always CUDA).
        landmark_model: handtrack's landmark network, ``landmark_full`` or the faster
            ``landmark_lite``.
    """
    if name not in ESTIMATOR_NAMES:
        raise ValueError(f"unknown estimator {name!r}; valid: {ESTIMATOR_NAMES}")
    if name in ("auto", "handtrack"):
        from hand_pose_ros.handtrack import HandTrackConfig, create_hand_tracker

        config = HandTrackConfig(max_hands=max_hands, mirrored_input=mirrored_input,
                                 hand_side=hand_side, landmark_model=landmark_model)  # fmt: skip
        return create_hand_tracker(config, backend=backend, device=device)
    if name == "ours":
        from hand_pose_ros.pipeline.two_stage import create_detector_mesh_estimator

        return create_detector_mesh_estimator(max_hands=max_hands, backend=backend,
                                              device=device, mirrored_input=mirrored_input,
                                              hand_side=hand_side)  # fmt: skip
    from hand_pose_ros.estimation.mediapipe_hands import MediaPipeHands

    return MediaPipeHands(max_hands=max_hands, mirrored_input=mirrored_input,
                          hand_side=hand_side)  # fmt: skip
