"""Retargeting: configs, joint mapping, task-space optimizer, left hands (every shipped config)."""

from __future__ import annotations

import numpy as np
import pytest
from _retarget_helpers import ALL_CONFIGS, human_poses, load_config, synthetic_keypoints
from conftest import REPO_ROOT

from hand_ik.bio_dofs import BIO_DOF_INDEX, NUM_BIO_DOFS
from hand_ik.hand_state import HandState
from hand_ik.retarget import Retargeter, RetargetingConfig, load_retargeting_config

EXPECTED = {"allegro", "shadow", "leap", "ability", "inspire", "hand_pose_ros_hand"}


def test_every_robot_has_a_config():
    assert EXPECTED <= set(ALL_CONFIGS)
    assert {f"{n}_left" for n in EXPECTED} <= set(ALL_CONFIGS)


def test_config_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match=r"unknown robot config 'nope'.*allegro"):
        load_retargeting_config("nope")
    with pytest.raises(ValueError, match="no URDF: pass urdf=PATH"):
        load_retargeting_config("allegro").build()
    with pytest.raises(ValueError, match="no URDF: pass urdf=PATH"):
        Retargeter(load_retargeting_config("allegro"))
    with pytest.raises(FileNotFoundError, match="URDF for robot config 'allegro' not found"):
        load_retargeting_config("allegro", urdf=tmp_path / "missing.urdf")
    with pytest.raises(ValueError, match="unknown retargeting config keys \\['palm'\\]"):
        load_retargeting_config("hand_pose_ros_hand", palm="x")
    with pytest.raises(ValueError, match="a left robot needs det -1"):
        load_retargeting_config("hand_pose_ros_hand", side="left")
    with pytest.raises(ValueError, match=r"joint_map\.FFJ3: unknown bio DoF 'index_flex'"):
        load_retargeting_config("hand_pose_ros_hand", joint_map={"FFJ3": {"index_flex": 1.0}})
    with pytest.raises(ValueError, match=r"optimizer\.iterations"):
        load_retargeting_config("hand_pose_ros_hand", optimizer={"iterations": 0})
    with pytest.raises(ValueError, match="not free robot joints \\['WRJ9'\\]"):
        load_retargeting_config("hand_pose_ros_hand", joint_map={"WRJ9": {"offset": 0.1}}).build()


@pytest.mark.parametrize("name", ALL_CONFIGS)
def test_config_frames_agree_with_the_urdf(name):
    """hand_root_to_palm: human +y is along the robot fingers, +x toward its thumb, +z palmar."""
    config = load_config(name)
    retargeter = config.build()
    robot, opt = retargeter.robot, retargeter.optimizer
    to_human = np.asarray(config.hand_root_to_palm).T
    q0 = np.clip(0.0, robot.free_lower, robot.free_upper)
    vecs = opt.vectors_at(q0)[0] @ to_human.T  # task vectors in human hand_root axes
    tips = dict(zip(config.fingertips, vecs[: retargeter.num_fingertip_vectors], strict=True))
    middle = tips["middle_tip"] / np.linalg.norm(tips["middle_tip"])
    assert middle[1] > 0.9, "fingers point along human +y"
    assert tips["index_tip"][0] > tips["ring_tip"][0], "index is on the thumb side (+x)"
    # Flexing a finger's joints moves its tip palmar (+z).
    flexors = retargeter.joint_map.weights[:, BIO_DOF_INDEX["middle_mcp_flex"]] > 0
    bent, _ = opt.vectors_at(np.clip(q0 + 0.3 * flexors, robot.free_lower, robot.free_upper))
    assert (bent @ to_human.T)[list(config.fingertips).index("middle_tip")][2] > middle[2] + 0.005


@pytest.mark.parametrize("name", ALL_CONFIGS)
def test_sampled_human_poses_give_in_limit_commands(name):
    retargeter = load_config(name).build()
    robot = retargeter.robot
    rng = np.random.default_rng(4)
    for keypoints in human_poses(15, seed=5):
        bio = rng.uniform(-0.3, 1.2, NUM_BIO_DOFS)
        command = retargeter.retarget(keypoints, bio)
        q = command.positions
        assert command.names == robot.joint_names
        assert np.all(np.isfinite(q))
        assert np.all(q >= robot.lower) and np.all(q <= robot.upper)
        # Mimic joints stay consistent with their parents; locked joints stay put.
        np.testing.assert_allclose(q, robot.full_q(robot.free_joint_values(q)), atol=1e-9)
        for joint, value in robot.locked_joints.items():
            assert q[robot.joint_index[joint]] == value


