"""A recorded robot drawn from the recording alone, as Foxglove's 3D panel would draw it.

Reads an MCAP from ``hand-teleop run --record`` with the ``mcap`` reader and the
``mcap-ros2-support`` CDR decoder (no ROS install needed): the URDF text on
``/robot_description``, the fixed joints on ``/tf_static`` and the movable joints on
``/tf``. At each requested time the latest transform of every child frame at or
before it is taken, the links are composed from the URDF's root link
(``hand_ik.robot.link_transforms.compose_link_poses``) and the visual meshes drawn
there (``viz/robot_mesh.RobotMeshRenderer.render_link_poses``). Nothing comes from the
joint states or our forward kinematics, so the picture shows what the file holds.

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
from hand_pose_ros.viz.colours import LABEL_TEXT_RGB
from hand_pose_ros.viz.robot_mesh import RobotMeshRenderer

ROBOT_DESCRIPTION = "/robot_description"
TF, TF_STATIC = "/tf", "/tf_static"


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


def _transform(msg) -> LinkTransform:
    t, r = msg.transform.translation, msg.transform.rotation
    return LinkTransform(msg.header.frame_id, msg.child_frame_id, np.array([t.x, t.y, t.z]),
                         np.array([r.x, r.y, r.z, r.w]))  # fmt: skip


def read_recorded_tf(path: str | Path) -> RecordedTf:
    """Read ``/robot_description``, ``/tf_static`` and ``/tf`` of an MCAP file.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file has no ``/robot_description`` or no ``/tf`` (not a
            ``hand-teleop run --record`` file with robot state).
    """
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no recording at {path}")
    urdf = None
    static: dict[str, LinkTransform] = {}
    dynamic: dict[str, tuple[list[int], list[LinkTransform]]] = {}
    with path.open("rb") as stream:
        reader = make_reader(stream, decoder_factories=[DecoderFactory()])
        topics = [ROBOT_DESCRIPTION, TF, TF_STATIC]
        for _, channel, _, msg in reader.iter_decoded_messages(topics=topics, log_time_order=True):
            if channel.topic == ROBOT_DESCRIPTION:
                urdf = msg.data
                continue
            for t in msg.transforms:
                transform = _transform(t)
                if channel.topic == TF_STATIC:
                    static[t.child_frame_id] = transform
                else:
                    stamp = t.header.stamp.sec * 1_000_000_000 + t.header.stamp.nanosec
                    stamps, items = dynamic.setdefault(t.child_frame_id, ([], []))
                    stamps.append(stamp)
                    items.append(transform)
    if urdf is None:
        raise ValueError(f"{path}: no {ROBOT_DESCRIPTION} message (record with hand-teleop run)")
    if not dynamic:
        raise ValueError(f"{path}: no {TF} message")
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
    """Draw the recorded robot at some times, side by side.

    Args:
        path: an MCAP from ``hand-teleop run --record``.
        times_s: seconds after the first ``/tf`` stamp, one panel each (clipped to the
            recording); None: its start, middle and end.
        size: panel side, pixels.
        mesh_dir: folder that relative / ``package://`` mesh paths are under; None:
            the current folder.
        backend: the robot rasterizer (``robot_mesh.BACKENDS``).

    Returns:
        (size, size * len(times), 3) uint8 RGB image, each panel labelled with its time.
    """
    recorded = read_recorded_tf(path)
    duration_s = (recorded.end_ns - recorded.start_ns) / 1e9
    if times_s is None:
        times_s = [0.0, 0.5 * duration_s, duration_s]
    if not times_s:
        raise ValueError("times_s: give at least one time")
    with tempfile.TemporaryDirectory() as tmp:
        urdf_path = Path(tmp) / "robot_description.urdf"
        urdf_path.write_text(recorded.urdf, encoding="utf-8")
        root = urdf_root_link(urdf_path)
        renderer = RobotMeshRenderer(urdf_path, size=(size, size), backend=backend,
                                     mesh_dir=Path(mesh_dir or Path.cwd()))  # fmt: skip
        try:
            panels = []
            for t in times_s:
                t = float(np.clip(t, 0.0, duration_s))
                transforms = recorded.transforms_at(recorded.start_ns + round(t * 1e9))
                if renderer.backend == "sticks":
                    raise ValueError(f"{path}: the recorded URDF has no visual geometry")
                panel = renderer.render_link_poses(compose_link_poses(root, transforms))
                cv2.putText(panel, f"t = {t:.2f} s", (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6,
                            tuple(255 - c for c in LABEL_TEXT_RGB), 1, cv2.LINE_AA)  # fmt: skip
                panels.append(panel)
        finally:
            renderer.close()
    return np.concatenate(panels, axis=1)
