"""The ``--viz`` video with two robots (bimanual teleop): one labelled panel per robot,
each drawn from its own URDF in its own side's commands; one robot: frames as before.

Pixels are read back from the written .mp4 (MPEG-4 Part 2), so "unchanged" allows the
codec's small noise and "changed" asks for much more than it.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from hand_pose_ros.viz.colours import LABEL_BOX_RGB
from hand_pose_ros.viz.robot_mesh import MESH_BACKGROUND_RGB, RobotMeshRenderer
from hand_pose_ros.viz.teleop_viz import TeleopViz, TeleopVizConfig, VizFrame, VizRobot
from hand_pose_ros.viz.video import SideBySideWriter

REPO = Path(__file__).resolve().parents[1]
URDF = {side: REPO / "urdf" / f"hand_pose_ros_hand_{side}.urdf" for side in ("right", "left")}
#: Robot panel side in the unit tests, pixels.
SIZE = 96
#: Mean absolute pixel change (0-255) below which a panel counts as unchanged in the .mp4,
#: and above which it counts as moved.
STILL, MOVED = 0.5, 2.0


def _frames(path: Path) -> np.ndarray:
    """(N, H, W, 3) RGB frames of a video, as int16 (differences fit)."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    while (got := cap.read())[0]:
        frames.append(cv2.cvtColor(got[1], cv2.COLOR_BGR2RGB).astype(np.int16))
    cap.release()
    return np.array(frames)


def _change(panels: np.ndarray) -> np.ndarray:
    """(N - 1,) mean absolute change between consecutive frames of (N, H, W, 3) panels."""
    return np.array([np.abs(b - a).mean() for a, b in itertools.pairwise(panels)])


def _foreground(panel: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels that are not the robot panel's background."""
    return np.abs(panel - np.array(MESH_BACKGROUND_RGB)).sum(-1) > 30


def _labelled(panel: np.ndarray) -> bool:
    """The label box (dark) sits at the panel's top-left corner: its top rows, above the
    text, are the box's colour."""
    box_top = panel[9:12, 9:40]
    return bool(np.abs(box_top - np.array(LABEL_BOX_RGB)).sum(-1).mean() < 60)


@pytest.fixture(scope="module")
def renderers() -> dict[str, RobotMeshRenderer]:
    return {side: RobotMeshRenderer(urdf, size=(SIZE, SIZE)) for side, urdf in URDF.items()}


def _pose(r: RobotMeshRenderer, amount: float) -> dict[str, float]:
    """Every joint at ``amount`` of its range (0: lower limit, 1: upper)."""
    lo, hi = r.sticks.robot.lower, r.sticks.robot.upper
    return dict(zip(r.joint_names, lo + amount * (hi - lo), strict=True))


def test_each_robot_panel_follows_its_own_sides_commands(tmp_path, renderers):
    """Right moving while the left is held (its hand lost), then the other way round; the
    left robot has no command in the first frame (drawn neutral)."""
    right, left = renderers["right"], renderers["left"]
    amounts = [(0.0, None), (0.4, 0.8), (0.8, 0.8), (0.8, 0.8), (0.8, 0.4), (0.8, 0.0)]
    image = np.full((SIZE, 128, 3), 90, np.uint8)
    frames = [VizFrame(image, None, None, (), _pose(right, a),
                       (None if b is None else _pose(left, b),))
              for a, b in amounts]  # fmt: skip
    config = TeleopVizConfig(robot_size=SIZE, hand_mesh=False, queue_size=len(frames),
                             max_busy=1.0)  # fmt: skip
    robots = (VizRobot(URDF["right"], "right: ours"), VizRobot(URDF["left"], "left: ours"))
    viz = TeleopViz(tmp_path / "both.mp4", robots, config)
    for frame in frames:
        assert viz.submit(frame)
    viz.close()
    assert (viz.written, viz.repeated, viz.dropped) == (len(frames), 0, 0)
    video = _frames(tmp_path / "both.mp4")
    assert video.shape[:3] == (len(frames), SIZE, 128 + 2 * SIZE)  # input | right | left
    panels = {"right": video[:, :, 128:128 + SIZE], "left": video[:, :, 128 + SIZE:]}
    change = {side: _change(p) for side, p in panels.items()}
    # Frames 1 -> 2: only the right robot moves; 3 -> 4 -> 5: only the left one.
    assert change["right"][1] > MOVED and change["left"][1] < STILL, change
    assert change["left"][3] > MOVED and change["left"][4] > MOVED, change
    assert change["right"][3] < STILL and change["right"][4] < STILL, change
    for side, panel in panels.items():
        assert all(_labelled(p) for p in panel), side
        assert all(_foreground(p).mean() > 0.05 for p in panel), side  # a robot in each
    # Each panel is its own robot: the left one (no command yet) is the left robot's
    # neutral drawing, not the right robot's.
    first_left = _foreground(panels["left"][0])[25:]  # below the label
    neutral = {side: _foreground(r.render({}).astype(int))[25:] for side, r in renderers.items()}
    iou = {side: (first_left & m).sum() / (first_left | m).sum() for side, m in neutral.items()}
    assert iou["left"] > 0.9 and iou["left"] > iou["right"] + 0.1, iou


def test_one_robot_frames_are_input_beside_robot_as_before(tmp_path, renderers):
    """One robot: no label, no second panel; the file is byte for byte the one written
    from the input image and the robot's own drawing."""
    right = renderers["right"]
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (SIZE, 128, 3), dtype=np.uint8)
    poses = [_pose(right, a) for a in (0.0, 0.3, 0.3, 0.9)]  # one repeated command
    config = TeleopVizConfig(robot_size=SIZE, hand_mesh=False, queue_size=len(poses),
                             max_busy=1.0)  # fmt: skip
    viz = TeleopViz(tmp_path / "one.mp4", URDF["right"], config)
    for q in poses:
        assert viz.submit(VizFrame(image, None, None, (), q))
    viz.close()
    with SideBySideWriter(tmp_path / "expected.mp4", fps=config.fps, height=SIZE) as writer:
        for q in poses:
            writer.write(image, right.render(q))
    assert (tmp_path / "one.mp4").read_bytes() == (tmp_path / "expected.mp4").read_bytes()


