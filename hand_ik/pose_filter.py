"""Wrist pose smoothing for an arm: One Euro on position and orientation, hand-lost policy.

The same filter family as the robot command filter (``hand_ik.command_filter``): per call
the filter low-passes the new pose with a One Euro filter (Casiez et al., CHI 2012: the
cutoff rises with speed, so a still hand is smoothed and a fast one lags little).

- Position (metres): a vector One Euro filter; its speed is the norm of the filtered
  velocity (m/s), so the smoothing is the same whatever the axes.
- Orientation (unit quaternion, x y z w as in ``geometry_msgs``): the same filter on the
  rotation manifold: the step from the smoothed to the new orientation is a rotation
  vector; the smoothed orientation moves along it by the One Euro factor (a slerp), and
  its speed is the norm of the filtered angular velocity (rad/s). ``q`` and ``-q`` are
  the same rotation: the input is taken in the hemisphere of the previous output, so a
  sign flip of the input never moves the output, and the output's sign is continuous.

Hand lost (``None``, or a pose with a non-finite value or a zero quaternion): the last
output is held for ``hold_s``, then the filter returns ``None``: the hand is reported
lost and nothing is published. Unlike the fingers, a wrist has no neutral pose to ease
to (an arm target at some fixed place in front of the camera would move the arm on its
own), so after the hold the arm's own controller decides (stop, or hold its position).
A hand that comes back within the hold continues the smoothing from the held pose
(continuous); one that comes back later starts afresh at its new pose.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation

from hand_ik.command_filter import one_euro_alpha


@dataclass
class OneEuroConfig:
    """One Euro filter settings for one quantity (position or orientation)."""

    min_cutoff_hz: float = 1.0
    """Cutoff at rest, Hz (lower: smoother, more lag)."""
    beta: float = 0.0
    """Cutoff increase per unit of speed, Hz per m/s (position) or per rad/s (orientation):
    higher follows fast motion with less lag."""
    d_cutoff_hz: float = 1.0
    """Cutoff of the speed estimate, Hz."""

    def __post_init__(self) -> None:
        for name in ("min_cutoff_hz", "d_cutoff_hz"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be finite and > 0, got {value}")
        if not (math.isfinite(self.beta) and self.beta >= 0):
            raise ValueError(f"beta must be finite and >= 0, got {self.beta}")


@dataclass
class WristPoseFilterConfig:
    """Smoothing and hand-lost timing of the ``WristPoseFilter``."""

    position: OneEuroConfig = field(default_factory=lambda: OneEuroConfig(1.0, 20.0))
    """Position smoothing (beta in Hz per m/s)."""
    orientation: OneEuroConfig = field(default_factory=lambda: OneEuroConfig(1.0, 2.0))
    """Orientation smoothing (beta in Hz per rad/s)."""
    hold_s: float = 0.5
    """Time the last pose is held after the hand is lost; then it is reported lost."""
    max_dt_s: float = 0.1
    """Time steps longer than this (gaps, clock jumps) count as this long for smoothing."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.hold_s) and self.hold_s >= 0):
            raise ValueError(f"hold_s must be finite and >= 0, got {self.hold_s}")
        if not (math.isfinite(self.max_dt_s) and self.max_dt_s > 0):
            raise ValueError(f"max_dt_s must be finite and > 0, got {self.max_dt_s}")


@dataclass
class WristPose:
    """A wrist pose: the hand_root frame in the camera frame."""

    position: np.ndarray
    """(3,) origin, metres."""
    orientation: np.ndarray
    """(4,) unit quaternion x, y, z, w (the frame's rotation into the camera frame)."""


def checked_pose(pose: WristPose | None) -> WristPose | None:
    """``pose`` as float arrays with a unit quaternion, or None if it is no usable pose
    (None, a non-finite value or a zero quaternion).

    Raises:
        ValueError: a position that is not (3,) or an orientation that is not (4,).
    """
    if pose is None:
        return None
    p = np.asarray(pose.position, dtype=float)
    q = np.asarray(pose.orientation, dtype=float)
    if p.shape != (3,) or q.shape != (4,):
        raise ValueError(f"position must be (3,) and orientation (4,), got {p.shape}, {q.shape}")
    norm = float(np.linalg.norm(q))
    # A zero (or denormal) quaternion has no direction: no rotation can be read from it.
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(q)) and norm > 1e-9):
        return None
    return WristPose(p, q / norm)


