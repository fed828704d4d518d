"""Per-stage /diagnostics messages (latency, rate, hand lost)."""

from __future__ import annotations

import time
from collections import deque

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue


class RateMeter:
    """Frames per second over a sliding window of the last ``window`` calls."""

    def __init__(self, window: int = 30) -> None:
        self._times: deque[float] = deque(maxlen=window)

    def tick(self) -> None:
        self._times.append(time.monotonic())

    @property
    def hz(self) -> float:
        if len(self._times) < 2:
            return 0.0
        span = self._times[-1] - self._times[0]
        return (len(self._times) - 1) / span if span > 0 else 0.0


def diagnostic_array(stamp, name: str, values: dict[str, float | str], *, level: int = 0,
                     message: str = "ok") -> DiagnosticArray:  # fmt: skip
    """One status (``hand_pose_ros/<name>``) with key-value pairs (numbers as text)."""
    status = DiagnosticStatus(level=bytes([level]), name=f"hand_pose_ros/{name}", message=message,
                              hardware_id="hand_pose_ros")  # fmt: skip
    status.values = [KeyValue(key=k, value=f"{v:.3f}" if isinstance(v, float) else str(v))
                     for k, v in values.items()]  # fmt: skip
    array = DiagnosticArray()
    array.header.stamp = stamp
    array.status = [status]
    return array