def test_viz_robot_needs_a_urdf():
    with pytest.raises(ValueError, match="urdf"):
        VizRobot(Path(""))
    with pytest.raises(ValueError, match="robots"):
        TeleopViz("unused.mp4", ())


def test_a_bimanual_run_video_shows_both_robots(tmp_path):
    """``hand-teleop run --robot-left ... --viz`` on the two-hand demo: input | right robot
    | left robot, each labelled and moving; the summary has each side's part."""
    from hand_pose_ros.cli.main import main

    video, summary = tmp_path / "both.mp4", tmp_path / "summary.json"
    # 5 s of the script at 10 Hz: both hands pass through several keyframes, so the few
    # frames the viz worker draws (it repeats the last drawing in between, and draws less
    # often on a loaded machine: it keeps to max_busy of the time) differ.
    code = main(["run", "--frames", "50", "--rate", "10", "--estimator", "truth",
                 "--robot-left", "hand_pose_ros_hand_left", "--viz", str(video),
                 "--summary", str(summary)])  # fmt: skip
    assert code == 0
    data = json.loads(summary.read_text())
    assert data["right"]["robot"] == data["robot"] == "hand_pose_ros_hand"
    assert data["left"]["robot"] == "hand_pose_ros_hand_left"
    for side in ("right", "left"):
        assert data[side]["joint_states"] > 0 and data[side]["all_commands_finite_and_in_limits"]
    assert data["right"]["joint_states"] == data["joint_states"]  # top-level keys kept
    frames = _frames(video)
    assert len(frames) >= 10
    height, width = frames.shape[1:3]
    panels = {"right": frames[:, :, width - 2 * height:width - height],
              "left": frames[:, :, width - height:]}
    for side, panel in panels.items():
        assert _labelled(panel[-1]), side
        assert _foreground(panel[-1]).mean() > 0.05, side
        assert _change(panel).max() > MOVED, f"the {side} robot never moves"
    # Two robots, not one drawn twice.
    assert np.mean([np.abs(r - le).mean() for r, le in zip(panels["right"], panels["left"],
                                                            strict=True)]) > 10  # fmt: skip


