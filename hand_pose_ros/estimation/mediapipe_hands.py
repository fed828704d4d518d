"""MediaPipe Hands 0.10.21 as a keypoint estimator (optional; ships its models, runs offline).

MediaPipe gives, per hand, 21 image landmarks (normalised x, y) and 21 metric "world"
landmarks around the hand's centre with camera-aligned axes. We place the world
landmarks in the camera optical frame by solving, in closed form, for the translation
whose perspective projection with the intrinsics K best matches the image landmarks.
It gives no mesh. MediaPipe's handedness assumes a mirrored (selfie) image; for an
ordinary camera image the label is swapped (``mirrored_input=False``).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from hand_pose_ros.estimation.detections import (
    HAND_SIDES,
    KeypointDetection,
    place_in_camera,
)


def _patch_protobuf_for_mediapipe() -> None:
    """mediapipe 0.10.21's bindings call ``MessageFactory.GetPrototype``, which protobuf 5+
    removed; onnx needs protobuf >= 6.31. Restore the method as the documented replacement
    (``message_factory.GetMessageClass``) so both live in one environment."""
    from google.protobuf import message_factory

    if not hasattr(message_factory.MessageFactory, "GetPrototype"):
        message_factory.MessageFactory.GetPrototype = (
            lambda self, descriptor: message_factory.GetMessageClass(descriptor))  # fmt: skip


class MediaPipeHands:
    """Full-frame hand keypoints with MediaPipe Hands (``pip install mediapipe==0.10.21``).

    Args:
        max_hands: hands to find per frame.
        min_detection_confidence, min_tracking_confidence: MediaPipe thresholds.
        static_image_mode: detect on every frame (True) or track between frames (False).
        mirrored_input: True if images are mirrored (selfie view), as MediaPipe assumes.
        model_complexity: 0 (lite) or 1 (full).
        hand_side: ``"auto"`` (MediaPipe's handedness) or ``"right"`` / ``"left"``: only
            the best-scoring hand is kept, labelled with that physical side.
    """

    def __init__(self, max_hands: int = 2, min_detection_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5, static_image_mode: bool = False,
                 mirrored_input: bool = False, model_complexity: int = 1,
                 hand_side: str = "auto") -> None:  # fmt: skip
        if hand_side not in HAND_SIDES:
            raise ValueError(f"hand_side: one of {HAND_SIDES}, got {hand_side!r}")
        self.hand_side = hand_side
        _patch_protobuf_for_mediapipe()
        try:
            import mediapipe as mp
        except ImportError as exc:
            raise ImportError(
                "the MediaPipe estimator needs `mediapipe==0.10.21` (scripts/setup.sh installs it "
                "unless HAND_POSE_ROS_NO_MEDIAPIPE=1)"
            ) from exc
        self._hands = mp.solutions.hands.Hands(
            static_image_mode=static_image_mode, max_num_hands=max_hands,
            model_complexity=model_complexity,
            min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=min_tracking_confidence,
        )  # fmt: skip
        self.mirrored_input = mirrored_input

    def close(self) -> None:
        self._hands.close()

    def __call__(self, rgb: np.ndarray, K: np.ndarray) -> list[KeypointDetection]:
        """Hands in an (H, W, 3) uint8 RGB image with intrinsics K (3, 3)."""
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"expected (H, W, 3) uint8 RGB, got {rgb.dtype} {rgb.shape}")
        h, w = rgb.shape[:2]
        result = self._hands.process(np.ascontiguousarray(rgb))
        if not result.multi_hand_landmarks:
            return []
        out = []
        for image_lm, world_lm, label in zip(result.multi_hand_landmarks,
                                             result.multi_hand_world_landmarks,
                                             result.multi_handedness, strict=True):  # fmt: skip
            uv = np.array([[p.x * w, p.y * h] for p in image_lm.landmark])
            world = np.array([[p.x, p.y, p.z] for p in world_lm.landmark])
            category = label.classification[0]
            side = category.label.lower()
            if not self.mirrored_input:
                side = "left" if side == "right" else "right"
            out.append(KeypointDetection(place_in_camera(world, uv, np.asarray(K, float)), uv,
                                         side, float(category.score)))  # fmt: skip
        if self.hand_side != "auto" and out:
            best = max(out, key=lambda d: d.score)
            out = [replace(best, handedness=self.hand_side)]
        return out
