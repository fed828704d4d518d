"""Camera frames from a video file or an OpenCV device (webcam, RealSense RGB via UVC)."""

from __future__ import annotations

import math
import threading

import cv2
import numpy as np

from hand_pose_ros.graph_plan import parse_source
from hand_pose_ros.pipeline.defaults import DEFAULT_HFOV_DEG


def default_intrinsics(width: int, height: int,
                       hfov_deg: float = DEFAULT_HFOV_DEG) -> np.ndarray:  # fmt: skip
    """Pinhole K for an uncalibrated camera from its horizontal field of view."""
    f = 0.5 * width / math.tan(math.radians(hfov_deg) / 2)
    return np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]])


class VideoSource:
    """Frames of a video file or camera device as (H, W, 3) uint8 RGB.

    Args:
        spec: ``video:PATH`` or ``webcam:N``.
        hfov_deg: horizontal field of view for the default intrinsics (no calibration).
        loop: restart a video file at its end.
        prefetch: decode in a background thread (OpenCV releases the GIL while decoding,
            so the next frame is ready on the other core when asked for). A file keeps
            every frame in order; a live camera keeps only the newest frame.
    """

    def __init__(self, spec: str, hfov_deg: float = DEFAULT_HFOV_DEG, loop: bool = False,
                 prefetch: bool = False) -> None:  # fmt: skip
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
        self._prefetch = _Prefetcher(self._decode, live=kind == "webcam") if prefetch else None

    def read(self) -> np.ndarray | None:
        """The next RGB frame, or None at the end of a file."""
        if self._prefetch is not None:
            frame = self._prefetch.get()
        else:
            frame = self._decode()
        if frame is not None:
            self.frames_read += 1
        return frame

    def _decode(self) -> np.ndarray | None:
        ok, bgr = self.capture.read()
        if not ok and self.kind == "video" and self.loop and self.frames_read > 0:
            self.capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, bgr = self.capture.read()
        if not ok:
            return None
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        if self._prefetch is not None:
            self._prefetch.stop()
        self.capture.release()


class _Prefetcher:
    """Calls ``decode`` in a daemon thread and hands its frames over one at a time.

    ``live=False`` (files): the thread waits until its frame is taken, so none is lost.
    ``live=True`` (cameras): a newer frame replaces one not yet taken.
    """

    def __init__(self, decode, live: bool) -> None:
        self._decode, self._live = decode, live
        self._cond = threading.Condition()
        self._slot: list = []  # at most one frame; [None] marks the end
        self._stopped = False
        self._thread = threading.Thread(target=self._run, daemon=True, name="video-prefetch")
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                frame = self._decode()
            except Exception as exc:  # re-raised in the reader's thread
                frame = exc
            with self._cond:
                while self._slot and not self._live and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                self._slot[:] = [frame]
                self._cond.notify_all()
            if frame is None or isinstance(frame, Exception):
                return

    def get(self) -> np.ndarray | None:
        with self._cond:
            while not self._slot:
                self._cond.wait()
            frame = self._slot[0]
            if frame is not None and not isinstance(frame, Exception):
                self._slot.clear()  # the end marker stays for later reads
                self._cond.notify_all()
        if isinstance(frame, Exception):
            raise frame
        return frame

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._thread.join(timeout=2.0)