def _bimanual_recording(tmp_path: Path, poses: dict[str, list[np.ndarray]]) -> Path:
    """An MCAP as ``hand-teleop run --robot-left ... --record`` writes the robot state: each
    robot's URDF on its own topic, both trees on /tf_static and /tf, the left one's frames
    prefixed; ``poses``: per side, one full joint vector per 10 Hz step."""
    pytest.importorskip("rclpy")
    from builtin_interfaces.msg import Time
    from geometry_msgs.msg import TransformStamped
    from std_msgs.msg import String
    from tf2_msgs.msg import TFMessage

    from hand_ik.robot.link_transforms import LinkTransforms
    from hand_ik.robot.robot_model import RobotModel
    from hand_pose_ros.io.mcap_recorder import McapRecorder
    from hand_pose_ros.nodes.robot_state_node import robot_description_topic
    from hand_pose_ros.scene_frames import LEFT_ROBOT_FRAME_PREFIX

    def msg(t, stamp_ns: int, prefix: str) -> TransformStamped:
        out = TransformStamped()
        out.header.stamp = Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
        out.header.frame_id, out.child_frame_id = prefix + t.parent, prefix + t.child
        tr, q = out.transform.translation, out.transform.rotation
        tr.x, tr.y, tr.z = (float(v) for v in t.translation)
        q.x, q.y, q.z, q.w = (float(v) for v in t.quaternion_xyzw)
        return out

    path = tmp_path / "both.mcap"
    with McapRecorder(path) as rec:
        for side, urdf in URDF.items():
            transforms = LinkTransforms(RobotModel(urdf))
            prefix = LEFT_ROBOT_FRAME_PREFIX if side == "left" else ""
            rec.write(robot_description_topic(side), String(data=urdf.read_text()), 1)
            rec.write("/tf_static", TFMessage(
                transforms=[msg(t, 1, prefix) for t in transforms.fixed]), 1)  # fmt: skip
            for k, q in enumerate(poses[side]):
                stamp = 10**9 + k * 10**8
                rec.write("/tf", TFMessage(
                    transforms=[msg(t, stamp, prefix) for t in transforms.movable(q)]), stamp)
    return path


def test_render_recording_draws_both_robots_of_a_bimanual_recording(tmp_path, renderers):
    """``hand-teleop render-recording`` on a bimanual bag: the right robot in the first row,
    the left one in the second, each from its own URDF and its own frames on /tf."""
    from hand_pose_ros.nodes.robot_state_node import robot_description_topic
    from hand_pose_ros.viz.recording_render import (
        LEFT_ROBOT_DESCRIPTION,
        read_recorded_tf,
        recorded_sides,
        render_recording,
    )

    assert robot_description_topic("left") == LEFT_ROBOT_DESCRIPTION
    right, left = renderers["right"], renderers["left"]
    amounts = {"right": (0.0, 0.0, 0.8, 0.8), "left": (0.8, 0.8, 0.0, 0.0)}
    commands = {side: [_pose(renderers[side], a) for a in amounts[side]] for side in URDF}
    full = {side: [renderers[side].sticks.joint_vector(c) for c in commands[side]]
            for side in URDF}  # fmt: skip
    path = _bimanual_recording(tmp_path, full)
    assert recorded_sides(path) == (None, "left")
    recorded = read_recorded_tf(path, "left")
    assert recorded.urdf == URDF["left"].read_text()
    assert not any(child.startswith("left/") for child in recorded.dynamic)
    assert not any(child.startswith("left/") for child in read_recorded_tf(path).dynamic)
    image = render_recording(path, [0.0, 0.3], size=SIZE, backend="painter")
    assert image.shape == (2 * SIZE, 2 * SIZE, 3)
    for row, side, renderer in ((0, "right", right), (1, "left", left)):
        for col in range(2):
            panel = image[row * SIZE:(row + 1) * SIZE, col * SIZE:(col + 1) * SIZE]
            expected = renderer.render(commands[side][3 * col])
            got, want = _foreground(panel.astype(int))[30:], _foreground(expected.astype(int))[30:]
            iou = (got & want).sum() / (got | want).sum()
            assert iou > 0.95, (side, col, iou)
    with pytest.raises(ValueError, match="side"):
        read_recorded_tf(path, "middle")
