"""Robot meshes from URDF visuals (viz/urdf_visuals.py, viz/robot_mesh.py), the hand mesh
overlay (viz/hand_overlay.py) and a recording's robot drawn from its own /tf
(viz/recording_render.py)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest

from hand_pose_ros.viz.robot_mesh import MESH_BACKGROUND_RGB, RobotMeshRenderer
from hand_pose_ros.viz.urdf_visuals import (
    LinkMesh,
    cluster_decimate,
    load_robot_visuals,
    origin_matrix,
    parse_visual_meshes,
)

REPO = Path(__file__).resolve().parents[1]
OUR_URDF = REPO / "urdf" / "hand_pose_ros_hand_right.urdf"
ROBOTS = Path("/work/shared/realdata/robots")
SIZE = (160, 160)

needs_robots = pytest.mark.skipif(not ROBOTS.is_dir(), reason="needs /work/shared/realdata/robots")


def _foreground(img: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels that differ from the mesh background."""
    return np.abs(img.astype(int) - np.array(MESH_BACKGROUND_RGB)).sum(-1) > 30


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def _fist(r: RobotMeshRenderer, amount: float = 0.8) -> dict[str, float]:
    lo, hi = r.sticks.robot.lower, r.sticks.robot.upper
    return dict(zip(r.joint_names, lo + amount * (hi - lo), strict=True))


@pytest.fixture(scope="module")
def painter() -> RobotMeshRenderer:
    return RobotMeshRenderer(OUR_URDF, size=SIZE, backend="painter")


def test_our_urdf_primitives_are_placed_at_their_visual_origins():
    meshes, skipped = parse_visual_meshes(OUR_URDF)
    assert not skipped
    assert len(meshes) == 28  # every <visual> of the URDF
    assert {m.source for m in meshes} == {"box", "cylinder", "sphere"}
    palm = next(m for m in meshes if m.source == "box")
    # <box size="0.084 0.024 0.098"/> at origin xyz="0 0 0.049"
    np.testing.assert_allclose(palm.vertices.min(0), [-0.042, -0.012, 0.0], atol=1e-9)
    np.testing.assert_allclose(palm.vertices.max(0), [0.042, 0.012, 0.098], atol=1e-9)
    sphere = next(m for m in meshes if m.source == "sphere" and m.link == "fftip")
    np.testing.assert_allclose(np.linalg.norm(sphere.vertices, axis=1), 0.008, rtol=1e-6)
    for m in meshes:
        assert m.faces.max() < len(m.vertices) and m.face_rgb.shape == (len(m.faces), 3)


def test_origin_rpy_is_fixed_axis_roll_pitch_yaw():
    import xml.etree.ElementTree as ET

    rng = np.random.default_rng(0)
    r, p, y = rng.uniform(-np.pi, np.pi, 3)
    pose = origin_matrix(ET.fromstring(f'<origin xyz="1 2 3" rpy="{r} {p} {y}"/>'))

    def axis(k, a):
        c, s = np.cos(a), np.sin(a)
        m = np.eye(3)
        i, j = [(1, 2), (2, 0), (0, 1)][k]
        m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
        return m

    np.testing.assert_allclose(pose[:3, :3], axis(2, y) @ axis(1, p) @ axis(0, r), atol=1e-12)
    np.testing.assert_allclose(pose[:3, 3], [1, 2, 3])


def test_cluster_decimation_reduces_faces_and_keeps_the_shape():
    import trimesh

    sphere = trimesh.creation.icosphere(4, radius=0.05)  # 5120 faces
    mesh = LinkMesh("l", np.asarray(sphere.vertices), np.asarray(sphere.faces),
                    np.ones((len(sphere.faces), 3), np.float32), "sphere")  # fmt: skip
    small = cluster_decimate(mesh, 0.01)
    assert 100 < len(small.faces) < len(mesh.faces) / 4
    radius = np.linalg.norm(small.vertices[np.unique(small.faces)], axis=1)
    assert np.abs(radius - 0.05).max() < 0.01  # vertices stay near the surface
    assert small.face_rgb.shape == (len(small.faces), 3)


