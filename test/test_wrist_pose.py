"""The wrist pose for an arm: the pose filter (no ROS) and the wrist pose node on real rclpy
(PoseStamped and TF agree with each other and with HandState.wrist_pose, per side frame
names, hand lost -> held then stopped, parameters from the config, all live)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from conftest import spin_until
from scipy.spatial.transform import Rotation

from hand_ik.command_filter import lag_frames
from hand_ik.pose_filter import OneEuroConfig, WristPose, WristPoseFilter, WristPoseFilterConfig

FPS = 30.0


def _angle_deg(q1: np.ndarray, q2: np.ndarray) -> float:
    """Angle between two rotations given as quaternions x y z w, degrees."""
    return float(np.degrees((Rotation.from_quat(q1).inv() * Rotation.from_quat(q2)).magnitude()))


def _run(f: WristPoseFilter, positions, quats, t0: float = 0.0) -> list[WristPose | None]:
    return [f.update(t0 + i / FPS, WristPose(p, q)) for i, (p, q) in
            enumerate(zip(positions, quats, strict=True))]  # fmt: skip


# --- the filter, without ROS -------------------------------------------------------------


@pytest.mark.parametrize("config, field", [
    (lambda: OneEuroConfig(min_cutoff_hz=0.0), "min_cutoff_hz"),
    (lambda: OneEuroConfig(beta=-1.0), "beta"),
    (lambda: OneEuroConfig(d_cutoff_hz=float("nan")), "d_cutoff_hz"),
    (lambda: WristPoseFilterConfig(hold_s=-0.1), "hold_s"),
    (lambda: WristPoseFilterConfig(max_dt_s=0.0), "max_dt_s"),
])  # fmt: skip
def test_config_refuses_bad_values_naming_the_field(config, field):
    with pytest.raises(ValueError, match=field):
        config()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_constant_pose_passes_through_and_a_step_converges(dtype):
    rng = np.random.default_rng(0)
    p0, q0 = rng.normal(0, 0.1, 3).astype(dtype), Rotation.random(random_state=1).as_quat()
    f = WristPoseFilter()
    out = _run(f, [p0] * 10, [q0.astype(dtype)] * 10)
    for pose in out:  # the first pose passes through; a constant one stays put
        np.testing.assert_allclose(pose.position, p0, atol=1e-6)
        assert _angle_deg(pose.orientation, q0) < 1e-4
    p1 = p0 + np.array([0.1, -0.05, 0.02], dtype=dtype)
    q1 = (Rotation.from_quat(q0) * Rotation.from_rotvec([0.0, 0.6, 0.0])).as_quat()
    out = _run(f, [p1] * 60, [q1] * 60, t0=10 / FPS)  # 2 s after a step
    assert np.linalg.norm(out[-1].position - p1) < 1e-3
    assert _angle_deg(out[-1].orientation, q1) < 0.1
    assert np.linalg.norm(out[0].position - p0) < np.linalg.norm(p1 - p0)  # smoothed, not a jump


def _noisy_trajectory(seed: int, still: bool, frames: int = 300):
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / FPS
    moving = 0.0 if still else 1.0
    position = np.stack([0.1 * moving * np.sin(np.pi * t), 0.05 * moving * np.cos(np.pi * t),
                         0.5 + 0 * t], 1)  # fmt: skip
    rotvec = np.stack([0.5 * moving * np.sin(np.pi * t), 0.3 * moving * np.cos(np.pi * t),
                       0.2 + 0 * t], 1)  # fmt: skip
    noisy_p = position + rng.normal(0, 0.003, position.shape)  # 3 mm
    noisy_r = Rotation.from_rotvec(rotvec) * Rotation.from_rotvec(rng.normal(0, 0.02, (frames, 3)))
    return position, Rotation.from_rotvec(rotvec), noisy_p, noisy_r


def _errors(truth_p, truth_r, p, r, skip: int = 30) -> tuple[float, float]:
    """Mean position error (m) and angle error (rad) after ``skip`` frames."""
    return (float(np.linalg.norm(p - truth_p, axis=1)[skip:].mean()),
            float((truth_r.inv() * r).magnitude()[skip:].mean()))  # fmt: skip


def test_noise_is_reduced_on_a_still_hand_and_a_moving_one_lags_at_most_a_frame():
    for still in (True, False):
        truth_p, truth_r, noisy_p, noisy_r = _noisy_trajectory(0, still)
        out = _run(WristPoseFilter(), noisy_p, noisy_r.as_quat())
        p = np.array([o.position for o in out])
        r = Rotation.from_quat([o.orientation for o in out])
        raw = _errors(truth_p, truth_r, noisy_p, noisy_r)
        filtered = _errors(truth_p, truth_r, p, r)
        jitter = lambda x: np.linalg.norm(np.diff(x, 2, axis=0), axis=1)[30:].mean()  # noqa: E731
        if still:  # measured: 4.8 -> 2.0 mm, 1.8 -> 0.7 deg, jitter x0.17 and x0.15
            assert filtered[0] < 0.5 * raw[0] and filtered[1] < 0.5 * raw[1]
            assert jitter(p) < 0.3 * jitter(noisy_p)
            assert jitter(r.as_rotvec()) < 0.3 * jitter(noisy_r.as_rotvec())
        else:  # 0.5 Hz, 0.3 m/s, 0.8 rad/s; measured: jitter x0.5 and x0.4, lag 0 and 1 frame
            assert jitter(p) < 0.7 * jitter(noisy_p)
            assert jitter(r.as_rotvec()) < 0.7 * jitter(noisy_r.as_rotvec())
            assert lag_frames(noisy_p, p) <= 1
            assert lag_frames(noisy_r.as_rotvec(), r.as_rotvec()) <= 1
            assert filtered[0] < 0.01 and np.degrees(filtered[1]) < 4.0


def test_quaternion_sign_flips_do_not_move_the_output_and_its_sign_is_continuous():
    rng = np.random.default_rng(2)
    base = Rotation.from_rotvec([0.3, -2.9, 0.4])  # near pi: the short way matters
    steps = Rotation.from_rotvec(np.outer(np.arange(90) / FPS, [0.0, 0.0, 1.0]))
    truth = (base * steps).as_quat()
    flipped = truth * rng.choice([-1.0, 1.0], size=(90, 1))
    f_ref, f_flip = WristPoseFilter(), WristPoseFilter()
    ref = _run(f_ref, [np.zeros(3)] * 90, truth)
    out = _run(f_flip, [np.zeros(3)] * 90, flipped)
    for a, b in zip(ref, out, strict=True):
        assert _angle_deg(a.orientation, b.orientation) < 1e-6
    quats = np.array([o.orientation for o in out])
    assert (np.sum(quats[1:] * quats[:-1], axis=1) > 0.99).all()  # no sign jump frame to frame


def test_lost_hand_is_held_then_reported_lost_and_restarts_at_its_new_pose():
    cfg = WristPoseFilterConfig(hold_s=0.5)
    f = WristPoseFilter(cfg)
    q = np.array([0.0, 0.0, 0.0, 1.0])
    last = _run(f, [np.array([0.0, 0.0, 0.5])] * 10, [q] * 10)[-1]
    t_last = 9 / FPS
    assert not f.lost
    for dt in (0.1, 0.3, 0.5):  # held: the very same pose
        held = f.update(t_last + dt, None)
        np.testing.assert_array_equal(held.position, last.position)
        np.testing.assert_array_equal(held.orientation, last.orientation)
    assert f.update(t_last + 0.52, None) is None and f.lost  # then: nothing, reported lost
    assert f.hand_lost_s == pytest.approx(0.52)
    bad = WristPose(np.array([np.nan, 0.0, 0.0]), q)  # a non-finite pose is no hand either
    assert f.update(t_last + 0.6, bad) is None
    assert f.update(t_last + 0.6, WristPose(np.zeros(3), np.zeros(4))) is None
    back = f.update(t_last + 0.7, WristPose(np.array([0.2, 0.0, 0.4]), q))  # starts afresh
    np.testing.assert_allclose(back.position, [0.2, 0.0, 0.4])
    assert not f.lost
    # Back within the hold: smoothing continues from the held pose (no jump).
    f.update(t_last + 0.9, None)
    resumed = f.update(t_last + 0.9 + 1 / FPS, WristPose(np.array([0.3, 0.0, 0.4]), q))
    assert 0.2 < resumed.position[0] < 0.3
    with pytest.raises(ValueError, match="position"):
        f.update(2.0, WristPose(np.zeros(2), q))
    assert WristPoseFilter().update(0.0, None) is None  # nothing before the first pose


# --- the node, on real rclpy -------------------------------------------------------------

FRAME = "camera_optical_frame"


def _hand_state(side: str, position, quat, stamp, frame_id: str = FRAME):
    from hand_pose_ros.msg import HandState

    msg = HandState()
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    msg.handedness = side
    msg.score = 1.0
    p, o = msg.wrist_pose.position, msg.wrist_pose.orientation
    p.x, p.y, p.z = (float(v) for v in position)
    o.x, o.y, o.z, o.w = (float(v) for v in quat)
    return msg


@pytest.fixture
def wrist_graph(rclpy_context):
    """The wrist pose node (hold 0.3 s, lost after 0.1 s), a HandState publisher and
    listeners on both pose topics, /tf and /diagnostics."""
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import PoseStamped
    from hand_pose_ros.msg import HandState
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from tf2_msgs.msg import TFMessage

    from hand_pose_ros.nodes import wrist_pose_node as wpn
    from hand_pose_ros.nodes.qos import RESULT_PUB_QOS, TF_QOS
    from hand_pose_ros.params import load_node_parameters

    ctx = rclpy_context
    params = {**load_node_parameters()["wrist_pose_node"], "filter.hold_s": 0.3,
              "hand_lost_timeout_s": 0.1}  # fmt: skip
    node = wpn.WristPoseNode(context=ctx, parameter_overrides=[
        Parameter(k, value=v) for k, v in params.items()])  # fmt: skip
    peer = Node("wrist_test_peer", context=ctx)
    pub = peer.create_publisher(HandState, "/hand/state", RESULT_PUB_QOS)
    got: dict[str, list] = {"right": [], "left": [], "tf": [], "diag": []}
    keep = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    for side in wpn.SIDES:
        peer.create_subscription(PoseStamped, wpn.pose_topic(side),
                                 lambda m, s=side: got[s].append((time.monotonic(), m)), keep)
    peer.create_subscription(TFMessage, "/tf", lambda m: got["tf"].extend(m.transforms), TF_QOS)
    peer.create_subscription(DiagnosticArray, "/diagnostics",
                             lambda m: got["diag"].extend(m.status), 10)  # fmt: skip
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    executor.add_node(peer)
    # Wait until the node's subscription matched the publisher (discovery).
    spin_until(executor, 10.0, until=lambda: pub.get_subscription_count() > 0)
    yield executor, node, peer, pub, got
    executor.shutdown()
    node.destroy_node()
    peer.destroy_node()


def _stream(executor, peer, pub, poses: dict, frames: int) -> list:
    """Publish ``frames`` hand states per side at 30 Hz (``poses``: side -> (p, q))."""
    stamps = []
    for _ in range(frames):
        stamp = peer.get_clock().now().to_msg()
        stamps.append(stamp)
        for side, (p, q) in poses.items():
            pub.publish(_hand_state(side, p, q, stamp))
            spin_until(executor, 0.005)
        spin_until(executor, 1 / FPS)
    return stamps


def _pose_arrays(msg) -> tuple[np.ndarray, np.ndarray]:
    p, o = msg.pose.position, msg.pose.orientation
    return np.array([p.x, p.y, p.z]), np.array([o.x, o.y, o.z, o.w])


def test_node_publishes_each_sides_pose_and_tf_agreeing_with_the_hand_state(wrist_graph):
    from hand_pose_ros.nodes import wrist_pose_node as wpn

    executor, _node, peer, pub, got = wrist_graph
    poses = {"right": (np.array([0.05, -0.02, 0.45]), Rotation.from_rotvec([0.2, 0.1, -0.3])),
             "left": (np.array([-0.08, 0.01, 0.5]), Rotation.from_rotvec([-0.4, 2.0, 0.1]))}
    quats = {s: (p, r.as_quat()) for s, (p, r) in poses.items()}
    stamps = _stream(executor, peer, pub, quats, 45)
    spin_until(executor, 0.05)
    for side in wpn.SIDES:
        assert len(got[side]) >= 20, f"{side}: {len(got[side])} poses"
        p, q = _pose_arrays(got[side][-1][1])
        # Constant input: the filter's output is the hand state's wrist pose.
        np.testing.assert_allclose(p, poses[side][0], atol=1e-6)
        assert _angle_deg(q, quats[side][1]) < 1e-3
        for _, msg in got[side]:
            assert msg.header.frame_id == FRAME
        # Stamped with the image's stamp (a held pose, on a loaded machine, is stamped now).
        assert stamps[-1] in [m.header.stamp for _, m in got[side]]
    for side in wpn.SIDES:
        tfs = [t for t in got["tf"] if t.child_frame_id == wpn.wrist_frame(side)]
        assert len(tfs) == len(got[side])
        pose = got[side][-1][1]
        tf = tfs[-1]
        assert tf.header == pose.header and tf.header.frame_id == FRAME
        tr, ro = tf.transform.translation, tf.transform.rotation
        np.testing.assert_allclose([tr.x, tr.y, tr.z], _pose_arrays(pose)[0])
        np.testing.assert_allclose([ro.x, ro.y, ro.z, ro.w], _pose_arrays(pose)[1])
    # publish_tf false (live): poses go on, transforms stop.
    from rclpy.parameter import Parameter

    assert _node.set_parameters([Parameter("publish_tf", value=False)])[0].successful
    n_tf, n_right = len(got["tf"]), len(got["right"])
    _stream(executor, peer, pub, {"right": quats["right"]}, 5)
    spin_until(executor, 0.05)
    assert len(got["tf"]) == n_tf and len(got["right"]) >= n_right + 3
    # A hand state without a frame_id: the pose is in camera_frame_id.
    pub.publish(_hand_state("right", *quats["right"], stamps[-1], frame_id=""))
    spin_until(executor, 1.0, until=lambda: len(got["right"]) > n_right + 5)
    assert got["right"][-1][1].header.frame_id == FRAME


def test_transform_is_the_pose_with_the_sides_frame_names():
    from hand_pose_ros.nodes import wrist_pose_node as wpn

    pose = wpn.pose_stamped_to_msg(WristPose(np.array([0.1, 0.2, 0.3]),
                                             np.array([0.0, 0.6, 0.0, 0.8])),
                                   stamp=wpn.TransformStamped().header.stamp, frame_id=FRAME)
    for side in ("right", "left"):
        tf = wpn.transform_from_pose(pose, wpn.wrist_frame(side))
        assert (tf.header.frame_id, tf.child_frame_id) == (FRAME, f"hand_{side}_wrist")
        assert wpn.pose_topic(side) == f"/hand/{side}/wrist_pose"
        assert (tf.transform.translation.x, tf.transform.translation.y,
                tf.transform.translation.z) == (0.1, 0.2, 0.3)  # fmt: skip
        assert tf.transform.rotation == pose.pose.orientation


def test_lost_hand_is_held_then_no_longer_published(wrist_graph):
    executor, node, peer, pub, got = wrist_graph
    p, q = np.array([0.0, 0.0, 0.5]), np.array([0.0, 0.0, 0.0, 1.0])
    _stream(executor, peer, pub, {"right": (p, q)}, 20)
    t_last = time.monotonic()
    n_tracking = len(got["right"])
    spin_until(executor, 1.0)
    held = [(t, m) for t, m in got["right"][n_tracking:]]
    # Held from the 0.1 s timeout to 0.3 s after the last state (timer at 30 Hz), then none.
    assert len(held) >= 3, len(held)
    assert max(t for t, _ in held) - t_last < 0.3 + 0.15
    for _, m in held:
        np.testing.assert_allclose(_pose_arrays(m)[0], p, atol=1e-9)
    assert node.filters["right"].lost
    assert got["diag"][-1].message == "right lost, left lost"
    assert got["diag"][-1].level == bytes([1])
    assert not got["left"]  # the other side never appeared: nothing published for it


def test_parameters_come_from_the_config_and_are_all_live(rclpy_context):
    from rclpy.parameter import Parameter

    from hand_pose_ros.nodes.config_params import config_parameters
    from hand_pose_ros.nodes.wrist_pose_node import WristPoseNode, WristPoseNodeConfig
    from hand_pose_ros.params import load_node_parameters

    node = WristPoseNode(context=rclpy_context)
    try:
        defaults = config_parameters(WristPoseNodeConfig())
        declared = {n: node.get_parameter(n).value for n in defaults}
        assert declared == defaults
        assert load_node_parameters()["wrist_pose_node"] == defaults  # the shipped YAML agrees
        for name, value in defaults.items():  # every one is live
            assert node.set_parameters([Parameter(name, value=value)])[0].successful, name
        result = node.set_parameters([Parameter("filter.position.min_cutoff_hz", value=-1.0)])[0]
        assert not result.successful
        assert result.reason.startswith("filter.position.min_cutoff_hz: ")
        result = node.set_parameters([Parameter("filter.orientation.beta", value=5.0),
                                      Parameter("rate_hz", value=50.0)])[0]  # fmt: skip
        assert result.successful
        assert node.filters["left"].config.orientation.beta == 5.0
        assert node.timer.timer_period_ns == int(1e9 / 50.0)
        assert not node.set_parameters([Parameter("camera_frame_id", value="")])[0].successful
    finally:
        node.destroy_node()
