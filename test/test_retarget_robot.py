"""RobotModel: URDF loading, mimic coupling, limits, analytic Jacobians; our shipped URDF."""

from __future__ import annotations

import numpy as np
import pytest
from _retarget_helpers import ALL_CONFIGS, load_config
from conftest import REPO_ROOT, realdata_path

from hand_ik.robot import RobotModel

OUR_URDF = REPO_ROOT / "urdf" / "hand_pose_ros_hand_right.urdf"


def test_missing_urdf_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="robot URDF not found"):
        RobotModel(tmp_path / "nope.urdf")


def test_unknown_link_lists_valid_links():
    robot = RobotModel(OUR_URDF)
    with pytest.raises(ValueError, match=r"no link named 'fingertip'.*fftip"):
        robot.frame_id("fingertip")


def test_our_hand_has_shadow_layout():
    robot = RobotModel(OUR_URDF)
    # 22 actuated joints of the Shadow hand without its wrist: 4 x (J4..J1) + LFJ5 + 5 thumb joints.
    assert len(robot.joint_names) == 22 and robot.num_free == 22
    assert {"FFJ4", "LFJ5", "THJ5", "THJ1"} <= set(robot.joint_names)
    i = robot.joint_index["THJ4"]
    np.testing.assert_allclose([robot.lower[i], robot.upper[i]], [0.0, np.deg2rad(70)], atol=1e-6)


def test_our_hand_matches_the_shadow_kinematics():
    """Same published kinematics: fingertips coincide with dex-urdf's Shadow in the palm frame."""
    ours = RobotModel(OUR_URDF)
    shadow = RobotModel(
        realdata_path("robots", "shadow_hand", "shadow_hand_right.urdf"), {"WRJ1": 0.0, "WRJ2": 0.0}
    )
    rng = np.random.default_rng(0)
    q = rng.uniform(ours.free_lower, ours.free_upper)
    q_shadow = np.array([q[ours.free_names.index(n)] for n in shadow.free_names])
    ours.forward_kinematics(ours.full_q(q))
    shadow.forward_kinematics(shadow.full_q(q_shadow))
    rot, pos = shadow.frame_pose(shadow.frame_id("palm"))
    for tip in ("thtip", "fftip", "mftip", "rftip", "lftip"):
        ours_tip = ours.frame_position(ours.frame_id(tip))
        shadow_tip = rot.T @ (shadow.frame_position(shadow.frame_id(tip)) - pos)
        np.testing.assert_allclose(ours_tip, shadow_tip, atol=1e-4, err_msg=tip)


def test_left_urdf_is_the_mirror_image():
    right = RobotModel(OUR_URDF)
    left = RobotModel(REPO_ROOT / "urdf" / "hand_pose_ros_hand_left.urdf")
    assert right.joint_names == left.joint_names
    q = np.random.default_rng(1).uniform(right.free_lower, right.free_upper)
    right.forward_kinematics(right.full_q(q))
    left.forward_kinematics(left.full_q(q))
    for tip in ("thtip", "fftip", "lftip"):
        p_right = right.frame_position(right.frame_id(tip))
        p_left = left.frame_position(left.frame_id(tip))
        np.testing.assert_allclose(p_left, p_right * [-1.0, 1.0, 1.0], atol=1e-9)


@pytest.mark.parametrize(
    "name", [n for n in ALL_CONFIGS if n in ("ability", "inspire", "ability_left", "inspire_left")]
)
def test_mimic_joints_follow_their_parent_and_stay_in_limits(name):
    config = load_config(name)
    robot = RobotModel(config.urdf)
    assert robot.mimics, "these hands have mimic joints"
    rng = np.random.default_rng(2)
    for _ in range(20):
        q = robot.full_q(rng.uniform(robot.free_lower, robot.free_upper))
        for mimic in robot.mimics.values():
            i, p = robot.joint_index[mimic.name], robot.joint_index[mimic.parent]
            assert q[i] == pytest.approx(mimic.multiplier * q[p] + mimic.offset)
        assert np.all(q >= robot.lower - 1e-9) and np.all(q <= robot.upper + 1e-9)


@pytest.mark.parametrize("name", ALL_CONFIGS)
def test_analytic_jacobian_matches_finite_differences(name):
    retargeter = load_config(name).build()
    optimizer, robot = retargeter.optimizer, retargeter.robot
    rng = np.random.default_rng(3)
    q = rng.uniform(robot.free_lower + 0.05, robot.free_upper - 0.05)
    _, jac = optimizer.vectors_at(q, jacobians=True)
    eps = 1e-6
    numeric = np.zeros_like(jac)
    for j in range(robot.num_free):
        dq = np.zeros(robot.num_free)
        dq[j] = eps
        plus, _ = optimizer.vectors_at(q + dq)
        minus, _ = optimizer.vectors_at(q - dq)
        numeric[:, :, j] = (plus - minus) / (2 * eps)
    np.testing.assert_allclose(jac, numeric, atol=1e-6)