@needs_robots
@pytest.mark.parametrize("urdf", ["allegro_hand/allegro_hand_right.urdf",
                                  "inspire_hand/inspire_hand_right.urdf"])  # fmt: skip
def test_real_robot_meshes_load_within_the_face_budget(urdf):
    visuals = load_robot_visuals(ROBOTS / urdf, max_faces=6000)
    assert not visuals.skipped
    assert visuals.faces_before > visuals.num_faces  # the real meshes were decimated
    assert 1000 < visuals.num_faces <= 6000
    assert all(len(m.faces) > 0 for m in visuals.meshes)
    assert any(m.source.endswith((".obj", ".glb")) for m in visuals.meshes)


def test_a_missing_mesh_file_skips_that_visual_with_a_warning(tmp_path, caplog):
    urdf = tmp_path / "two_links.urdf"
    urdf.write_text("""<robot name="r">
  <link name="base"><visual><geometry><mesh filename="package://r/meshes/gone.stl"/>
  </geometry></visual></link>
  <link name="tip"><visual><origin xyz="0 0 0.1"/><geometry><box size="0.01 0.02 0.03"/>
  </geometry><material name="red"><color rgba="1 0 0 1"/></material></visual></link>
  <joint name="j" type="revolute"><parent link="base"/><child link="tip"/>
    <axis xyz="1 0 0"/><limit lower="-1" upper="1" effort="1" velocity="1"/></joint>
</robot>""")
    with caplog.at_level(logging.WARNING, logger="hand_pose_ros.viz.urdf_visuals"):
        visuals = load_robot_visuals(urdf)
    assert len(visuals.skipped) == 1 and "gone.stl" in visuals.skipped[0]
    assert any("gone.stl" in rec.getMessage() for rec in caplog.records)
    assert visuals.links == ("tip",)
    (box,) = visuals.meshes
    np.testing.assert_allclose(box.vertices.max(0) - box.vertices.min(0), [0.01, 0.02, 0.03])
    np.testing.assert_allclose(box.vertices.mean(0), [0, 0, 0.1], atol=1e-12)
    np.testing.assert_allclose(box.face_rgb, 1.0 * (np.arange(3) == 0)[None].repeat(12, 0))


def test_render_is_a_shaded_hand_whose_silhouette_follows_the_pose(painter):
    assert painter.backend == "painter"
    open_img = painter.render({})
    fist_img = painter.render(_fist(painter))
    assert open_img.shape == (*SIZE[::-1], 3) and open_img.dtype == np.uint8
    a, b = _foreground(open_img), _foreground(fist_img)
    assert 0.05 < a.mean() < 0.7 and 0.05 < b.mean() < 0.7
    # Shaded, not flat: many grey levels on the hand.
    assert len(np.unique(open_img[a].sum(-1))) > 40
    assert _iou(a, b) < 0.8
    # Nothing touches the border (the view is fitted to the meshes).
    for img in (a, b):
        assert not (img[0].any() or img[-1].any() or img[:, 0].any() or img[:, -1].any())


def test_gl_and_painter_draw_the_same_silhouette(painter):
    try:
        gl = RobotMeshRenderer(OUR_URDF, size=SIZE, backend="gl")
    except RuntimeError as exc:
        pytest.skip(f"no EGL here: {exc}")
    try:
        pose = _fist(painter, 0.5)
        assert _iou(_foreground(gl.render(pose)), _foreground(painter.render(pose))) > 0.9
    finally:
        gl.close()


def test_a_urdf_without_visuals_falls_back_to_sticks_with_a_log_line(tmp_path, caplog):
    text = re.sub(r"<visual>.*?</visual>", "", OUR_URDF.read_text(), flags=re.S)
    urdf = tmp_path / "no_visuals.urdf"
    urdf.write_text(text)
    with caplog.at_level(logging.WARNING, logger="hand_pose_ros.viz.robot_mesh"):
        r = RobotMeshRenderer(urdf, size=SIZE)
    assert r.backend == "sticks"
    assert any("no visual geometry" in rec.getMessage() for rec in caplog.records)
    pose = _fist(r, 0.3)
    np.testing.assert_array_equal(r.render(pose), r.sticks.render(pose))