@pytest.mark.parametrize("name", ALL_CONFIGS)
def test_recovers_a_reachable_target_exactly(name):
    """Pose the robot, use its own fingertip vectors as the target, recover them to < 1 mm."""
    # Without the closure blend the targets are linear in the keypoints, so invertible here.
    config = load_config(name, pinch=False, closed_offsets={}, closed_lengths={})
    retargeter = config.build()
    robot, opt = retargeter.robot, retargeter.optimizer
    rng = np.random.default_rng(6)
    mid, half = (robot.free_lower + robot.free_upper) / 2, (robot.free_upper - robot.free_lower) / 2
    n_vec = len(retargeter.target_keypoints)
    for trial in range(3):
        q_true = mid + rng.uniform(-0.5, 0.5, robot.num_free) * half
        vecs, _ = opt.vectors_at(q_true)
        # Human keypoints whose targets (scaled, offset, rotated palm vectors) are the robot's.
        keypoints = np.zeros((21, 3))
        from_palm = np.asarray(config.hand_root_to_palm).T
        for k in range(n_vec):
            human = (vecs[k] - retargeter._vec_offset[k]) / retargeter._vec_scale[k]
            keypoints[retargeter._human_pairs[k, 1]] = from_palm @ human
        np.testing.assert_allclose(retargeter.targets(keypoints), vecs[:n_vec], atol=1e-12)
        retargeter.reset()
        for _ in range(60):  # warm-started frames (3 steps each) from the cold start
            command = retargeter.retarget(keypoints)
        got, _ = opt.vectors_at(robot.free_joint_values(command.positions))
        n_tips = retargeter.num_fingertip_vectors
        error = np.linalg.norm(got[:n_tips] - vecs[:n_tips], axis=1)
        assert error.max() < 1e-3, f"trial {trial}: fingertip errors {error * 1e3} mm"


def test_joint_mapping_with_synthetic_bio():
    retargeter = load_config("hand_pose_ros_hand").build()
    robot, names = retargeter.robot, retargeter.robot.free_names
    bio = np.zeros(NUM_BIO_DOFS)
    bio[BIO_DOF_INDEX["index_mcp_flex"]] = 0.7
    bio[BIO_DOF_INDEX["index_mcp_abd"]] = 0.2
    bio[BIO_DOF_INDEX["little_pip_flex"]] = 5.0  # beyond the limit: clipped
    bio[BIO_DOF_INDEX["ring_dip_flex"]] = np.nan  # non-finite: treated as rest
    command = retargeter.retarget(None, bio)
    q = command.as_dict()
    assert q["FFJ3"] == pytest.approx(0.7)
    # Shadow FF abduction axis points the other way; the flat hand's DoF give the open pose.
    ffj4 = names.index("FFJ4")
    expected = retargeter.open_free[ffj4] - 0.2
    assert q["FFJ4"] == pytest.approx(max(expected, robot.free_lower[ffj4]))
    assert q["LFJ2"] == pytest.approx(robot.upper[robot.joint_index["LFJ2"]])
    assert q["RFJ1"] == 0.0
    assert set(command.names) == set(names)
    with pytest.raises(ValueError, match="needs keypoints_hand_root, bio, or both"):
        retargeter.retarget(None, None)
    with pytest.raises(ValueError, match=r"bio must have shape \(23,\)"):
        retargeter.retarget(None, np.zeros(22))


@pytest.mark.parametrize("name", [n for n in ("ability", "inspire") if n in ALL_CONFIGS])
def test_joint_mapping_drives_mimic_joints(name):
    retargeter = load_config(name).build()
    robot = retargeter.robot
    bio = np.zeros(NUM_BIO_DOFS)
    bio[BIO_DOF_INDEX["index_mcp_flex"]] = 1.0
    bio[BIO_DOF_INDEX["index_pip_flex"]] = 1.0
    q = retargeter.retarget(None, bio).positions
    for mimic in robot.mimics.values():
        parent = q[robot.joint_index[mimic.parent]]
        assert q[robot.joint_index[mimic.name]] == pytest.approx(
            mimic.multiplier * parent + mimic.offset
        )
    assert (
        max(
            q[robot.joint_index[m.name]]
            for m in robot.mimics.values()
            if m.parent.startswith("index")
        )
        > 0.5
    )


