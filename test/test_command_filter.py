"""CommandFilter: never NaN, out of limits or over velocity; hand lost: hold -> ease -> resume."""

from __future__ import annotations

import numpy as np
import pytest

from hand_ik.command_filter import CommandFilter, CommandFilterConfig, lag_frames

LOWER = np.array([-0.5, 0.0, -1.0])
UPPER = np.array([0.5, 1.5, 1.0])
VELOCITY = np.array([2.0, 4.0, 0.0])  # 0: "no limit in the URDF" -> default
NEUTRAL = np.array([0.0, 0.3, 0.2])
DT = 1.0 / 60.0


@pytest.fixture
def make_filter():
    def make(**overrides) -> CommandFilter:
        return CommandFilter(LOWER, UPPER, VELOCITY, NEUTRAL, CommandFilterConfig(**overrides))

    return make


def _check_safe(outputs: np.ndarray, times: np.ndarray, filt: CommandFilter) -> None:
    assert np.all(np.isfinite(outputs))
    assert np.all(outputs >= LOWER) and np.all(outputs <= UPPER)
    dt = np.minimum(np.diff(np.maximum.accumulate(times)), filt.config.max_dt_s)
    steps = np.abs(np.diff(outputs, axis=0))
    assert np.all(steps <= filt.max_velocity * dt[:, None] + 1e-12)


def test_adversarial_inputs_stay_safe(make_filter):
    filt = make_filter()
    rng = np.random.default_rng(0)
    times, outputs, t = [], [], 0.0
    for _ in range(3000):
        kind = rng.integers(8)
        if kind == 0:
            command = None
        elif kind == 1:
            command = np.full(3, np.nan)
        elif kind == 2:
            command = rng.choice([np.inf, -np.inf, np.nan, 1e9, -1e9], 3)
        elif kind == 3:
            command = rng.uniform(-50, 50, 3)  # wild jumps, far outside the limits
        else:
            command = rng.uniform(LOWER, UPPER)
        gap = rng.choice(
            [DT, DT, DT, 0.0, -0.05, 2.0, 30.0]
        )  # repeats, clock going back, long gaps
        t = t + gap
        times.append(t)
        outputs.append(filt.update(t, command))
    _check_safe(np.array(outputs), np.array(times), filt)


def test_config_validation():
    with pytest.raises(ValueError, match="min_cutoff_hz"):
        CommandFilterConfig(min_cutoff_hz=0.0)
    with pytest.raises(ValueError, match="hold_s"):
        CommandFilterConfig(hold_s=float("nan"))
    with pytest.raises(ValueError, match="neutral must be a finite"):
        CommandFilter(LOWER, UPPER, VELOCITY, np.array([0.0, np.nan, 0.0]))
    with pytest.raises(ValueError, match="command must have shape"):
        CommandFilter(LOWER, UPPER, VELOCITY, NEUTRAL).update(0.0, np.zeros(2))
    with pytest.raises(ValueError, match="time stamp must be finite"):
        CommandFilter(LOWER, UPPER, VELOCITY, NEUTRAL).update(float("inf"), NEUTRAL)


def test_hand_lost_holds_then_eases_to_neutral_then_resumes_without_jump(make_filter):
    filt = make_filter(hold_s=0.5)
    pose = np.array([0.4, 1.2, -0.8])
    t = 0.0
    for _ in range(120):  # settle on the pose
        out = filt.update(t, pose)
        t += DT
    np.testing.assert_allclose(out, pose, atol=1e-3)
    held = out.copy()
    # Hold: the output does not move during hold_s.
    while filt.hand_lost_s is None or filt.hand_lost_s < 0.49:
        np.testing.assert_array_equal(filt.update(t, None), held)
        t += DT
    # Ease: moves monotonically toward neutral, slower than the velocity limit, and gets there.
    previous_distance = np.abs(held - NEUTRAL)
    eased = []
    for _ in range(600):
        out = filt.update(t, None)
        t += DT
        eased.append(out)
        distance = np.abs(out - NEUTRAL)
        assert np.all(distance <= previous_distance + 1e-12)
        previous_distance = distance
    eased = np.array(eased)
    assert np.all(
        np.abs(np.diff(eased, axis=0))
        <= filt.max_velocity * filt.config.ease_velocity_fraction * DT + 1e-12
    )
    np.testing.assert_allclose(eased[-1], NEUTRAL, atol=1e-9)
    # Resume: a far-away command is approached within the velocity limit, no jump.
    last = eased[-1]
    resumed = []
    for _ in range(200):
        resumed.append(filt.update(t, pose))
        t += DT
    resumed = np.array(resumed)
    first_step = np.abs(resumed[0] - last)
    assert np.all(first_step <= filt.max_velocity * DT + 1e-12)
    assert np.all(np.abs(np.diff(resumed, axis=0)) <= filt.max_velocity * DT + 1e-12)
    np.testing.assert_allclose(resumed[-1], pose, atol=1e-3)


def test_partial_nan_keeps_that_joint(make_filter):
    filt = make_filter()
    filt.update(0.0, np.array([0.1, 0.5, 0.0]))
    out = filt.update(DT, np.array([np.nan, 0.5, 0.0]))
    assert out[0] == pytest.approx(0.1)
    assert filt.hand_lost_s == 0.0


def test_smoothing_reduces_noise_and_lag_is_bounded(make_filter):
    filt = make_filter()
    rng = np.random.default_rng(1)
    t = np.arange(600) * DT
    clean = np.stack(
        [
            0.3 * np.sin(2 * np.pi * 0.5 * t),
            0.7 + 0.3 * np.sin(2 * np.pi * 0.3 * t),
            0.1 * t / t[-1],
        ],
        1,
    )
    noisy = clean + rng.normal(0.0, 0.01, clean.shape)
    out = np.stack([filt.update(ti, qi) for ti, qi in zip(t, noisy, strict=True)])
    jitter_in = np.abs(np.diff(noisy[100:], axis=0)).mean()
    jitter_out = np.abs(np.diff(out[100:], axis=0)).mean()
    assert jitter_out < 0.5 * jitter_in
    assert lag_frames(clean[100:], out[100:]) <= 6  # <= 0.1 s at 60 Hz with the defaults


def test_first_command_passes_clipped_and_reset(make_filter):
    filt = make_filter()
    np.testing.assert_array_equal(filt.update(0.0, np.array([9.0, -9.0, np.nan])), [0.5, 0.0, 0.2])
    filt.reset()
    np.testing.assert_array_equal(filt.update(5.0, None), NEUTRAL)


def test_start_from_the_robots_joints_limits_the_first_step(make_filter):
    filt = make_filter()
    assert not filt.started
    robot = np.array([0.4, 1.2, -0.8])
    filt.start_from(0.0, robot)
    assert filt.started
    far = np.array([-0.5, 0.0, 1.0])  # the hand's pose, far from where the robot is
    first = filt.update(DT, far)
    assert np.all(np.abs(first - robot) <= filt.max_velocity * DT + 1e-12)
    without = make_filter().update(DT, far)
    np.testing.assert_allclose(without, far)  # no robot state: straight through
    with pytest.raises(ValueError, match="finite"):
        filt.start_from(0.0, np.array([0.0, np.nan, 0.0]))
