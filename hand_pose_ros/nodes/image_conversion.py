"""sensor_msgs/Image <-> numpy without cv_bridge (the PyPI cv_bridge is a broken ROS 1 copy)."""

from __future__ import annotations

import numpy as np
from sensor_msgs.msg import CameraInfo, Image

_CHANNELS = {"rgb8": 3, "bgr8": 3, "mono8": 1}


def image_to_msg(rgb: np.ndarray, *, stamp, frame_id: str) -> Image:
    """(H, W, 3) uint8 RGB -> an ``rgb8`` Image."""
    rgb = np.ascontiguousarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected (H, W, 3) uint8 RGB, got {rgb.dtype} {rgb.shape}")
    msg = Image()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(rgb.shape[0]), int(rgb.shape[1])
    msg.encoding = "rgb8"
    msg.is_bigendian = 0
    msg.step = msg.width * 3
    msg.data = rgb.tobytes()
    return msg


def msg_to_rgb(msg: Image) -> np.ndarray:
    """An Image (rgb8, bgr8 or mono8) -> (H, W, 3) uint8 RGB.

    Raises:
        ValueError: unsupported encoding, empty image, or a size that does not match
            width, height and step.
    """
    channels = _CHANNELS.get(msg.encoding)
    if channels is None:
        raise ValueError(f"unsupported image encoding {msg.encoding!r} (use one of "
                         f"{sorted(_CHANNELS)})")  # fmt: skip
    if msg.width == 0 or msg.height == 0:
        raise ValueError("empty image (width or height is 0)")
    if msg.step < msg.width * channels or len(msg.data) != msg.step * msg.height:
        raise ValueError(f"image data of {len(msg.data)} bytes does not match {msg.height} rows "
                         f"x step {msg.step} (width {msg.width}, {msg.encoding})")  # fmt: skip
    rows = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)
    pixels = rows[:, : msg.width * channels].reshape(msg.height, msg.width, channels)
    if msg.encoding == "mono8":
        return np.repeat(pixels, 3, axis=2)
    if msg.encoding == "bgr8":
        return np.ascontiguousarray(pixels[..., ::-1])
    return np.ascontiguousarray(pixels)


def camera_info_msg(K: np.ndarray, width: int, height: int, *, stamp, frame_id: str) -> CameraInfo:
    """A pinhole CameraInfo (no distortion) for intrinsics ``K`` (3, 3)."""
    msg = CameraInfo()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.width, msg.height = int(width), int(height)
    msg.distortion_model = "plumb_bob"
    msg.d = [0.0] * 5
    msg.k = np.asarray(K, dtype=float).reshape(9).tolist()
    msg.r = np.eye(3).reshape(9).tolist()
    p = np.zeros((3, 4))
    p[:, :3] = K
    msg.p = p.reshape(12).tolist()
    return msg
