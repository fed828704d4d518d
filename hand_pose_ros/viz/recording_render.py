"""A recorded robot drawn from the recording alone, as Foxglove's 3D panel would draw it.

Reads an MCAP from ``hand-teleop run --record`` with the ``mcap`` reader and the
``mcap-ros2-support`` CDR decoder (no ROS install needed): the URDF text on
``/robot_description``, the fixed joints on ``/tf_static`` and the movable joints on
``/tf``. At each requested time the latest transform of every child frame at or
before it is taken, the links are composed from the URDF's root link
(``hand_ik.robot.link_transforms.compose_link_poses``) and the visual meshes drawn
there (``viz/robot_mesh.RobotMeshRenderer.render_link_poses``). Nothing comes from the
joint states or our forward kinematics, so the picture shows what the file holds.

A bimanual recording (``--robot-left``) holds two robots: the right one as above, the
left one's URDF on ``/left/robot_description`` and its frames on the same ``/tf`` with
the ``left/`` prefix (``scene_frames.LEFT_ROBOT_FRAME_PREFIX``); both are drawn, the
left robot in a second row.

Relative and ``package://`` mesh paths in the recorded URDF are looked up under
``mesh_dir`` (the recorded text has no folder of its own).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from hand_ik.robot.link_transforms import LinkTransform, compose_link_poses, urdf_root_link
from hand_pose_ros.scene_frames import LEFT_ROBOT_FRAME_PREFIX
from hand_pose_ros.viz.colours import LABEL_TEXT_RGB
from hand_pose_ros.viz.robot_mesh import RobotMeshRenderer

ROBOT_DESCRIPTION = "/robot_description"
#: The left robot's URDF text in a bimanual recording
#: (``nodes/robot_state_node.robot_description_topic("left")``).
LEFT_ROBOT_DESCRIPTION = "/left/robot_description"
TF, TF_STATIC = "/tf", "/tf_static"
#: Robot side -> its URDF topic; None: the right or only robot.
DESCRIPTION_TOPICS: dict[str | None, str] = {None: ROBOT_DESCRIPTION,
                                             "left": LEFT_ROBOT_DESCRIPTION}  # fmt: skip


@dataclass
class RecordedTf:
    """The robot model and tf of one recording.

    Attributes:
        urdf: the URDF text from ``/robot_description`` (the last one).
        static: fixed transforms by child frame.
        dynamic: per child frame, (stamps in ns (T,), transforms) sorted by stamp.
        start_ns, end_ns: first and last ``/tf`` stamps, nanoseconds.
    """

    urdf: str
    static: dict[str, LinkTransform]
    dynamic: dict[str, tuple[np.ndarray, list[LinkTransform]]] = field(default_factory=dict)
    start_ns: int = 0
    end_ns: int = 0

    def transforms_at(self, stamp_ns: int) -> list[LinkTransform]:
        """Static transforms plus each dynamic frame's latest one at or before ``stamp_ns``
        (its first one when the time is earlier)."""
        out = list(self.static.values())
        for stamps, transforms in self.dynamic.values():
            i = max(int(np.searchsorted(stamps, stamp_ns, side="right")) - 1, 0)
            out.append(transforms[i])
        return out


def _transform(msg, prefix: str = "") -> LinkTransform:
    """A TransformStamped as a LinkTransform, ``prefix`` taken off both frame names."""
    t, r = msg.transform.translation, msg.transform.rotation
    return LinkTransform(msg.header.frame_id.removeprefix(prefix),
                         msg.child_frame_id.removeprefix(prefix), np.array([t.x, t.y, t.z]),
                         np.array([r.x, r.y, r.z, r.w]))  # fmt: skip


def _side_of_frame(child_frame_id: str) -> str | None:
    """The robot a /tf child frame belongs to: "left" (prefixed) or None."""
    return "left" if child_frame_id.startswith(LEFT_ROBOT_FRAME_PREFIX) else None


def recorded_sides(path: str | Path) -> tuple[str | None, ...]:
    """The robots an MCAP holds a URDF for: ``(None,)`` (one robot, or none) or
    ``(None, "left")`` (a bimanual recording)."""
    from mcap.reader import make_reader

    with Path(path).open("rb") as stream:
        reader = make_reader(stream)
        summary = reader.get_summary()
        if summary is not None:
            topics = {c.topic for c in summary.channels.values()}
        else:  # a file without a summary section (not finished): read its channels
            topics = {channel.topic for _, channel, _ in reader.iter_messages()}
    return (None, "left") if LEFT_ROBOT_DESCRIPTION in topics else (None,)


def read_recorded_tf(path: str | Path, side: str | None = None) -> RecordedTf:
    """Read ``/robot_description``, ``/tf_static`` and ``/tf`` of an MCAP file.

    Args:
        path: the MCAP file.
        side: None: the right (bimanual) or only robot; "left": the left robot of a
            bimanual recording (``/left/robot_description`` and the ``left/`` frames,
            returned without the prefix).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file has no ``/robot_description`` or no ``/tf`` (not a
            ``hand-teleop run --record`` file with robot state), or ``side`` is unknown.
    """
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    if side not in DESCRIPTION_TOPICS:
        raise ValueError(f"side must be one of {tuple(DESCRIPTION_TOPICS)}, got {side!r}")
    description = DESCRIPTION_TOPICS[side]
    prefix = LEFT_ROBOT_FRAME_PREFIX if side == "left" else ""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no recording at {path}")
    urdf = None
    static: dict[str, LinkTransform] = {}
    dynamic: dict[str, tuple[list[int], list[LinkTransform]]] = {}
    with path.open("rb") as stream:
        reader = make_reader(stream, decoder_factories=[DecoderFactory()])
        topics = [description, TF, TF_STATIC]
        for _, channel, _, msg in reader.iter_decoded_messages(topics=topics, log_time_order=True):
            if channel.topic == description:
                urdf = msg.data
                continue
            for t in msg.transforms:
                if _side_of_frame(t.child_frame_id) != side:
                    continue  # the other robot's (bimanual)
                transform = _transform(t, prefix)
                if channel.topic == TF_STATIC:
                    static[transform.child] = transform
                else:
                    stamp = t.header.stamp.sec * 1_000_000_000 + t.header.stamp.nanosec
                    stamps, items = dynamic.setdefault(transform.child, ([], []))
                    stamps.append(stamp)
                    items.append(transform)
    if urdf is None:
        raise ValueError(f"{path}: no {description} message (record with hand-teleop run)")
    if not dynamic:
        raise ValueError(f"{path}: no {TF} message{' for the left robot' if side else ''}")
    out = RecordedTf(urdf, static)
    for child, (stamps, items) in dynamic.items():
        order = np.argsort(stamps, kind="stable")
        out.dynamic[child] = (np.asarray(stamps, np.int64)[order], [items[i] for i in order])
    out.start_ns = int(min(s[0][0] for s in out.dynamic.values()))
    out.end_ns = int(max(s[0][-1] for s in out.dynamic.values()))
    return out


def render_recording(
    path: str | Path,
    times_s: list[float] | None = None,
    size: int = 480,
    mesh_dir: str | Path | None = None,
    backend: str = "painter",
) -> np.ndarray:
    """Draw the recorded robot at some times, side by side (bimanual: the left robot in a
    second row, at the same times).

    Args:
        path: an MCAP from ``hand-teleop run --record``.
        times_s: seconds after the first ``/tf`` stamp, one panel each (clipped to the
            recording); None: its start, middle and end.
        size: panel side, pixels.
        mesh_dir: folder that relative / ``package://`` mesh paths are under; None:
            the current folder.
        backend: the robot rasterizer (``robot_mesh.BACKENDS``).

    Returns:
        (size, size * len(times), 3) uint8 RGB image (bimanual: (2 * size, ...), right
        robot above), each panel labelled with its time (bimanual: and its side).
    """
    sides = recorded_sides(path) if Path(path).is_file() else (None,)
    robots = {side: read_recorded_tf(path, side) for side in sides}
    clock = robots[None]  # times count from the right or only robot's first /tf
    duration_s = (clock.end_ns - clock.start_ns) / 1e9
    if times_s is None:
        times_s = [0.0, 0.5 * duration_s, duration_s]
    if not times_s:
        raise ValueError("times_s: give at least one time")
    times_s = [float(np.clip(t, 0.0, duration_s)) for t in times_s]
    rows = []
    for side, recorded in robots.items():
        label = f"{side or 'right'} " if len(robots) > 1 else ""
        stamps = [clock.start_ns + round(t * 1e9) for t in times_s]
        panels = _draw_robot(recorded, stamps, size, mesh_dir, backend, path)
        for panel, t in zip(panels, times_s, strict=True):
            cv2.putText(panel, f"{label}t = {t:.2f} s", (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6,
                        tuple(255 - c for c in LABEL_TEXT_RGB), 1, cv2.LINE_AA)  # fmt: skip
        rows.append(np.concatenate(panels, axis=1))
    return np.concatenate(rows, axis=0)


def _draw_robot(recorded: RecordedTf, stamps_ns: list[int], size: int,
                mesh_dir: str | Path | None, backend: str, path: str | Path) -> list[np.ndarray]:
    """One recorded robot's meshes at each time (nanosecond stamps), from its own URDF."""
    with tempfile.TemporaryDirectory() as tmp:
        urdf_path = Path(tmp) / "robot_description.urdf"
        urdf_path.write_text(recorded.urdf, encoding="utf-8")
        root = urdf_root_link(urdf_path)
        renderer = RobotMeshRenderer(urdf_path, size=(size, size), backend=backend,
                                     mesh_dir=Path(mesh_dir or Path.cwd()))  # fmt: skip
        try:
            if renderer.backend == "sticks":
                raise ValueError(f"{path}: the recorded URDF has no visual geometry")
            return [renderer.render_link_poses(compose_link_poses(root,
                                                                  recorded.transforms_at(t)))
                    for t in stamps_ns]  # fmt: skip
        finally:
            renderer.close()
