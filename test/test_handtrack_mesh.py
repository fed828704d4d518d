"""The mesh head's hand through the real graph (issue 21, item 4): the handtrack_mesh
estimator (tracking, ONNX Runtime and torch), the mesh in HandKeypoints over DDS, the IK
node fitting it (post-opt vertex term) and showing it on /hand/markers, and
``hand-teleop run --estimator handtrack_mesh`` on the demo source."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy")

from builtin_interfaces.msg import Time
from conftest import spin_until
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.serialization import deserialize_message, serialize_message
from visualization_msgs.msg import MarkerArray

from hand_pose_ros.nodes.qos import RESULT_PUB_QOS, RESULT_SUB_QOS
from hand_pose_ros.pipeline.demo import DemoHand

NUM_VERTICES = 778


def _needs_networks():
    """Skip without the wheel's network files (the palm detector, the landmark backbone)."""
    from hand_pose_ros.handnets.registry import WheelNotInstalledError, locate_tflite

    try:
        locate_tflite("landmark_full")
    except WheelNotInstalledError as exc:
        pytest.skip(f"hand networks not available (mediapipe wheel): {exc}")


@pytest.fixture(scope="module")
def demo_frames():
    demo = DemoHand()
    return [demo.frame_at(3 * i) for i in range(6)]


def test_config_names_the_convention_and_refuses_another_backbone():
    from hand_pose_ros.pipeline.estimators import (
        ESTIMATOR_CONVENTIONS,
        ESTIMATOR_NAMES,
        EstimatorStageConfig,
    )

    assert "handtrack_mesh" in ESTIMATOR_NAMES
    assert ESTIMATOR_CONVENTIONS["handtrack_mesh"] == "ours"  # the head's joints are ours
    with pytest.raises(ValueError, match="landmark_model"):
        EstimatorStageConfig(estimator="handtrack_mesh", landmark_model="landmark_lite")


def test_estimator_tracks_and_returns_the_mesh(demo_frames):
    """Rendered demo frames: one palm detection, then tracking; each hand carries 778
    camera-frame vertices near the rendered mesh, consistent with its joints."""
    _needs_networks()
    from hand_pose_ros.pipeline.estimators import create_estimator

    est = create_estimator("handtrack_mesh", max_hands=1)
    palm_runs, errors = [], []
    for frame in demo_frames:
        (hand,) = est(frame.image, frame.K)
        palm_runs.append(est.times.palm_runs)
        assert hand.handedness == "right" and hand.track_id == 0
        assert hand.vertices.shape == (NUM_VERTICES, 3) and hand.camera_points.shape == (21, 3)
        assert np.isfinite(hand.vertices).all() and (hand.vertices[:, 2] > 0.1).all()
        # joints and mesh are one prediction: the wrist joint lies inside the mesh's extent
        lo, hi = hand.vertices.min(0) - 0.01, hand.vertices.max(0) + 0.01
        assert ((hand.camera_points[0] > lo) & (hand.camera_points[0] < hi)).all()
        errors.append(np.linalg.norm(hand.vertices - frame.vertices_cam, axis=1).mean())
    assert palm_runs[0] == 1 and sum(palm_runs[1:]) == 0, palm_runs  # re-detect only if lost
    # Measured 26-55 mm on these frames (absolute, metric depth from one image).
    assert max(errors) < 0.08 and np.median(errors) < 0.05, errors


def test_torch_backend_matches_onnx(demo_frames):
    _needs_networks()
    from hand_pose_ros.pipeline.estimators import create_estimator

    frame = demo_frames[0]
    (a,) = create_estimator("handtrack_mesh", max_hands=1)(frame.image, frame.K)
    (b,) = create_estimator("handtrack_mesh", max_hands=1, backend="torch")(frame.image, frame.K)
    assert np.abs(a.image_points - b.image_points).max() < 0.05  # px
    assert np.abs(a.vertices - b.vertices).max() < 1e-3  # m
    assert np.abs(a.camera_points - b.camera_points).max() < 1e-3


