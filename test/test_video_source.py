"""VideoSource: a prefetching reader gives the same frames as a plain one, in order, ends
cleanly, and passes decoding errors to the reader."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from hand_pose_ros.pipeline.video_source import VideoSource, _Prefetcher


def _write_video(path, frames: int = 12) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(frames):
        img = np.zeros((48, 64, 3), np.uint8)
        img[:, :, 2] = 20 * i  # red grows frame by frame (BGR order in OpenCV)
        writer.write(img)
    writer.release()


def test_prefetch_gives_every_frame_in_order(tmp_path):
    path = tmp_path / "clip.avi"
    _write_video(path)
    plain, ahead = VideoSource(f"video:{path}"), VideoSource(f"video:{path}", prefetch=True)
    try:
        reds = []
        while (frame := plain.read()) is not None:
            other = ahead.read()
            assert other is not None and np.array_equal(frame, other)
            reds.append(int(frame[..., 0].mean()))  # RGB: red first
        assert ahead.read() is None and ahead.read() is None  # the end stays the end
        assert len(reds) == 12 and reds == sorted(reds)
        assert plain.frames_read == ahead.frames_read == 12
    finally:
        plain.close()
        ahead.close()


def test_live_prefetch_keeps_the_newest_frame_and_raises_decode_errors():
    frames = iter([np.zeros((2, 2, 3), np.uint8), np.ones((2, 2, 3), np.uint8)])

    def decode():
        try:
            return next(frames)
        except StopIteration:
            raise OSError("camera unplugged") from None

    prefetch = _Prefetcher(decode, live=True)
    with pytest.raises(OSError, match="unplugged"):
        for _ in range(3):
            prefetch.get()
    prefetch.stop()
