"""Property-based fuzzing (hypothesis) of the message and image conversions: any Image
(encoding, size, step, data length) gives an RGB array or a ValueError naming the
problem; keypoint and hand-state messages round-trip or refuse with ValueError."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("hypothesis")
pytest.importorskip("rclpy")
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sensor_msgs.msg import Image

from hand_pose_ros.nodes.conversions import (
    hand_state_from_msg,
    keypoints_from_msg,
    keypoints_to_msg,
)
from hand_pose_ros.nodes.image_conversion import msg_to_rgb

# Hypothesis profiles ("ci", HYPOTHESIS_PROFILE=nightly): test/conftest.py.

ENCODINGS = st.sampled_from(["rgb8", "bgr8", "mono8", "rgba8", "16UC1", "32FC1", "", "RGB8",
                             "yuv422", "bayer_rggb8"])  # fmt: skip


@given(ENCODINGS, st.integers(0, 40), st.integers(0, 40), st.integers(0, 200),
       st.integers(-50, 50), st.integers(0, 255))  # fmt: skip
def test_any_image_message_converts_or_is_refused(encoding, width, height, step, extra, fill):
    msg = Image(encoding=encoding, width=width, height=height, step=step)
    msg.data = bytes([fill]) * max(0, step * height + extra)
    try:
        rgb = msg_to_rgb(msg)
    except ValueError as exc:
        assert str(exc)  # a reason, never an empty error
        return
    assert encoding in ("rgb8", "bgr8", "mono8") and extra == 0
    assert rgb.shape == (height, width, 3) and rgb.dtype == np.uint8
    assert (rgb == fill).all()


@given(hnp.arrays(np.float64, (21, 3), elements=st.floats(-1e6, 1e6)),
       hnp.arrays(np.float64, (21, 2), elements=st.floats(0.0, 1e4)),
       hnp.arrays(np.float64, (21,), elements=st.floats(0.0, 1.0)),
       st.sampled_from(["right", "left"]), st.integers(-1, 2**31 - 1))  # fmt: skip
def test_keypoints_round_trip(cam, uv, conf, side, track):
    from builtin_interfaces.msg import Time

    msg = keypoints_to_msg(cam, stamp=Time(sec=1), frame_id="cam", handedness=side,
                           image_points=uv, confidence=conf, track_id=track)  # fmt: skip
    cam2, uv2, conf2 = keypoints_from_msg(msg)
    np.testing.assert_array_equal(cam2, cam)
    np.testing.assert_array_equal(uv2, uv)
    np.testing.assert_allclose(conf2, conf, atol=1e-7)
    assert msg.track_id == track and msg.handedness == side


@given(st.one_of(st.none(), st.sampled_from(["both", "", "RIGHT"])),
       st.integers(0, 30))  # fmt: skip
def test_keypoint_messages_refuse_bad_sides_and_shapes(side, n):
    from builtin_interfaces.msg import Time

    with pytest.raises(ValueError):
        if side is None:
            keypoints_to_msg(np.zeros((n, 3)) if n != 21 else np.zeros((21, 2)),
                             stamp=Time(), frame_id="c")  # fmt: skip
        else:
            keypoints_to_msg(np.zeros((21, 3)), stamp=Time(), frame_id="c", handedness=side)


@given(st.lists(st.text(max_size=20), max_size=30), st.lists(st.floats(width=32), max_size=30))
def test_hand_state_messages_with_wrong_dof_names_are_refused(names, positions):
    from hand_pose_ros.msg import HandState

    from hand_ik.bio_dofs import BIO_DOF_NAMES

    msg = HandState()
    msg.dof_names = (list(names) + [""] * 23)[:23]
    msg.dof_positions = (np.asarray(list(positions) + [0.0] * 23, np.float32))[:23]
    if sorted(msg.dof_names) == sorted(BIO_DOF_NAMES):
        betas, bio = hand_state_from_msg(msg)
        assert bio.shape == (23,) and betas.shape == (10,)
    else:
        with pytest.raises(ValueError):
            hand_state_from_msg(msg)