def test_vertices_round_trip_over_dds(rclpy_context):
    from hand_pose_ros.msg import HandKeypoints

    from hand_pose_ros.nodes.conversions import keypoints_to_msg, vertices_from_msg

    rng = np.random.default_rng(0)
    joints, verts = rng.normal(size=(21, 3)), rng.normal(scale=0.05, size=(NUM_VERTICES, 3))
    stamp = Time(sec=1)
    with_mesh = keypoints_to_msg(joints, stamp=stamp, frame_id="cam", vertices=verts)
    without = keypoints_to_msg(joints, stamp=stamp, frame_id="cam")
    assert vertices_from_msg(without) is None and len(without.vertices) == 0
    with pytest.raises(ValueError, match="vertices"):
        keypoints_to_msg(joints, stamp=stamp, frame_id="cam", vertices=verts[:, :2])
    talker, listener = (Node(n, context=rclpy_context) for n in ("talker", "listener"))
    received: list = []
    listener.create_subscription(HandKeypoints, "/hand/keypoints", received.append,
                                 RESULT_SUB_QOS)  # fmt: skip
    pub = talker.create_publisher(HandKeypoints, "/hand/keypoints", RESULT_PUB_QOS)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(talker)
    executor.add_node(listener)
    try:
        for _ in range(20):
            pub.publish(with_mesh)
            spin_until(executor, 0.2, until=lambda: bool(received))
            if received:
                break
    finally:
        executor.shutdown()
        talker.destroy_node()
        listener.destroy_node()
    assert received, "no message crossed DDS"
    back = vertices_from_msg(received[0])
    assert back.shape == (NUM_VERTICES, 3)
    np.testing.assert_allclose(back, verts, atol=1e-7)  # float32 metres: sub-micrometre


def _mesh_points(markers: MarkerArray, ns: str, track_id: int) -> np.ndarray | None:
    for m in markers.markers:
        if m.ns == ns and m.id == track_id:
            return np.array([[p.x, p.y, p.z] for p in m.points])
    return None


def _run_ik_node(context, messages: list) -> tuple:
    """A real IKNode (``fit_estimated_mesh`` on) fed ``messages`` (HandKeypoints, stamped
    now) one at a time, each waited for on /hand/state. Returns (node, hand states,
    marker arrays); the node is destroyed (its stage and faces stay usable)."""
    from hand_pose_ros.msg import HandKeypoints, HandState
    from rclpy.parameter import Parameter

    from hand_pose_ros.nodes.ik_node import IKNode

    node = IKNode(context=context,
                  parameter_overrides=[Parameter("fit_estimated_mesh", value=True)])
    talker = Node("keypoints_talker", context=context)
    pub = talker.create_publisher(HandKeypoints, "/hand/keypoints", RESULT_PUB_QOS)
    markers: list[MarkerArray] = []
    states: list = []
    talker.create_subscription(MarkerArray, "/hand/markers", markers.append, RESULT_SUB_QOS)
    talker.create_subscription(HandState, "/hand/state", states.append, RESULT_SUB_QOS)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    executor.add_node(talker)
    try:
        for msg in messages:
            msg.header.stamp = talker.get_clock().now().to_msg()
            before = len(states)
            pub.publish(msg)
            spin_until(executor, 20.0, until=lambda: len(states) > before)  # noqa: B023
        spin_until(executor, 0.3)
    finally:
        executor.shutdown()
        node.destroy_node()
        talker.destroy_node()
    return node, states, markers


def test_ik_node_fits_and_shows_the_estimated_mesh(rclpy_context):
    """Same noisy keypoints as two tracks, ``fit_estimated_mesh`` on: the one with the true
    mesh attached is fitted closer to that mesh (vertex term), and its mesh is on
    /hand/markers (namespace 'estimated'); the one without is solved exactly as before
    (IKStage without vertices)."""
    from hand_pose_ros.nodes.conversions import keypoints_to_msg
    from hand_pose_ros.pipeline.stages import IKStage

    frame = DemoHand().frame_at(10)
    rng = np.random.default_rng(1)
    joints = frame.joints_cam + rng.normal(scale=0.006, size=(21, 3))
    node, states, markers = _run_ik_node(rclpy_context, [
        keypoints_to_msg(joints, stamp=Time(), frame_id="cam", track_id=track_id,
                         vertices=verts)
        for track_id, verts in ((1, None), (2, frame.vertices_cam))])  # fmt: skip
    assert [s.track_id for s in states] == [1, 2]
    faces = node.faces.reshape(-1)
    target = frame.vertices_cam[faces]
    fitted = {t: next(p for a in markers if (p := _mesh_points(a, "hand/mesh", t)) is not None)
              for t in (1, 2)}  # fmt: skip
    err = {t: np.linalg.norm(fitted[t] - target, axis=1).mean() for t in fitted}
    assert err[2] < 0.9 * err[1], err  # measured 4.5 vs 5.9 mm
    shown = [p for a in markers if (p := _mesh_points(a, "estimated/mesh", 2)) is not None]
    assert shown and np.abs(shown[0] - target).max() < 1e-6
    assert all(_mesh_points(a, "estimated/mesh", 1) is None for a in markers)
    # Without vertices: exactly the stage's answer without the new argument.
    ref = IKStage(node.stage.config).solve(joints, "right", 1, with_vertices=False)
    np.testing.assert_allclose(states[0].dof_positions, ref.bio[0].astype(np.float32), atol=1e-6)


