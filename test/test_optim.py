"""``hand_ik.optim.least_squares``: exactness, convergence, monotone cost, honest flags."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra.numpy import arrays  # noqa: E402

from hand_ik.optim import LMConfig, least_squares  # noqa: E402

FINITE = st.floats(-10.0, 10.0, allow_nan=False, allow_infinity=False)


def _linear(a: np.ndarray, b: np.ndarray):
    def residuals(x, jacobian):
        r = a @ x - b
        return r, (a if jacobian else None)

    return residuals


def _rosenbrock(x, jacobian):
    """Batched Rosenbrock as residuals: (B, 2) -> (B, 2), minimum 0 at (1, 1)."""
    r = np.stack([1 - x[..., 0], 10 * (x[..., 1] - x[..., 0] ** 2)], axis=-1)
    if not jacobian:
        return r, None
    jac = np.zeros((*x.shape[:-1], 2, 2))
    jac[..., 0, 0] = -1.0
    jac[..., 1, 0] = -20.0 * x[..., 0]
    jac[..., 1, 1] = 10.0
    return r, jac


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), rows=st.integers(3, 12), cols=st.integers(1, 3))
def test_linear_least_squares_is_solved_exactly(seed, rows, cols):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(rows, cols)) + 3 * np.eye(rows, cols)  # well conditioned
    b = rng.normal(size=rows)
    result = least_squares(_linear(a, b), rng.normal(size=cols), LMConfig(max_iterations=50))
    expected = np.linalg.lstsq(a, b, rcond=None)[0]
    np.testing.assert_allclose(result.x, expected, atol=1e-6)
    assert result.converged and result.reason == "cost_tolerance"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rosenbrock_converges_batched_and_alone(dtype):
    starts = np.array([[-1.2, 1.0], [0.5, 0.5], [1.0, 1.0], [2.0, -1.0]], dtype=dtype)
    batched = least_squares(_rosenbrock, starts, LMConfig(max_iterations=200))
    np.testing.assert_allclose(batched.x, np.ones((4, 2)), atol=1e-6)
    assert batched.converged.all() and batched.x.dtype == np.float64
    for i, start in enumerate(starts):
        alone = least_squares(_rosenbrock, start, LMConfig(max_iterations=200))
        np.testing.assert_allclose(alone.x, batched.x[i], atol=1e-12)
        assert alone.iterations == batched.iterations[i]


@settings(max_examples=40, deadline=None)
@given(start=arrays(np.float64, 2, elements=FINITE), budget=st.integers(0, 30),
       scaling=st.sampled_from(["marquardt", "identity"]))
def test_cost_never_increases(start, budget, scaling):
    linearised = []  # cost at every point the solver re-linearises at: the accepted ones

    def recording(x, jacobian):
        r, jac = _rosenbrock(x, jacobian)
        if jacobian:
            linearised.append(0.5 * float(r @ r))
        return r, jac

    result = least_squares(recording, start, LMConfig(max_iterations=budget, scaling=scaling))
    # (the solver sums the squares its own way: allow the last bit)
    assert all(b <= a * (1 + 1e-12) for a, b in itertools.pairwise(linearised))
    assert result.cost <= linearised[-1] * (1 + 1e-12) <= linearised[0] * (1 + 1e-11)
    assert result.iterations <= budget and result.accepted <= result.iterations


def test_not_converged_when_the_budget_runs_out():
    result = least_squares(_rosenbrock, np.array([-1.2, 1.0]), LMConfig(max_iterations=3))
    assert not result.converged and result.reason == "max_iterations"
    assert result.iterations == 3
    capped = least_squares(_rosenbrock, np.array([-1.2, 1.0]),
                           LMConfig(max_iterations=None, max_accepted=2, max_rejections=4))
    assert not capped.converged and capped.reason == "max_accepted" and capped.accepted == 2
    zero = least_squares(_rosenbrock, np.array([-1.2, 1.0]), LMConfig(max_iterations=0))
    assert zero.iterations == 0 and not zero.converged
    np.testing.assert_array_equal(zero.x, [-1.2, 1.0])


def test_stalled_when_no_step_lowers_the_cost():
    """A Jacobian that points the wrong way: every step raises the cost."""

    def wrong(x, jacobian):
        return x.copy(), (-np.eye(len(x)) if jacobian else None)

    result = least_squares(wrong, np.array([1.0, -2.0]),
                           LMConfig(max_iterations=None, max_accepted=10, max_rejections=4))
    assert result.reason == "stalled" and not result.converged and result.accepted == 0
    np.testing.assert_array_equal(result.x, [1.0, -2.0])


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), rank=st.integers(0, 2),
       scaling=st.sampled_from(["marquardt", "identity"]))
def test_rank_deficient_jacobians_give_no_nan(seed, rank, scaling):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(6, rank)) @ rng.normal(size=(rank, 4))  # rank < 4 columns
    b = rng.normal(size=6)
    for min_damping in (0.0, 1e-9):
        config = LMConfig(max_iterations=20, scaling=scaling, min_damping=min_damping)
        result = least_squares(_linear(a, b), rng.normal(size=4), config)
        assert np.isfinite(result.x).all() and np.isfinite(result.cost)
        best = 0.5 * np.sum((a @ np.linalg.lstsq(a, b, rcond=None)[0] - b) ** 2)
        assert result.cost <= best + 1e-6


def test_bounds_and_trust_region_are_respected():
    a, b = np.eye(3), np.array([5.0, -5.0, 0.5])
    result = least_squares(_linear(a, b), np.zeros(3), LMConfig(max_iterations=50, max_step=0.3),
                           lower=-np.ones(3), upper=np.ones(3))  # fmt: skip
    np.testing.assert_allclose(result.x, [1.0, -1.0, 0.5], atol=1e-9)
    one_step = least_squares(_linear(a, b), np.zeros(3), LMConfig(max_iterations=1, max_step=0.3))
    assert np.abs(one_step.x).max() <= 0.3 + 1e-12


def test_retract_updates_on_a_manifold():
    """Unit-circle angle through a retraction that wraps the parameter."""
    target = np.array([np.cos(2.0), np.sin(2.0)])

    def residuals(x, jacobian):
        r = np.array([np.cos(x[0]), np.sin(x[0])]) - target
        return r, (np.array([[-np.sin(x[0])], [np.cos(x[0])]]) if jacobian else None)

    def wrap(x, step):
        return np.mod(x + step + np.pi, 2 * np.pi) - np.pi

    result = least_squares(residuals, np.array([0.5]), LMConfig(max_iterations=50), retract=wrap)
    np.testing.assert_allclose(result.x, [2.0], atol=1e-6)


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="scaling"):
        LMConfig(scaling="none")
    with pytest.raises(ValueError, match="max_iterations=None"):
        LMConfig(max_iterations=None)
    with pytest.raises(ValueError, match="damping"):
        LMConfig(damping=-1.0)
    with pytest.raises(ValueError, match="box bounds"):
        least_squares(_rosenbrock, np.zeros(2), retract=lambda x, s: x + s, lower=np.zeros(2))
