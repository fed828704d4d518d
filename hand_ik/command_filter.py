"""Command safety between retargeter and robot: One Euro smoothing, limits, hand-lost policy.

Per call the filter (1) low-passes the new command per joint with a One Euro
filter (Casiez et al., CHI 2012: the cutoff rises with speed, so slow motion
is smoothed and fast motion lags little), (2) limits the change since the
last output to ``velocity * dt`` per joint, (3) clips to the joint limits.
When the hand is lost (``None`` or an all non-finite input) it holds the last
output for ``hold_s``, then eases to the neutral pose at most at
``ease_velocity_fraction`` of the velocity limits; when the hand comes back,
the velocity limit carries the output from where it is to the new command,
so there is never a jump. Outputs are always finite and within limits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class CommandFilterConfig:
    """Smoothing, rate limits and hand-lost timing of the ``CommandFilter``."""

    min_cutoff_hz: float = 4.0
    """One Euro cutoff at rest (lower: smoother, more lag)."""
    beta: float = 0.5
    """One Euro speed coefficient (Hz per rad/s): higher follows fast motion with less lag."""
    d_cutoff_hz: float = 1.0
    """Cutoff of the speed estimate."""
    velocity_fraction: float = 1.0
    """Fraction of the URDF velocity limits allowed."""
    default_velocity_rad_s: float = 2.0
    """Velocity limit for joints whose URDF gives none (<= 0)."""
    hold_s: float = 0.5
    """Time the last command is held after the hand is lost."""
    ease_velocity_fraction: float = 0.25
    """Fraction of the velocity limits used to ease to the neutral pose."""
    max_dt_s: float = 0.1
    """Time steps longer than this (gaps, clock jumps) count as this long for rate limiting."""

    def __post_init__(self) -> None:
        for name in ("min_cutoff_hz", "d_cutoff_hz", "velocity_fraction", "default_velocity_rad_s",
                     "ease_velocity_fraction", "max_dt_s"):  # fmt: skip
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be finite and > 0, got {value}")
        for name in ("beta", "hold_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {value}")


def one_euro_alpha(dt: float, cutoff_hz: np.ndarray | float) -> np.ndarray | float:
    """First-order low-pass blend factor for a step ``dt`` (Casiez et al. 2012, eq. 2)."""
    tau = 1.0 / (2.0 * math.pi * cutoff_hz)
    return dt / (dt + tau)


class CommandFilter:
    """Stateful per-robot command filter (see module docstring).

    Args:
        lower, upper: (n,) joint limits, radians.
        velocity: (n,) joint velocity limits, rad/s (<= 0 or non-finite: use the default).
        neutral: (n,) neutral pose (clipped to the limits).
        config: filter settings.
    """

    def __init__(
        self,
        lower: np.ndarray,
        upper: np.ndarray,
        velocity: np.ndarray,
        neutral: np.ndarray,
        config: CommandFilterConfig | None = None,
    ):
        self.config = config or CommandFilterConfig()
        self.lower = np.asarray(lower, dtype=float)
        self.upper = np.asarray(upper, dtype=float)
        n = self.lower.shape
        if (
            len(n) != 1
            or self.upper.shape != n
            or np.any(~np.isfinite(self.lower))
            or np.any(self.lower > self.upper)
        ):
            raise ValueError("lower/upper must be finite (n,) arrays with lower <= upper")
        velocity = np.asarray(velocity, dtype=float)
        if velocity.shape != n:
            raise ValueError(f"velocity must have shape {n}, got {velocity.shape}")
        velocity = np.where(
            np.isfinite(velocity) & (velocity > 0), velocity, self.config.default_velocity_rad_s
        )
        self.max_velocity = velocity * self.config.velocity_fraction
        neutral = np.asarray(neutral, dtype=float)
        if neutral.shape != n or not np.all(np.isfinite(neutral)):
            raise ValueError(f"neutral must be a finite array of shape {n}")
        self.neutral = np.clip(neutral, self.lower, self.upper)
        self.reset()

    def reset(self) -> None:
        """Forget all state: the next valid command passes straight through (clipped)."""
        self._out: np.ndarray | None = None
        self._smooth: np.ndarray | None = None
        self._speed = np.zeros_like(self.lower)
        self._t: float | None = None
        self._last_seen: float | None = None

    @property
    def started(self) -> bool:
        """Whether there is a previous output (a command, or :meth:`start_from`)."""
        return self._out is not None

    def start_from(self, t: float, positions: np.ndarray) -> None:
        """Begin at the robot's measured ``positions`` (n,), radians, at time ``t`` seconds.

        Without it the first command passes straight through (the filter does not know
        where the robot is); after it, every command moves away from ``positions`` at most
        at the velocity limits, e.g. when this filter's process restarts mid-run.
        """
        q = np.asarray(positions, dtype=float)
        if q.shape != self.lower.shape or not np.all(np.isfinite(q)):
            raise ValueError(f"positions must be finite with shape {self.lower.shape}")
        self.reset()
        self._t = float(t)
        self._out = np.clip(q, self.lower, self.upper)
        self._smooth = self._out.copy()

    @property
    def hand_lost_s(self) -> float | None:
        """Seconds since the last valid command (None before any)."""
        if self._last_seen is None or self._t is None:
            return None
        return self._t - self._last_seen

    def update(self, t: float, command: np.ndarray | None) -> np.ndarray:
        """Filter one command.

        Args:
            t: time stamp, seconds (non-increasing stamps are treated as a zero step).
            command: (n,) raw joint positions, or None when the hand is lost.
                Non-finite entries are ignored (that joint keeps its last value).

        Returns:
            (n,) finite positions within the limits, changed from the previous
            output by at most ``velocity * dt`` per joint.
        """
        t = float(t)
        if not math.isfinite(t):
            raise ValueError(f"time stamp must be finite, got {t}")
        dt = 0.0 if self._t is None else min(max(t - self._t, 0.0), self.config.max_dt_s)
        self._t = t if self._t is None else max(t, self._t)
        raw = None if command is None else np.asarray(command, dtype=float)
        if raw is not None and raw.shape != self.lower.shape:
            raise ValueError(f"command must have shape {self.lower.shape}, got {raw.shape}")
        valid = raw is not None and bool(np.any(np.isfinite(raw)))
        if self._out is None:
            start = self.neutral if not valid else np.where(np.isfinite(raw), raw, self.neutral)
            self._out = np.clip(start, self.lower, self.upper)
            self._smooth = self._out.copy()
            self._last_seen = self._t if valid else None
            return self._out.copy()
        if valid:
            self._last_seen = self._t
            # A NaN or inf joint keeps its smoothed value; inf is also clipped away here.
            raw = np.where(np.isfinite(raw), raw, self._smooth)
            target = self._one_euro(np.clip(raw, self.lower, self.upper), dt)
            rate = self.max_velocity
        else:
            lost = math.inf if self._last_seen is None else self._t - self._last_seen
            if lost <= self.config.hold_s:
                target, rate = self._out, self.max_velocity
            else:
                target, rate = self.neutral, self.max_velocity * self.config.ease_velocity_fraction
            # Restart the smoother from the held/eased output so resuming is continuous.
            self._smooth = self._out.copy()
            self._speed[:] = 0.0
        step = np.clip(target - self._out, -rate * dt, rate * dt)
        self._out = np.clip(self._out + step, self.lower, self.upper)
        return self._out.copy()

    def _one_euro(self, x: np.ndarray, dt: float) -> np.ndarray:
        if dt <= 0.0:
            return self._smooth
        speed = (x - self._smooth) / dt
        self._speed += one_euro_alpha(dt, self.config.d_cutoff_hz) * (speed - self._speed)
        cutoff = self.config.min_cutoff_hz + self.config.beta * np.abs(self._speed)
        self._smooth = self._smooth + one_euro_alpha(dt, cutoff) * (x - self._smooth)
        return self._smooth


def lag_frames(raw: np.ndarray, filtered: np.ndarray, max_lag: int = 30) -> int:
    """Delay in frames that best aligns ``filtered`` with ``raw`` ((T, n) arrays): the added lag."""
    raw, filtered = np.asarray(raw, float), np.asarray(filtered, float)
    errors = [
        np.mean((filtered[lag:] - raw[: len(raw) - lag]) ** 2)
        for lag in range(min(max_lag, len(raw) - 1) + 1)
    ]
    return int(np.argmin(errors))