def test_joint_mapping_pulls_the_optimizer():
    """With a strong map weight the solution moves toward the joint-mapping result."""
    keypoints = human_poses(1, seed=7)[0]
    bio = np.zeros(NUM_BIO_DOFS)
    bio[BIO_DOF_INDEX["little_mcp_abd"]] = 0.3
    free = load_config("hand_pose_ros_hand").build()
    pulled = load_config("hand_pose_ros_hand", optimizer={"map_weight": 1e4}).build()
    q_free = free.retarget(keypoints).as_dict()["LFJ4"]
    q_pulled = pulled.retarget(keypoints, bio).as_dict()["LFJ4"]
    q_map = pulled.joint_map(bio)[pulled.robot.free_names.index("LFJ4")]  # open pose + 0.3
    assert q_map == pytest.approx(0.3 + pulled.open_free[pulled.robot.free_names.index("LFJ4")])
    assert abs(q_pulled - q_map) < abs(q_free - q_map)
    assert q_pulled == pytest.approx(q_map, abs=0.05)


def test_warm_start_and_reset():
    retargeter = load_config("hand_pose_ros_hand").build()
    poses = human_poses(2, seed=8)
    cold = retargeter.retarget(poses[0]).positions
    retargeter.retarget(poses[1])
    retargeter.reset()
    np.testing.assert_allclose(retargeter.retarget(poses[0]).positions, cold)
    with pytest.raises(ValueError, match="NaN or inf"):
        retargeter.retarget(np.full((21, 3), np.nan))


def test_left_hand_on_left_urdf_mirrors_the_right():
    """A (canonicalised) left hand on our left URDF: same joint angles, mirrored fingertips."""
    right = load_retargeting_config("hand_pose_ros_hand").build()
    left = load_retargeting_config("hand_pose_ros_hand_left").build()
    assert left.config.side == "left" and "left" in str(left.config.urdf)
    for keypoints in human_poses(5, seed=9):
        q_right = right.retarget(keypoints).positions
        q_left = left.retarget(keypoints).positions
        np.testing.assert_allclose(q_left, q_right, atol=1e-9)
        for tip in ("thtip", "fftip"):
            p_right = right.robot.frame_position(right.robot.frame_id(tip)).copy()
            p_left = left.robot.frame_position(left.robot.frame_id(tip))
            np.testing.assert_allclose(p_left, p_right * [-1, 1, 1], atol=1e-9)


@pytest.mark.parametrize("name", ["shadow", "leap", "ability", "inspire", "allegro"])
def test_real_left_hands_match_their_right_hands(name):
    """dex-urdf left hands: a canonical human hand moves the long fingertips alike (mirrored).

    Each side is calibrated on its own open pose and the dex-urdf left models are not exact
    mirrors of the right ones (palm frames, thumb bases), so the fingertips are compared as
    displacements from each robot's open pose; the thumbs are left out (a 4-DoF thumb can
    settle in another local minimum on a cold start).
    """
    right, left = load_config(name).build(), load_config(f"{name}_left").build()

    def displacement(retargeter):
        config = retargeter.config
        fingers = [k for k, kp in enumerate(config.fingertips) if kp != "thumb_tip"]
        now = retargeter.optimizer.vectors_at(retargeter._q_prev)[0]
        rest = retargeter.optimizer.vectors_at(retargeter.open_free)[0]
        return (now - rest)[fingers] @ np.asarray(config.hand_root_to_palm)  # human axes

    for keypoints in human_poses(4, seed=10):
        for _ in range(10):
            right.retarget(keypoints)
            left.retarget(keypoints)
        assert np.abs(displacement(right) - displacement(left)).max() < 0.01


