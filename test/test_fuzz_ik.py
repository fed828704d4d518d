"""Property-based fuzzing (hypothesis) of the IK entry points, the plausibility gate and the
command filter: garbage in never gives NaN, inf, an exception or a command outside the
limits out. ``HYPOTHESIS_PROFILE=nightly`` runs 25x more examples."""

from __future__ import annotations

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

# Hypothesis profiles ("ci", HYPOTHESIS_PROFILE=nightly): test/conftest.py.

#: Any float64, NaN and infinities included, and values near a real hand's scale.
WILD = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                 st.floats(-1.0, 1.0), st.sampled_from([0.0, 1e-30, 1e30, -1e300]))  # fmt: skip


@pytest.fixture(scope="module")
def stage():
    import torch

    from hand_pose_ros.pipeline.stages import IKStage

    torch.set_num_threads(1)
    return IKStage()


@pytest.fixture(scope="module")
def demo_joints():
    from hand_pose_ros.pipeline.demo import DemoHand

    demo = DemoHand()
    return np.stack([demo.frame_at(i).joints_cam for i in range(0, 396, 40)])


def _check_state(state, stage) -> None:
    for name in ("betas", "bio", "global_orient", "transl", "joints", "fit_error"):
        assert np.isfinite(getattr(state, name)).all(), name
    lower, upper = stage.solver.kinematics.lower.numpy(), stage.solver.kinematics.upper.numpy()
    assert (state.bio >= lower - 1e-6).all() and (state.bio <= upper + 1e-6).all()
    if state.valid[0]:
        assert stage.last_rejection is None
        assert state.fit_error[0] <= stage.config.plausibility.max_fit_error_m


@given(hnp.arrays(np.float64, (21, 3), elements=WILD), st.sampled_from(["right", "left"]),
       st.integers(-1, 3))  # fmt: skip
def test_ik_stage_never_fails_on_any_keypoints(stage, joints, side, track):
    state = stage.solve(joints, side, track)
    _check_state(state, stage)


@given(st.integers(0, 9), st.floats(1e-3, 1e3), st.floats(-10.0, 10.0),
       hnp.arrays(np.float64, (21, 3), elements=st.floats(-0.02, 0.02)),
       st.lists(st.integers(0, 20), max_size=8))  # fmt: skip
def test_ik_stage_on_scaled_moved_noisy_and_partial_hands(stage, demo_joints, frame, scale,
                                                          shift, noise, missing):  # fmt: skip
    joints = demo_joints[frame] * scale + noise + np.array([0.0, 0.0, shift])
    joints[missing] = np.nan
    state = stage.solve(joints)
    _check_state(state, stage)
    if state.valid[0]:  # only plausible hands drive anything
        from hand_ik.plausibility import check_hand_keypoints

        assert check_hand_keypoints(joints, stage.config.plausibility) is None


def test_implausible_hands_are_refused_with_a_reason(stage, demo_joints):
    j = demo_joints[0]
    cases = {
        "palm length": j * 1e30,
        "wrist depth": j + np.array([0.0, 0.0, 1e4]),
        "palm length ": np.random.default_rng(0).normal(size=(21, 3)) * 100.0,
        "line": np.outer(np.linspace(0.0, 0.1, 21), [1.0, 1.0, 1.0]) + np.array([0, 0, 0.4]),
        "palm not observed": j * np.nan,
    }
    for expected, joints in cases.items():
        state = stage.solve(joints)
        assert not state.valid[0], expected
        if expected != "line":
            assert expected.strip() in stage.last_rejection
        assert stage.last_rejection
    assert stage.solve(j).valid[0] and stage.last_rejection is None
    with pytest.raises(ValueError, match="21, 3"):
        stage.solve(np.zeros((20, 3)))


@given(st.lists(st.one_of(st.none(), hnp.arrays(np.float64, (5,), elements=WILD)),
                min_size=1, max_size=40),
       st.lists(st.floats(0.0, 0.5), min_size=40, max_size=40))  # fmt: skip
def test_command_filter_output_is_always_safe(commands, steps):
    from hand_ik.command_filter import CommandFilter

    lower, upper = np.array([-1.0, 0.0, 0.0, -0.5, 0.2]), np.array([1.0, 1.5, 0.1, 0.5, 0.3])
    velocity = np.array([2.0, 1.0, 3.0, 0.5, 1.0])
    f = CommandFilter(lower, upper, velocity, (lower + upper) / 2)
    t, previous = 0.0, None
    for command, dt in zip(commands, steps, strict=False):
        t += dt
        out = f.update(t, command)
        assert np.isfinite(out).all() and (out >= lower).all() and (out <= upper).all()
        if previous is not None:
            step_dt = min(dt, f.config.max_dt_s)
            assert (np.abs(out - previous) <= f.max_velocity * step_dt + 1e-9).all()
        previous = out


def test_warm_start_memory_is_bounded_as_track_ids_grow(demo_joints):
    """Track ids grow without end as hands are lost and found again (an 8-minute soak showed
    the IK node's memory growing with them): only the most recent tracks are kept."""
    from hand_pose_ros.pipeline.stages import MAX_WARM_START_TRACKS, IKStage

    stage = IKStage()
    for track_id in range(3 * MAX_WARM_START_TRACKS):
        assert stage.solve(demo_joints[track_id % len(demo_joints)], track_id=track_id).valid[0]
    assert list(stage._previous) == list(range(2 * MAX_WARM_START_TRACKS,
                                               3 * MAX_WARM_START_TRACKS))  # fmt: skip
    stage.solve(demo_joints[0], track_id=2 * MAX_WARM_START_TRACKS)  # seen again: kept newest
    assert next(reversed(stage._previous)) == 2 * MAX_WARM_START_TRACKS