def test_ik_stage_left_hand_vertices_are_mirrored_like_the_keypoints():
    """A left hand's mesh (the right model mirrored, as the estimator gives it) pulls the
    fit toward it too: the stage mirrors it with the keypoints."""
    from hand_pose_ros.pipeline.stages import IKStage, IKStageConfig

    left = next(h for h in DemoHand(hands=2).frame_at(10).hands if h.handedness == "left")
    joints = left.joints_cam + np.random.default_rng(2).normal(scale=0.006, size=(21, 3))
    fitting = IKStageConfig(fit_estimated_mesh=True)
    without = IKStage(fitting).solve(joints, "left", 1)
    with_mesh = IKStage(fitting).solve(joints, "left", 1, vertices=left.vertices_cam)
    same = IKStage(fitting).solve(joints, "left", 1, vertices=None)
    np.testing.assert_array_equal(same.bio, without.bio)
    # Off by default (the vertex term costs ~30x the solve): the mesh is then ignored.
    ignored = IKStage().solve(joints, "left", 1, vertices=left.vertices_cam)
    np.testing.assert_array_equal(ignored.bio, without.bio)
    errs = [np.linalg.norm(s.vertices[0] - left.vertices_cam, axis=1).mean()
            for s in (without, with_mesh)]  # fmt: skip
    assert errs[1] < 0.95 * errs[0], errs  # measured 6.1 vs 5.5 mm


def test_estimated_markers_have_their_own_namespace_colour_and_one_template():
    from hand_pose_ros.nodes.markers import (
        ESTIMATED_COLOURS,
        ESTIMATED_NAMESPACE,
        SerializedHandMarkers,
        hand_markers,
    )

    rng = np.random.default_rng(5)
    faces = rng.integers(0, NUM_VERTICES, (1534, 3))
    serializer = SerializedHandMarkers()
    for track_id in range(20):  # new track ids add no template (test_markers_track_ids.py)
        joints, verts = rng.normal(size=(21, 3)), rng.normal(size=(NUM_VERTICES, 3))
        est = (rng.normal(size=(21, 3)), rng.normal(size=(NUM_VERTICES, 3)))
        kwargs = dict(stamp=Time(sec=track_id), frame_id="cam", track_id=track_id)
        both = deserialize_message(serializer(joints, verts, faces, estimated=est, **kwargs),
                                   MarkerArray)  # fmt: skip
        built = hand_markers(joints, verts, faces, estimated=est, **kwargs)
        assert both == deserialize_message(serialize_message(built), MarkerArray)
        alone_kwargs = dict(kwargs, namespace=ESTIMATED_NAMESPACE, colours=ESTIMATED_COLOURS)
        alone = deserialize_message(serializer(*est, faces, **alone_kwargs), MarkerArray)
        built = hand_markers(*est, faces, **alone_kwargs)
        assert alone == deserialize_message(serialize_message(built), MarkerArray)
    assert [m.ns for m in both.markers] == [
        "hand/skeleton", "hand/keypoints", "hand/mesh",
        "estimated/skeleton", "estimated/keypoints", "estimated/mesh"]  # fmt: skip
    assert both.markers[5].color != both.markers[2].color
    assert alone.markers[2] == both.markers[5]  # the same hand, alone or beside the fit
    assert len(serializer._templates) == 2  # one per layout, none per track