def test_retarget_state_adapter_converts_to_hand_root():
    retargeter = load_config("hand_pose_ros_hand").build()
    keypoints = synthetic_keypoints(np.random.default_rng(11))
    angle = 0.7
    rot = np.array(
        [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    )
    joints_cam = keypoints @ rot.T + [
        0.1,
        -0.05,
        0.5,
    ]  # the same hand somewhere in the camera frame
    state = HandState(
        betas=np.zeros((1, 10)),
        bio=np.zeros((1, NUM_BIO_DOFS)),
        global_orient=np.zeros((1, 3)),
        transl=np.zeros((1, 3)),
        joints=joints_cam[None],
        fit_error=np.zeros(1),
        valid=np.ones(1, bool),
    )
    from_state = retargeter.retarget_state(state).positions
    retargeter.reset()
    import torch

    from hand_ik.frames import to_hand_root

    direct = retargeter.retarget(
        to_hand_root(torch.from_numpy(keypoints)).numpy(), np.zeros(NUM_BIO_DOFS)
    ).positions
    np.testing.assert_allclose(from_state, direct, atol=1e-9)
    state.valid[:] = False
    assert retargeter.retarget_state(state) is None


def test_config_paths_resolve_relative_to_the_yaml():
    config = load_retargeting_config("hand_pose_ros_hand")
    assert config.urdf == str(REPO_ROOT / "urdf" / "hand_pose_ros_hand_right.urdf")
    assert isinstance(config, RetargetingConfig)


def test_commands_report_the_optimizer_result_and_stalls():
    retargeter = load_config("hand_pose_ros_hand").build()
    robot = retargeter.robot
    keypoints = synthetic_keypoints(np.random.default_rng(3))
    command = retargeter.retarget(keypoints)
    assert command.solve is not None and command.solve.reason in (
        "step_tolerance", "max_accepted", "stalled", "cost_tolerance")
    np.testing.assert_allclose(robot.free_joint_values(command.positions), command.solve.x)
    assert retargeter.retarget(None, np.zeros(NUM_BIO_DOFS)).solve is None  # joint map only

    # A Jacobian pointing uphill: no step lowers the cost. The frame says so and holds
    # the start, instead of returning it silently.
    opt = retargeter.optimizer
    true_vectors_at = opt.vectors_at

    def uphill(q, jacobians=False):
        vecs, jac = true_vectors_at(q, jacobians)
        return vecs, None if jac is None else -jac

    opt.vectors_at = uphill
    targets, weights = retargeter.task(keypoints)
    q0 = np.clip(command.solve.x + 0.2, robot.free_lower, robot.free_upper)
    result = opt.solve(targets, q0, q0, None, weights=weights)
    assert result.reason == "stalled" and not result.converged and result.accepted == 0
    np.testing.assert_array_equal(result.x, q0)


def test_hand_size_estimate_is_a_running_mean_per_track():
    from hand_ik.retarget.hand_size import FACTOR_RANGE, HandSizeEstimate, palm_length

    poses = human_poses(3, seed=3)
    estimate = HandSizeEstimate(frames=2)
    assert estimate.factor(0.1) == 1.0  # no hand yet: not scaled
    lengths = [palm_length(p) for p in poses]
    assert estimate.update(poses[0]) == pytest.approx(lengths[0])
    assert estimate.update(poses[1]) == pytest.approx(np.mean(lengths[:2]))
    # After ``frames`` frames: an exponential average with that time constant.
    expected = np.mean(lengths[:2]) + (lengths[2] - np.mean(lengths[:2])) / 2
    assert estimate.update(poses[2]) == pytest.approx(expected)
    assert estimate.update(np.zeros((21, 3))) == pytest.approx(expected)  # no palm: skipped
    assert estimate.factor(2 * expected) == pytest.approx(2.0)
    assert estimate.factor(100 * expected) == FACTOR_RANGE[1]
    estimate.reset()
    assert estimate.length_m is None and estimate.factor(0.1) == 1.0
    with pytest.raises(ValueError, match="frames"):
        HandSizeEstimate(frames=0)


def test_operator_hand_size_anchors_the_flat_hand_and_keeps_the_gain():
    """A flat hand 0.85 times the calibration's gets the calibration's flat targets (the
    robot's open pose); a small motion moves the targets by ``scale`` times it; reset
    forgets the size."""
    from hand_ik.retarget.fidelity import preset_sequence
    from hand_ik.retarget.hand_size import palm_length

    retargeter = load_config("shadow").build()
    config = retargeter.config
    assert config.palm_length_m > 0
    flat = preset_sequence("flat")[0][-1]
    expected = retargeter.targets(flat)
    small = flat * 0.85
    for _ in range(3):
        retargeter.retarget(small)
    assert retargeter.hand_factor == pytest.approx(config.palm_length_m / palm_length(small))
    assert retargeter.hand_factor == pytest.approx(1 / 0.85, rel=1e-3)
    rows = len(retargeter.target_keypoints)
    np.testing.assert_allclose(retargeter.targets(small)[:rows], expected[:rows], atol=1e-5)
    moved = small.copy()
    moved[8] += (0.0, 0.0, 0.002)  # index tip 2 mm palmar: closure stays ~0
    step = retargeter.targets(moved)[1] - retargeter.targets(small)[1]
    palm = np.asarray(config.hand_root_to_palm) @ np.array([0.0, 0.0, 0.002])
    np.testing.assert_allclose(step, config.scale * palm, atol=1e-6)
    retargeter.reset()
    assert retargeter.hand_factor == 1.0
    off = load_config("shadow", palm_length_m=0.0).build()
    off.retarget(small)
    assert off.hand_factor == 1.0
    assert np.abs(off.targets(small)[:rows] - expected[:rows]).max() > 0.01