def test_hand_mesh_overlay_lands_on_the_keypoints():
    torch = pytest.importorskip("torch")
    import hand_ik
    from hand_ik.frames import hand_root_frame
    from hand_pose_ros.viz.hand_overlay import HandMeshOverlay, HandPose

    overlay = HandMeshOverlay("open")
    model = hand_ik.load_hand_model("open", dtype=torch.float64)
    bio = np.zeros(23)
    with torch.no_grad():
        joints = model(pose=hand_ik.bio_to_pose(torch.zeros(1, 23), model=model)).joints[0]
    rotation, origin = hand_root_frame(joints)
    # The hand 40 cm in front of a 320x240 camera, palm toward it, fingers up.
    palm_to_camera = np.array([[1.0, 0, 0], [0, -1, 0], [0, 0, -1]])  # columns: x, y, z
    hand = HandPose(np.zeros(10), bio, palm_to_camera, np.array([0.0, 0.03, 0.4]), "right")
    K = np.array([[300.0, 0, 160], [0, 300.0, 120], [0, 0, 1]])
    image = np.zeros((240, 320, 3), np.uint8)
    drawn = overlay.draw(image, K, [hand])
    mask = drawn.sum(-1) > 0
    cam = (joints - origin).numpy() @ rotation.numpy() @ palm_to_camera.T + hand.translation
    uv = cam @ K.T
    uv = np.round(uv[:, :2] / uv[:, 2:]).astype(int)
    inside = mask[np.clip(uv[:, 1], 0, 239), np.clip(uv[:, 0], 0, 319)]
    assert inside[[5, 6, 9, 10, 13, 17]].all()  # knuckles and finger joints under the mesh
    assert 0.02 < mask.mean() < 0.8
    left = overlay.draw(image, K, [HandPose(hand.betas, bio, hand.rotation, hand.translation,
                                            "left")])  # fmt: skip
    assert _iou(mask, left.sum(-1) > 0) < 0.9  # mirrored: another silhouette
    assert not image.any()  # the input image is not drawn on


def _recording(tmp_path: Path, poses: list[np.ndarray], urdf: Path) -> Path:
    """An MCAP as `hand-teleop run --record` writes the robot state: /robot_description,
    /tf_static (fixed joints), /tf (movable joints, one message per command)."""
    pytest.importorskip("rclpy")
    from builtin_interfaces.msg import Time
    from geometry_msgs.msg import TransformStamped
    from std_msgs.msg import String
    from tf2_msgs.msg import TFMessage

    from hand_ik.robot.link_transforms import LinkTransforms
    from hand_ik.robot.robot_model import RobotModel
    from hand_pose_ros.io.mcap_recorder import McapRecorder

    def msg(t, stamp_ns):
        out = TransformStamped()
        out.header.stamp = Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
        out.header.frame_id, out.child_frame_id = t.parent, t.child
        tr, q = out.transform.translation, out.transform.rotation
        tr.x, tr.y, tr.z = (float(v) for v in t.translation)
        q.x, q.y, q.z, q.w = (float(v) for v in t.quaternion_xyzw)
        return out

    transforms = LinkTransforms(RobotModel(urdf))
    path = tmp_path / "robot.mcap"
    with McapRecorder(path) as rec:
        rec.write("/robot_description", String(data=urdf.read_text()), 1)
        rec.write("/tf_static", TFMessage(transforms=[msg(t, 1) for t in transforms.fixed]), 1)
        for k, q in enumerate(poses):
            stamp = 10**9 + k * 10**8  # 10 Hz
            tf = TFMessage(transforms=[msg(t, stamp) for t in transforms.movable(q)])
            rec.write("/tf", tf, stamp)
    return path


