"""Full-frame keypoint estimators the pipeline can use, by name.

An estimator maps an (H, W, 3) uint8 RGB image and its intrinsics K to a list of
``KeypointDetection`` (21 camera-frame points in metres, 21 pixels, handedness, score,
track id; ``handtrack_mesh`` also the hand mesh's 778 vertices, camera metres).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hand_pose_ros.estimation.detections import CAMERA_POINTS, HAND_SIDES, KeypointDetection
from hand_pose_ros.estimation.mediapipe_hands import MediaPipeHands
from hand_pose_ros.pipeline.defaults import DEFAULT_HFOV_DEG

Estimator = Callable[[np.ndarray, np.ndarray], list[KeypointDetection]]

#: Names accepted by :func:`create_estimator`:
#: - ``handtrack`` (the default; ``auto`` is the same): our hand tracking graph on the
#:   real-image-trained palm detector and landmark networks, converted from the installed
#:   wheel and run by our runtime (ONNX Runtime CPU / CUDA, TensorRT, torch);
#: - ``handtrack_mesh``: the same tracking graph with the mesh head on the landmark
#:   network (one pass gives the landmarks and our hand model's 21 joints + 778 vertices,
#:   docs/landmark_mesh_head.md); its keypoints are our model's (convention ``ours``);
#: - ``mediapipe``: the original Google graph of the same networks, as a reference;
#: - ``ours``: our detector + tracker + Lite I2L MeshNet, trained from scratch on our
#:   synthetic data only (research; far less accurate on real images).
ESTIMATOR_NAMES = ("auto", "handtrack", "handtrack_mesh", "mediapipe", "ours")
DEFAULT_ESTIMATOR = "handtrack"
#: Each estimator's keypoint convention (hand_ik/conventions.py): where its 21 points sit
#: on the hand. The graph plan gives it to the IK node (``keypoint_convention`` auto).
#: ``handtrack_mesh`` gives the head's joints (our model's, consistent with its vertices) and
#: the landmark network's 2D keypoints taken as ours (measured: handtrack/mesh_graph.py).
ESTIMATOR_CONVENTIONS = {"auto": "mediapipe", "handtrack": "mediapipe", "handtrack_mesh": "ours",
                         "mediapipe": "mediapipe", "ours": "ours"}  # fmt: skip

#: EstimatorStageConfig fields the estimator is built from (the others are read per image).
BUILD_FIELDS = ("estimator", "backend", "device", "landmark_model", "camera_points",
                "max_hands", "mirrored_input", "hand_side")  # fmt: skip


@dataclass
class EstimatorStageConfig:
    """Parameters of the image estimator stage (ROS parameters of ``estimator_node``)."""

    estimator: str = DEFAULT_ESTIMATOR
    """One of :data:`ESTIMATOR_NAMES` (``auto`` = ``handtrack``)."""
    backend: str = "onnx"
    """Runtime of our networks: onnx | torch | tensorrt (the mediapipe reference runs its own)."""
    device: str = "cpu"
    """cpu | cuda (ONNX Runtime, torch; TensorRT is always CUDA)."""
    landmark_model: str = "landmark_full"
    """handtrack's landmark network: landmark_full or the faster landmark_lite
    (handtrack_mesh: landmark_full only, the head's backbone)."""
    camera_points: str = "translated"
    """handtrack's 3D keypoints in the camera (``HandTrackConfig.camera_points``):
    translated (the world landmarks, translated onto the 2D keypoints) or image_rays (each
    then moved onto its 2D keypoint's ray at its depth: more accurate 3D, a slightly worse
    robot command after the IK; docs/handtrack.md)."""
    max_hands: int = 2
    """Hands followed at once."""
    min_score: float = 0.5
    """Hands scored below this are not published, in [0, 1]."""
    mirrored_input: bool = False
    """Images are mirrored (selfie view); sides are reported physically."""
    hand_side: str = "auto"
    """auto: the estimator's handedness; right | left: the operator's hand (best hand only)."""
    hfov_deg: float = DEFAULT_HFOV_DEG
    """Horizontal field of view, degrees, for the intrinsics until a camera_info arrives."""

    def __post_init__(self) -> None:
        if self.estimator not in ESTIMATOR_NAMES:
            raise ValueError(f"unknown estimator {self.estimator!r}; valid: {ESTIMATOR_NAMES}")
        if self.estimator == "handtrack_mesh":
            # Imported here: the tracking graph (cv2) stays out of the graph plan's start-up.
            from hand_pose_ros.handtrack.mesh_graph import MESH_GRAPH_LANDMARK_MODEL

            if self.landmark_model != MESH_GRAPH_LANDMARK_MODEL:
                raise ValueError(f"landmark_model: handtrack_mesh runs the mesh head on "
                                 f"{MESH_GRAPH_LANDMARK_MODEL}, got {self.landmark_model!r}")
        if self.max_hands < 1:
            raise ValueError(f"max_hands must be >= 1, got {self.max_hands}")
        if not 0.0 <= self.min_score <= 1.0:
            raise ValueError(f"min_score must be in [0, 1], got {self.min_score}")
        if self.hand_side not in HAND_SIDES:
            raise ValueError(f"hand_side must be one of {HAND_SIDES}, got {self.hand_side!r}")
        if self.camera_points not in CAMERA_POINTS:
            raise ValueError(f"camera_points must be one of {CAMERA_POINTS}, "
                             f"got {self.camera_points!r}")  # fmt: skip
        if not 0.0 < self.hfov_deg < 180.0:
            raise ValueError(f"hfov_deg must be in (0, 180) degrees, got {self.hfov_deg}")


def create_estimator(name: str = DEFAULT_ESTIMATOR, **overrides) -> Estimator:
    """Build a full-frame estimator: ``EstimatorStageConfig(estimator=name, **overrides)``.

    See :class:`EstimatorStageConfig` for the keywords (max_hands, mirrored_input, hand_side,
    backend, device, landmark_model); unknown names raise ValueError listing the valid ones.
    """
    return build_estimator(EstimatorStageConfig(estimator=name, **overrides))


def build_estimator(config: EstimatorStageConfig) -> Estimator:
    """The estimator a config describes (its :data:`BUILD_FIELDS`)."""
    c = config
    if c.estimator in ("auto", "handtrack", "handtrack_mesh"):
        from hand_pose_ros.handtrack import HandTrackConfig, create_hand_tracker
        from hand_pose_ros.handtrack.mesh_graph import create_hand_mesh_tracker

        track = HandTrackConfig(max_hands=c.max_hands, mirrored_input=c.mirrored_input,
                                hand_side=c.hand_side, landmark_model=c.landmark_model,
                                camera_points=c.camera_points)  # fmt: skip
        create = create_hand_mesh_tracker if c.estimator == "handtrack_mesh" \
            else create_hand_tracker  # fmt: skip
        return create(track, backend=c.backend, device=c.device)
    if c.estimator == "ours":
        from hand_pose_ros.pipeline.two_stage import create_detector_mesh_estimator

        return create_detector_mesh_estimator(max_hands=c.max_hands, backend=c.backend,
                                              device=c.device, mirrored_input=c.mirrored_input,
                                              hand_side=c.hand_side)  # fmt: skip
    return MediaPipeHands(max_hands=c.max_hands, mirrored_input=c.mirrored_input,
                          hand_side=c.hand_side)  # fmt: skip