class WristPoseFilter:
    """Stateful wrist pose filter for one hand (see module docstring)."""

    def __init__(self, config: WristPoseFilterConfig | None = None) -> None:
        self.config = config or WristPoseFilterConfig()
        self.reset()

    def reset(self) -> None:
        """Forget all state: the next valid pose passes straight through."""
        self._pos: np.ndarray | None = None
        self._pos_speed = np.zeros(3)
        self._rot: Rotation | None = None
        self._quat: np.ndarray | None = None  # the output quaternion (sign-continuous)
        self._ang_speed = np.zeros(3)
        self._t: float | None = None
        self._last_seen: float | None = None

    @property
    def hand_lost_s(self) -> float | None:
        """Seconds since the last valid pose (None before any)."""
        if self._last_seen is None or self._t is None:
            return None
        return self._t - self._last_seen

    @property
    def lost(self) -> bool:
        """Whether the hand is reported lost: no pose yet, or none for longer than ``hold_s``."""
        lost_s = self.hand_lost_s
        return lost_s is None or lost_s > self.config.hold_s

    def update(self, t: float, pose: WristPose | None) -> WristPose | None:
        """Filter one pose.

        Args:
            t: time stamp, seconds (non-increasing stamps are treated as a zero step).
            pose: the measured wrist pose, or None when the hand is lost (a pose with a
                non-finite value or a zero quaternion counts as None).

        Returns:
            The smoothed pose (the held one while the hand is lost for up to ``hold_s``),
            or None: no pose yet, or the hand is lost for longer than ``hold_s``.
        """
        t = float(t)
        if not math.isfinite(t):
            raise ValueError(f"time stamp must be finite, got {t}")
        dt = 0.0 if self._t is None else min(max(t - self._t, 0.0), self.config.max_dt_s)
        self._t = t if self._t is None else max(t, self._t)
        measured = checked_pose(pose)
        if measured is None:
            if self._pos is None or self.lost:
                return None
            return self._output()
        if self._pos is None or self.lost:
            self.reset()
            self._t = t
            self._pos = measured.position.copy()
            self._rot = Rotation.from_quat(measured.orientation)
            self._quat = measured.orientation.copy()
        else:
            self._smooth_position(measured.position, dt)
            self._smooth_orientation(measured.orientation, dt)
        self._last_seen = self._t
        return self._output()

    def _output(self) -> WristPose:
        return WristPose(self._pos.copy(), self._quat.copy())

    def _smooth_position(self, x: np.ndarray, dt: float) -> None:
        if dt <= 0.0:
            return
        cfg = self.config.position
        velocity = (x - self._pos) / dt
        self._pos_speed += one_euro_alpha(dt, cfg.d_cutoff_hz) * (velocity - self._pos_speed)
        cutoff = cfg.min_cutoff_hz + cfg.beta * float(np.linalg.norm(self._pos_speed))
        self._pos = self._pos + one_euro_alpha(dt, cutoff) * (x - self._pos)

    def _smooth_orientation(self, q: np.ndarray, dt: float) -> None:
        if dt <= 0.0:
            return
        cfg = self.config.orientation
        # The step from the smoothed orientation to the new one, in the smoothed frame: a
        # rotation vector of at most pi (scipy picks the short way whatever q's sign).
        step = (self._rot.inv() * Rotation.from_quat(q)).as_rotvec()
        angular = step / dt
        self._ang_speed += one_euro_alpha(dt, cfg.d_cutoff_hz) * (angular - self._ang_speed)
        cutoff = cfg.min_cutoff_hz + cfg.beta * float(np.linalg.norm(self._ang_speed))
        self._rot = self._rot * Rotation.from_rotvec(one_euro_alpha(dt, cutoff) * step)
        quat = self._rot.as_quat()
        # Keep the output in the previous output's hemisphere: no sign flips downstream.
        self._quat = -quat if float(np.dot(quat, self._quat)) < 0.0 else quat