def test_render_recording_draws_the_recorded_poses(tmp_path, painter):
    from hand_pose_ros.cli.main import main
    from hand_pose_ros.viz.recording_render import read_recorded_tf, render_recording

    open_q = painter.sticks.joint_vector({})
    fist_q = painter.sticks.joint_vector(_fist(painter))
    path = _recording(tmp_path, [open_q, open_q, fist_q, fist_q], OUR_URDF)
    recorded = read_recorded_tf(path)
    assert (recorded.end_ns - recorded.start_ns) == 3 * 10**8
    image = render_recording(path, [0.0, 0.3], size=SIZE[0], backend="painter")
    assert image.shape == (SIZE[1], 2 * SIZE[0], 3)
    panels = [image[:, : SIZE[0]], image[:, SIZE[0]:]]
    # Drawn from /tf alone, each panel matches our forward kinematics at that command.
    for panel, expected in zip(panels, (painter.render({}), painter.render(_fist(painter))),
                               strict=True):  # fmt: skip
        assert _iou(_foreground(panel[30:]), _foreground(expected[30:])) > 0.95
    assert _iou(_foreground(panels[0][30:]), _foreground(panels[1][30:])) < 0.8
    out = tmp_path / "robot.png"
    assert main(["render-recording", str(path), "--out", str(out), "--size", "96",
                 "--backend", "painter"]) == 0  # fmt: skip
    import cv2

    assert cv2.imread(str(out)).shape == (96, 3 * 96, 3)  # start, middle, end


def test_render_recording_rejects_a_file_without_robot_state(tmp_path):
    pytest.importorskip("rclpy")
    from std_msgs.msg import String

    from hand_pose_ros.io.mcap_recorder import McapRecorder
    from hand_pose_ros.viz.recording_render import read_recorded_tf

    path = tmp_path / "empty.mcap"
    with McapRecorder(path) as rec:
        rec.write("/chatter", String(data="hi"), 1)
    with pytest.raises(ValueError, match="robot_description"):
        read_recorded_tf(path)


def _viz_frames(n: int, r: RobotMeshRenderer) -> list:
    from hand_pose_ros.viz.teleop_viz import VizFrame

    image = np.full((120, 160, 3), 90, np.uint8)
    return [VizFrame(image, None, None, (), _fist(r, k / max(n - 1, 1))) for k in range(n)]


def test_teleop_viz_writes_one_frame_per_command(tmp_path, painter):
    import cv2

    from hand_pose_ros.viz.teleop_viz import TeleopViz, TeleopVizConfig

    n = 8
    config = TeleopVizConfig(robot_size=96, hand_mesh=False, queue_size=n, max_busy=1.0)
    viz = TeleopViz(tmp_path / "viz.mp4", OUR_URDF, config)
    for frame in _viz_frames(n, painter):
        assert viz.submit(frame)
    viz.close()
    assert (viz.written, viz.repeated, viz.dropped) == (n, 0, 0)
    assert viz.backend == "painter" and len(viz.render_ms) == n
    cap = cv2.VideoCapture(str(tmp_path / "viz.mp4"))
    frames = []
    while (got := cap.read())[0]:
        frames.append(got[1])
    cap.release()
    assert len(frames) == n
    first, last = (f[:, -96:].astype(int) for f in (frames[0], frames[-1]))
    assert np.abs(first - last).mean() > 2  # the robot panel follows the commands
    assert frames[0].shape[0] == 96  # the input panel is scaled to the robot panel


def test_teleop_viz_repeats_frames_to_stay_within_its_cpu_share(tmp_path, painter):
    from hand_pose_ros.viz.teleop_viz import TeleopViz, TeleopVizConfig

    n = 6
    config = TeleopVizConfig(robot_size=96, hand_mesh=False, queue_size=n, max_busy=0.001)
    viz = TeleopViz(tmp_path / "viz.mp4", OUR_URDF, config)
    for frame in _viz_frames(n, painter):
        viz.submit(frame)
    viz.close()
    assert viz.written == n and viz.repeated == n - 1  # drawn once, then repeated
    # More commands than frames may wait: the rest are queued as repeats, none dropped.
    config = TeleopVizConfig(robot_size=96, hand_mesh=False, queue_size=1, max_busy=1.0)
    viz = TeleopViz(tmp_path / "burst.mp4", OUR_URDF, config)
    for frame in _viz_frames(3 * n, painter):
        assert viz.submit(frame)
    viz.close()
    assert (viz.written, viz.dropped) == (3 * n, 0) and viz.repeated >= 1
    with pytest.raises(ValueError, match="max_busy"):
        TeleopVizConfig(max_busy=0.0)
