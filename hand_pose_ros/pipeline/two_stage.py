"""Our own two-stage image estimator: detector + tracker (stage I), mesh estimator (stage II).

Seed 003's layout: stage I finds every hand in the full frame (our FAR-HandNet-style
detector, :mod:`hand_pose_ros.detection`, kept on the hand by the MediaPipe-like tracker,
which takes each hand's side from the crop classifier of
:mod:`hand_pose_ros.detection.handedness` when one is given);
stage II runs the Lite I2L MeshNet on a square crop around each tracked hand's box,
mirrored into right-hand form for left hands, and places its 21 joints in the camera
frame (root depth from the reference bone length). Same interface as MediaPipe Hands in
:mod:`hand_pose_ros.pipeline.estimators`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hand_pose_ros.crop import crop_intrinsics, estimate_right_canonical, roi_input
from hand_pose_ros.detection.handedness import HandednessClassifier, crop_side_probability
from hand_pose_ros.detection.runtime import HandDetector
from hand_pose_ros.detection.tracker import HandTracker, TrackerConfig, roi_from_box
from hand_pose_ros.estimation.detections import HAND_SIDES, KeypointDetection
from hand_pose_ros.estimation.mesh_estimator import MeshEstimator, shipped_estimator_weights

#: Mesh estimator crop side / the detected box's longer side. The detector's box is
#: trained on the hand mesh's box, and the synthetic crops the mesh estimator learned on
#: have a margin of 1.15-1.6 of it. Crops around the box beat crops around the
#: detector's keypoints (coarse) and match crops around the true keypoints: see
#: docs/detector.md, "Crops for the mesh estimator".
CROP_SCALE = 1.3


class DetectorMeshEstimator:
    """Full-frame hands -> :class:`KeypointDetection` list (camera frame, metres).

    Args:
        detector: a :class:`~hand_pose_ros.detection.runtime.HandDetector`.
        mesh: a :class:`~hand_pose_ros.estimation.mesh_estimator.MeshEstimator`.
        tracker_config: tracking options (max hands, re-detection period).
        crop_scale: crop side / the tracked box's longer side.
        crop_size: crop side given to the mesh estimator, pixels.
        mirrored_input: images are mirrored (selfie view): report the physical hand side,
            the opposite of the one seen (as the MediaPipe estimator does).
        handedness: a :class:`~hand_pose_ros.detection.handedness.HandednessClassifier`
            that decides each hand's side on its crop; None: the detector's class scores.
        hand_side: ``"auto"`` (the tracker's handedness), or ``"right"`` / ``"left"``: the
            operator drives with that hand, so each frame's best-scoring hand is taken as
            that (physical) side and the others are dropped. Our handedness probe is right
            for about 75-80 % of single crops (docs/detector.md) before the tracker's vote,
            and the side decides whether the crop is mirrored for the right-hand mesh
            estimator: a known side is the safer choice.
    """

    def __init__(self, detector, mesh, tracker_config: TrackerConfig | None = None,
                 crop_scale: float = CROP_SCALE, crop_size: int = 256,
                 mirrored_input: bool = False, handedness=None,
                 hand_side: str = "auto") -> None:  # fmt: skip
        if hand_side not in HAND_SIDES:
            raise ValueError(f"hand_side: one of {HAND_SIDES}, got {hand_side!r}")
        self.detector, self.mesh = detector, mesh
        self.mirrored_input = mirrored_input
        self.hand_side = hand_side
        side = None
        if handedness is not None:
            side = crop_side_probability(handedness, crop_scale)
        self.tracker = HandTracker(detector.detect, tracker_config, side_probability=side)
        self.crop_scale, self.crop_size = crop_scale, crop_size

    def __call__(self, rgb: np.ndarray, K: np.ndarray) -> list[KeypointDetection]:
        """Hands in an (H, W, 3) uint8 RGB image with intrinsics K (3, 3)."""
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"expected (H, W, 3) uint8 RGB, got {rgb.dtype} {rgb.shape}")
        out = []
        hands = self.tracker.update(rgb)
        if self.hand_side != "auto":
            hands = sorted(hands, key=lambda h: -h.score)[:1]
        for hand in hands:
            roi = roi_from_box(hand.box, self.crop_scale)
            crop, warp = roi_input(rgb, roi, self.crop_size)
            k_crop = crop_intrinsics(K, warp)
            left = hand.handedness == "left"  # the side seen in the image
            if self.hand_side != "auto":
                left = (self.hand_side == "left") != self.mirrored_input
            obs = estimate_right_canonical(self.mesh.estimate, crop, k_crop, left)
            joints, uv = obs.joints_cam, obs.uv
            if not np.isfinite(joints).all():
                continue
            side = "left" if left else "right"
            if self.mirrored_input:
                side = "right" if left else "left"
            out.append(KeypointDetection(joints, warp.to_frame(uv), side, float(hand.score)))
        return out


def shipped_networks(backend: str = "onnx", device: str = "cpu", threads: int = 1,
                     detector_weights: str | Path = "default"):  # fmt: skip
    """The shipped detector (or ``detector_weights``) and mesh estimator on one backend:
    ``(HandDetector, MeshEstimator)``."""
    name, weights = shipped_estimator_weights()
    detector = HandDetector(backend=backend, weights=detector_weights, device=device,
                            threads=threads)  # fmt: skip
    mesh = MeshEstimator(name, backend=backend, weights=weights, device=device, threads=threads)
    return detector, mesh


def create_detector_mesh_estimator(max_hands: int = 2, backend: str = "onnx",
                                   device: str = "cpu", mirrored_input: bool = False,
                                   hand_side: str = "auto") -> DetectorMeshEstimator:  # fmt: skip
    """The shipped detector and mesh estimator weights on one backend. With ``hand_side``
    ``"auto"`` each hand's side comes from the shipped handedness probe on its crop
    (:mod:`hand_pose_ros.detection.handedness_probe`; the detector's own side class is at
    chance, docs/detector.md); a given side needs none."""
    detector, mesh = shipped_networks(backend, device)
    # A found hand is kept down to the detector's threshold; new tracks need
    # TrackerConfig.min_detection_score (0.5), which keeps false positives out.
    tracking = TrackerConfig(max_hands=max_hands, min_tracking_score=detector.score_threshold)
    handedness = None
    if hand_side == "auto":
        handedness = HandednessClassifier("default", backend=backend, device=device, threads=1)
    return DetectorMeshEstimator(detector, mesh, tracking, mirrored_input=mirrored_input,
                                 handedness=handedness, hand_side=hand_side)  # fmt: skip