def test_run_with_handtrack_mesh_on_the_demo(tmp_path):
    """`hand-teleop run --estimator handtrack_mesh --record --viz`: keypoint messages carry
    the mesh, /hand/markers shows it (namespace 'estimated'), commands are safe."""
    _needs_networks()
    import json

    from hand_pose_ros.cli.main import main
    from hand_pose_ros.io.mcap_recorder import read_messages

    bag, video, summary = tmp_path / "run.mcap", tmp_path / "run.mp4", tmp_path / "s.json"
    code = main(["run", "--frames", "12", "--estimator", "handtrack_mesh", "--record", str(bag),
                 "--viz", str(video), "--summary", str(summary)])  # fmt: skip
    assert code == 0
    data = json.loads(summary.read_text())
    assert data["hand_states"] >= 6 and data["all_commands_finite_and_in_limits"] is True
    by_topic: dict[str, list] = {}
    for message in read_messages(bag):
        by_topic.setdefault(message.topic, []).append(message.msg)
    keypoints = by_topic["/hand/keypoints"]
    assert keypoints and all(len(m.vertices) == 3 * NUM_VERTICES for m in keypoints)
    namespaces = {m.ns for a in by_topic["/hand/markers"] for m in a.markers}
    assert {"estimated/mesh", "hand/mesh"} <= namespaces
    assert video.is_file() and video.stat().st_size > 0


def test_viz_input_panel_draws_the_estimated_mesh_in_green():
    """The --viz input panel: an estimated mesh (camera frame; both hands of the two-hand
    demo) is blended in green over the hand's pixels and nowhere else."""
    from hand_pose_ros.viz.hand_overlay import CameraMesh, HandMeshOverlay
    from hand_pose_ros.viz.teleop_viz import TeleopViz, VizFrame

    overlay = HandMeshOverlay()
    frame = DemoHand(hands=2).frame_at(10)
    plain = TeleopViz._left(VizFrame(frame.image, None, frame.K, (), {}), overlay, 240)
    s = 240 / frame.image.shape[0]
    for truth in frame.hands:
        mesh = CameraMesh(truth.vertices_cam, truth.handedness)
        drawn = TeleopViz._left(VizFrame(frame.image, None, frame.K, (), {}, estimated=(mesh,)),
                                overlay, 240)  # fmt: skip
        changed = np.abs(drawn.astype(int) - plain).sum(-1) > 0
        uv = truth.vertices_cam @ frame.K.T
        uv = s * (uv[:, :2] / uv[:, 2:] + 0.5) - 0.5
        (x0, y0), (x1, y1) = np.floor(uv.min(0)).astype(int), np.ceil(uv.max(0)).astype(int)
        inside = changed[max(y0, 0):y1 + 1, max(x0, 0):x1 + 1].sum()
        assert inside == changed.sum() and inside > 0.2 * (x1 - x0) * (y1 - y0), truth.handedness
        diff = drawn[changed].astype(int) - plain[changed]
        assert diff[:, 1].mean() > diff[:, 0].mean() and diff[:, 1].mean() > diff[:, 2].mean()


def test_ik_node_survives_malformed_meshes_and_solves_from_the_keypoints(rclpy_context):
    """Vertex payloads that are not (V, 3), not this hand model's V, or not finite: the IK
    node ignores the mesh (logged), still solves the keypoints, and shows no estimated mesh."""
    from hand_pose_ros.nodes.conversions import keypoints_to_msg

    frame = DemoHand().frame_at(10)
    verts = frame.vertices_cam.astype(np.float32)
    nan_mesh = verts.copy()
    nan_mesh[5] = np.nan
    payloads = {1: verts.reshape(-1)[:-1],  # not a multiple of 3
                2: verts[:100].reshape(-1),  # another model's vertex count
                3: nan_mesh.reshape(-1)}  # not finite
    messages = []
    for track_id, payload in payloads.items():
        msg = keypoints_to_msg(frame.joints_cam, stamp=Time(), frame_id="cam",
                               track_id=track_id)  # fmt: skip
        msg.vertices = payload
        messages.append(msg)
    node, states, markers = _run_ik_node(rclpy_context, messages)
    assert [s.track_id for s in states] == [1, 2, 3]
    assert all(np.isfinite(s.dof_positions).all() for s in states)
    assert node.guard.errors == {}  # nothing raised inside the callback
    for track_id in payloads:
        assert all(_mesh_points(a, "estimated/mesh", track_id) is None for a in markers)
