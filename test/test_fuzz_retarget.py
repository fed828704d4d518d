"""Property-based fuzzing (hypothesis) of the retargeter for every shipped robot config.

Any (21, 3) keypoints (NaN, inf, huge, tiny, collinear, one point) in hand_root and any
23 bio DoF give a command that is finite and within the URDF limits, or, for non-finite
keypoints and wrong shapes only, a ValueError naming the problem. Real robots' URDFs come
from ../shared/realdata/robots (skipped without it). ``HYPOTHESIS_PROFILE=nightly`` runs
25x more examples (ci: 40 per robot).
"""

from __future__ import annotations

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from _retarget_helpers import ALL_CONFIGS, load_config, synthetic_keypoints  # noqa: E402
from conftest import fuzz_examples  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from hand_ik.bio_dofs import NUM_BIO_DOFS  # noqa: E402
from hand_ik.retarget import Retargeter  # noqa: E402

#: Any float64, NaN and infinities included, and values near a real hand's scale (metres).
WILD = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-0.2, 0.2),
                 st.sampled_from([0.0, 1e-300, 1e30, -1e300, 1.7e308]))  # fmt: skip


@st.composite
def keypoints(draw) -> np.ndarray:
    """(21, 3) hand_root keypoints: garbage, a scaled/noisy/moved hand, a line or one point."""
    kind = draw(st.sampled_from(["wild", "hand", "collinear", "point"]))
    if kind == "wild":
        return draw(hnp.arrays(np.float64, (21, 3), elements=WILD))
    if kind == "hand":
        kp = synthetic_keypoints(np.random.default_rng(draw(st.integers(0, 2**16))))
        scale = draw(st.sampled_from([0.0, 1e-9, 0.5, 1.0, 2.0, 100.0, 1e30, -1.0]))
        shift = draw(hnp.arrays(np.float64, 3, elements=st.floats(-1e6, 1e6)))
        return kp * scale + shift
    point = draw(hnp.arrays(np.float64, 3, elements=st.floats(-10.0, 10.0)))
    if kind == "point":
        return np.tile(point, (21, 1))
    direction = draw(hnp.arrays(np.float64, 3, elements=st.floats(-1.0, 1.0)))
    steps = draw(hnp.arrays(np.float64, 21, elements=st.floats(-0.2, 0.2)))
    return point + steps[:, None] * direction


#: (23,) bio DoF in radians: anything, realistic angles, or none.
BIO = st.one_of(
    st.none(),
    hnp.arrays(np.float64, NUM_BIO_DOFS, elements=WILD),
    hnp.arrays(np.float64, NUM_BIO_DOFS, elements=st.floats(-1.6, 1.6)),
)

_RETARGETERS: dict[str, Retargeter] = {}


def _retargeter(name: str) -> Retargeter:
    """One built retargeter per config for the whole module (URDF loading is slow)."""
    if name not in _RETARGETERS:
        _RETARGETERS[name] = load_config(name).build()
    return _RETARGETERS[name]


def _check_command(retargeter: Retargeter, command) -> None:
    robot = retargeter.robot
    assert command.names == retargeter.joint_names
    q = np.asarray(command.positions)
    assert q.shape == (len(robot.joint_names),)
    assert np.isfinite(q).all(), q
    assert (q >= robot.lower - 1e-9).all() and (q <= robot.upper + 1e-9).all()


#: Huge finite input overflows inside the optimizer (numpy warns); the command stays safe.
pytestmark = pytest.mark.filterwarnings("ignore:(overflow|invalid value):RuntimeWarning")
_GOOD = synthetic_keypoints(np.random.default_rng(0))


@pytest.mark.parametrize("name", ALL_CONFIGS)
@given(kp=st.one_of(st.none(), keypoints()), bio=BIO, cold=st.booleans())
def test_retarget_any_input_is_finite_within_limits(name, kp, bio, cold):
    retargeter = _retargeter(name)
    if cold:
        retargeter.reset()
    if kp is None and bio is None:
        with pytest.raises(ValueError, match="keypoints_hand_root, bio, or both"):
            retargeter.retarget(kp, bio)
        return
    try:
        command = retargeter.retarget(kp, bio)
    except ValueError as error:
        # Only non-finite keypoints (or finite ones whose scaled vectors overflow) may be
        # refused, with that reason; everything else must give a command.
        assert "NaN or inf" in str(error)
        assert not np.isfinite(retargeter.targets(kp)).all()
    else:
        _check_command(retargeter, command)
    # Whatever came before, a real hand still gives a good command (no poisoned state).
    _check_command(retargeter, retargeter.retarget(_GOOD, None))


@pytest.mark.parametrize("name", ALL_CONFIGS)
@settings(max_examples=fuzz_examples(12))
@given(shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=25),
       keypoints_wrong=st.booleans())  # fmt: skip
def test_wrong_shapes_are_typed_errors(name, shape, keypoints_wrong):
    retargeter = _retargeter(name)
    if keypoints_wrong:
        hypothesis.assume(shape != (21, 3))
        with pytest.raises(ValueError, match=r"keypoints_hand_root must have shape \(21, 3\)"):
            retargeter.retarget(np.zeros(shape), np.zeros(NUM_BIO_DOFS))
    else:
        hypothesis.assume(shape != (NUM_BIO_DOFS,))
        with pytest.raises(ValueError, match=rf"bio must have shape \({NUM_BIO_DOFS},\)"):
            retargeter.retarget(np.zeros((21, 3)), np.zeros(shape))
