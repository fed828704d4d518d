"""Camera frames from a video file or an OpenCV device (webcam, RealSense RGB via UVC)."""

from __future__ import annotations

import math

import cv2
import numpy as np


def default_intrinsics(width: int, height: int, hfov_deg: float = 65.0) -> np.ndarray:
    """Pinhole K for an uncalibrated camera from its horizontal field of view."""
    f = 0.5 * width / math.tan(math.radians(hfov_deg) / 2)
    return np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]])


def parse_source(spec: str) -> tuple[str, str]:
    """``demo`` | ``video:PATH`` | ``webcam:N`` | ``keypoints:FILE`` | ``ros`` -> (kind, arg)."""
    kind, _, arg = spec.partition(":")
    if kind not in ("demo", "video", "webcam", "keypoints", "ros"):
        raise ValueError(f"unknown source {spec!r}: use demo, video:PATH, webcam:N, "
                         "keypoints:FILE.npz or ros")  # fmt: skip
    if kind in ("video", "webcam", "keypoints") and not arg:
        raise ValueError(f"source {kind!r} needs an argument, e.g. {kind}:...")
    return kind, arg


class VideoSource:
    """Frames of a video file or camera device as (H, W, 3) uint8 RGB.

    Args:
        spec: ``video:PATH`` or ``webcam:N``.
        hfov_deg: horizontal field of view for the default intrinsics (no calibration).
        loop: restart a video file at its end.
    """

    def __init__(self, spec: str, hfov_deg: float = 65.0, loop: bool = False) -> None:
        kind, arg = parse_source(spec)
        if kind == "video":
            self.capture = cv2.VideoCapture(arg)
            if not self.capture.isOpened():
                raise FileNotFoundError(f"cannot open video {arg!r}")
        elif kind == "webcam":
            if not arg.isdigit():
                raise ValueError(f"webcam index must be a number, got {arg!r}")
            self.capture = cv2.VideoCapture(int(arg))
            if not self.capture.isOpened():
                raise FileNotFoundError(f"cannot open camera {arg} (is it connected?)")
        else:
            raise ValueError(f"VideoSource takes video:PATH or webcam:N, got {spec!r}")
        self.kind, self.loop = kind, loop
        self.fps = float(self.capture.get(cv2.CAP_PROP_FPS) or 30.0) or 30.0
        self.width = int(self.capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self.capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.K = default_intrinsics(self.width, self.height, hfov_deg)
        self.frames_read = 0

    def read(self) -> np.ndarray | None:
        """The next RGB frame, or None at the end of a file."""
        ok, bgr = self.capture.read()
        if not ok and self.kind == "video" and self.loop and self.frames_read > 0:
            self.capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, bgr = self.capture.read()
        if not ok:
            return None
        self.frames_read += 1
        return np.ascontiguousarray(bgr[:, :, ::-1])

    def close(self) -> None:
        self.capture.release()
