"""The hand tracking graph with the landmark network + mesh head (issue 21): tracked hands
with our hand model's 21 joints and 778-vertex mesh in the camera frame.

Same tracking as :class:`~hand_pose_ros.handtrack.graph.HandTrackGraph` (the palm detector
only when a hand is lost or missing, the next ROI from the landmark network's 2D
landmarks); in place of the landmark network runs the combined graph of
:mod:`hand_pose_ros.estimation.landmark_mesh` (its landmark outputs and the head's
outputs from one backbone pass).

What a :class:`KeypointDetection` holds here, all in **our open hand model's convention**
(``hand_ik.conventions`` ``ours``), so the IK needs no keypoint mapping and its 3D, 2D and
vertex terms describe one hand:

- ``camera_points``: the head's 21 joints, camera metres (the head's metric wrist depth);
- ``vertices``: the head's 778 vertices in the same frame (left hands: the right model
  mirrored x -> -x, as the synthetic training labels and the IK's left-hand form);
- ``image_points``: the landmark network's 2D keypoints as they are (the accurate part on
  real images), taken as our keypoints' pixels (the IK stage fits every source's 2D
  keypoints unmoved). Moving them by the projected 3D ``mediapipe`` -> ``ours`` map of
  the network's world landmarks put them further from our model's projected joints:
  held-out synthetic test crops (``data/lmhead/crops_test``, first 150, 67 found with the
  right side) 17.7 px mean vs 15.6 px unmoved (256 px crops); the scripted demo hand
  (20 frames, 640 x 480) 16.6 vs 10.5 px.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hand_pose_ros.estimation.detections import KeypointDetection
from hand_pose_ros.handtrack.config import HandTrackConfig
from hand_pose_ros.handtrack.graph import HandTrackGraph, Track, _LandmarkResult

#: The landmark network the shipped head was trained on.
MESH_GRAPH_LANDMARK_MODEL = "landmark_full"


class HandTrackMeshGraph(HandTrackGraph):
    """:class:`HandTrackGraph` whose landmark network also gives the mesh head's outputs
    (``mesh_uv``, ``mesh_z``, ``mesh_scale``, ``mesh_confidence`` after the four landmark
    outputs); detections carry the head's joints and vertices (module docstring).

    Args:
        palm_net, config, palm_input_size: as :class:`HandTrackGraph`.
        landmark_mesh_net: (B, 3, 224, 224) -> the eight outputs of
            :class:`~hand_pose_ros.estimation.landmark_mesh.LandmarkMeshNet`.
        num_joints: joints first in the head's points (the rest are vertices).
    """

    def __init__(self, palm_net, landmark_mesh_net, config: HandTrackConfig | None = None,
                 palm_input_size: int = 192, landmark_input_size: int = 224,
                 num_joints: int = 21) -> None:  # fmt: skip
        super().__init__(palm_net, landmark_mesh_net, config, palm_input_size,
                         landmark_input_size)  # fmt: skip
        self.num_joints = num_joints

    def _detection(self, track: Track, res: _LandmarkResult, K: np.ndarray) -> KeypointDetection:
        base = super()._detection(track, res, K)  # the landmark network's hand
        points = lift_head_points(res.extra, res.crop_matrix, K)
        return KeypointDetection(points[:self.num_joints], base.image_points, base.handedness,
                                 base.score, track_id=base.track_id,
                                 vertices=points[self.num_joints:])  # fmt: skip


def lift_head_points(outputs: tuple[np.ndarray, ...], crop_matrix: np.ndarray,
                     K: np.ndarray) -> np.ndarray:  # fmt: skip
    """One crop's head outputs (``mesh_uv`` (P, 2), ``mesh_z`` (P,), ``mesh_scale`` (), ...)
    -> (P, 3) camera metres (:func:`~hand_pose_ros.estimation.landmark_mesh_head.lift_to_camera`).
    ``crop_matrix``: (2, 3) frame -> crop pixels of the crop; ``K``: (3, 3)."""
    import cv2
    import torch

    from hand_pose_ros.estimation.landmark_mesh_head import lift_to_camera

    uv, z, scale = (torch.from_numpy(np.asarray(o, np.float64))[None] for o in outputs[:3])
    inv = cv2.invertAffineTransform(np.asarray(crop_matrix, np.float64))
    cam = lift_to_camera(uv, z, scale.reshape(1), torch.from_numpy(inv)[None],
                         torch.from_numpy(np.asarray(K, np.float64))[None])  # fmt: skip
    return cam[0].numpy()


def create_hand_mesh_tracker(config: HandTrackConfig | None = None, backend: str = "onnx",
                             device: str = "cpu", threads: int = 1,
                             weights: str | Path | None = None) -> HandTrackMeshGraph:  # fmt: skip
    """The mesh graph on the real-trained palm detector and the combined landmark + mesh
    network (first use converts / exports and caches them; :mod:`hand_pose_ros.handnets`,
    :func:`~hand_pose_ros.estimation.landmark_mesh.cached_landmark_mesh_onnx`).

    Raises:
        ValueError: ``config.landmark_model`` is not the head's backbone (``landmark_full``).
    """
    from hand_pose_ros.estimation.landmark_mesh import DEFAULT_WEIGHTS, LandmarkMeshRunner
    from hand_pose_ros.handnets import network_runner

    cfg = config or HandTrackConfig()
    if cfg.landmark_model != MESH_GRAPH_LANDMARK_MODEL:
        raise ValueError(f"landmark_model: the mesh head runs on {MESH_GRAPH_LANDMARK_MODEL}, "
                         f"got {cfg.landmark_model!r}")  # fmt: skip
    palm = network_runner(cfg.palm_model, backend=backend, device=device, threads=threads)
    net = LandmarkMeshRunner(weights or DEFAULT_WEIGHTS, backend, device, threads)
    return HandTrackMeshGraph(palm, net, cfg, palm.input_size, net.input_size)
