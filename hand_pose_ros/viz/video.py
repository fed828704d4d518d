"""Video outputs: a side-by-side .mp4 writer (OpenCV) and small GIFs for the docs (Pillow).

Codec: ``cv2.VideoWriter`` with fourcc ``mp4v`` (MPEG-4 Part 2) in an .mp4 container,
checked with opencv-python-headless 5.0 (its bundled FFmpeg): the file reopens with
``cv2.VideoCapture`` with every frame, and plays in VLC / ffplay / most desktop players.
Browsers and GitHub do not play MPEG-4 Part 2 inline (they want H.264, which the pip
OpenCV wheels do not encode), hence ``write_gif`` for the README.
FFmpeg silently crops odd frame sizes to even ones, so frames are padded to even sizes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

import cv2
import numpy as np
from PIL import Image

_log = logging.getLogger(__name__)

#: FourCC of the .mp4 writer.
FOURCC = "mp4v"


def _check_rgb(image: np.ndarray, name: str) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"{name} must be an (H, W, 3) uint8 RGB image, got {image.dtype} "
                         f"{image.shape}")  # fmt: skip
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {image.shape}")
    return image


def _resize_to_height(image: np.ndarray, height: int) -> np.ndarray:
    h, w = image.shape[:2]
    if h == height:
        return image
    width = max(1, round(w * height / h))
    interp = cv2.INTER_AREA if height < h else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interp)


def tile_side_by_side(left: np.ndarray, right: np.ndarray, height: int | None = None) -> np.ndarray:
    """Put two RGB images next to each other at a common height (aspect ratios kept).

    Args:
        left, right: (H, W, 3) uint8 RGB images of any sizes.
        height: output height in pixels; None: the left image's height.

    Returns:
        (height, W_left' + W_right', 3) uint8 RGB image.
    """
    left, right = _check_rgb(left, "left"), _check_rgb(right, "right")
    height = left.shape[0] if height is None else int(height)
    if height <= 0:
        raise ValueError(f"height must be positive, got {height}")
    return np.concatenate([_resize_to_height(left, height), _resize_to_height(right, height)], 1)


class SideBySideWriter:
    """Writes pairs of RGB images, tiled left | right, to an .mp4 file.

    The frame size is fixed by the first pair (common height = the left image's
    height, rounded up to even); later pairs are tiled the same way and resized to that
    size if they differ. Use as a context manager; the file is complete after ``close``.

    Args:
        path: output file (``.mp4``); parent folders are created.
        fps: frame rate written in the file, frames per second.
        height: common height in pixels; None: the first left image's height.

    Attributes:
        frame_count: frames written so far.
        frame_size: (width, height) of the video, None before the first write.
    """

    def __init__(self, path: str | Path, fps: float, height: int | None = None):
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.path = Path(path)
        self.fps = float(fps)
        self.height = height
        self.frame_count = 0
        self.frame_size: tuple[int, int] | None = None
        self._writer: cv2.VideoWriter | None = None
        self._closed = False

    def __enter__(self) -> SideBySideWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _open(self, width: int, height: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fourcc = cv2.VideoWriter_fourcc(*FOURCC)
        writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, (width, height))
        if not writer.isOpened():
            raise RuntimeError(
                f"cv2.VideoWriter could not open {self.path} (fourcc {FOURCC}, {width}x{height}); "
                "is OpenCV built with FFmpeg? (cv2.getBuildInformation(), 'Video I/O')"
            )
        self._writer = writer
        self.frame_size = (width, height)
        _log.info("writing %s: %dx%d @ %.1f fps (%s)", self.path, width, height, self.fps, FOURCC)

    def write(self, left: np.ndarray, right: np.ndarray) -> None:
        """Tile ``left`` | ``right`` ((H, W, 3) uint8 RGB each) and append one frame."""
        if self._closed:
            raise RuntimeError(f"SideBySideWriter({self.path}) is closed")
        frame = tile_side_by_side(left, right, self.height)
        if self._writer is None:
            h, w = frame.shape[:2]
            self._open(w + w % 2, h + h % 2)  # FFmpeg crops odd sizes: pad to even
        width, height = self.frame_size
        h, w = frame.shape[:2]
        if (w, h) != (width, height):
            if abs(w - width) <= 1 and abs(h - height) <= 1:
                frame = cv2.copyMakeBorder(frame, 0, height - h, 0, width - w,
                                           cv2.BORDER_REPLICATE)  # fmt: skip
            else:
                frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
        self._writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        self.frame_count += 1

    def close(self) -> None:
        """Finish the file (idempotent). A writer that never got a frame writes no file."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            _log.info("wrote %d frames to %s", self.frame_count, self.path)
        self._closed = True


def write_gif(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: float,
    max_width: int = 480,
    colours: int = 64,
) -> int:
    """Write RGB frames as a looping GIF, small enough for a README.

    Frames are downscaled to at most ``max_width`` pixels wide, quantized to one shared
    ``colours``-entry palette (taken from a few frames spread over the clip, so colours do
    not flicker) without dithering (dithering noise defeats GIF compression), and stored
    with Pillow's frame differencing (``optimize``).

    Args:
        path: output ``.gif``; parent folders are created.
        frames: (H, W, 3) uint8 RGB images, all the same size.
        fps: playback rate; GIF delays have 10 ms steps, so it is rounded.
        max_width: largest output width in pixels.
        colours: palette size, 2..256.

    Returns:
        The file size in bytes.
    """
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if not 2 <= colours <= 256:
        raise ValueError(f"colours must be in 2..256, got {colours}")
    images = [_check_rgb(f, f"frames[{i}]") for i, f in enumerate(frames)]
    if not images:
        raise ValueError("write_gif needs at least one frame")
    shape = images[0].shape
    if any(f.shape != shape for f in images):
        raise ValueError(f"all frames must have the same shape; first is {shape}")
    h, w = shape[:2]
    if w > max_width:
        size = (max_width, max(1, round(h * max_width / w)))
        images = [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in images]
    # Shared palette from up to 8 frames spread over the clip, side by side.
    picks = images[:: max(1, len(images) // 8)][:8]
    palette = Image.fromarray(np.concatenate(picks, axis=1)).quantize(
        colours, method=Image.Quantize.MEDIANCUT
    )
    pil = [Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in images]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    duration_ms = max(20, round(100.0 / fps) * 10)  # browsers treat < 20 ms as 100 ms
    pil[0].save(
        path, save_all=True, append_images=pil[1:], duration=duration_ms, loop=0,
        optimize=True, disposal=1,
    )  # fmt: skip
    size = path.stat().st_size
    _log.info("wrote %s: %d frames, %dx%d, %.2f MB", path, len(pil), *pil[0].size, size / 1e6)
    return size
