"""The ``--viz`` video of a teleop run, drawn on a worker thread.

Each command (a joint state) with the latest input image makes one frame: left, the
image with its keypoints and the IK's hand mesh (``viz/hand_overlay.py``); right, the
robot's meshes in the commanded pose (``viz/robot_mesh.py``; sticks for a URDF without
visuals). Bimanual: one robot panel per robot (:class:`VizRobot`, each from its own URDF,
labelled), side by side, each in its own latest command; a panel whose command did not
change since the last drawing is not drawn again. Rendering and encoding run on one
daemon thread behind a small queue, so the ROS executor only passes references. The
worker draws at most ``max_busy`` of the time (the rest of the CPU stays with the teleop
graph): a command that arrives sooner repeats the last drawn frame, so the video keeps
one frame per command and real time, at a lower drawing rate when the CPU is busy. At
most ``queue_size`` frames wait to be drawn; a command beyond that is queued as "repeat
the last drawing" (a token, not an image), and only when ``MAX_PENDING`` tokens wait is
one dropped (counted). The painter's renderers are made before the first command (the
worker is ready at once); a GL renderer is made on the worker thread (its context
belongs to that thread). The input panel is drawn at the video's height (a 1280x720
camera image is scaled down first, its intrinsics with it).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from hand_pose_ros.viz.hand_overlay import CameraMesh, HandMeshOverlay, HandPose
from hand_pose_ros.viz.overlay import draw_hand_keypoints, put_label
from hand_pose_ros.viz.robot_mesh import BACKENDS, RobotMeshRenderer
from hand_pose_ros.viz.video import SideBySideWriter

_log = logging.getLogger(__name__)

#: Most commands (frames and repeat tokens) waiting for the worker; beyond: dropped.
MAX_PENDING = 1024
#: Queued in place of a frame: "write the last drawing again".
_REPEAT = object()


@dataclass
class TeleopVizConfig:
    """Options of the viz video."""

    fps: float = 15.0
    """Frame rate written in the video file, frames per second."""
    robot_size: int = 480
    """Side of the robot panel, pixels (the input image is scaled to this height)."""
    robot_backend: str = "painter"
    """Robot panel: painter (OpenCV), gl (EGL) or sticks (no meshes)."""
    hand_mesh: bool = True
    """Draw the IK's hand mesh over the input image."""
    hand_model: str = "open"
    """Hand model the IK uses (its ``hand_model`` parameter)."""
    queue_size: int = 4
    """Frames waiting to be drawn; later commands repeat the last drawing."""
    max_busy: float = 0.15
    """Largest fraction of time the worker spends drawing; sooner frames repeat the last."""

    def __post_init__(self) -> None:
        if not self.fps > 0:
            raise ValueError(f"fps must be positive, got {self.fps}")
        if self.robot_size < 64:
            raise ValueError(f"robot_size must be at least 64, got {self.robot_size}")
        if self.robot_backend not in BACKENDS:
            raise ValueError(f"robot_backend must be one of {BACKENDS}, got "
                             f"{self.robot_backend!r}")  # fmt: skip
        if self.queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {self.queue_size}")
        if not 0.0 < self.max_busy <= 1.0:
            raise ValueError(f"max_busy must be in (0, 1], got {self.max_busy}")


@dataclass(frozen=True)
class VizRobot:
    """One robot panel of the video."""

    urdf: Path
    """The robot's URDF (its meshes are drawn)."""
    label: str = ""
    """Written at the panel's top-left corner (bimanual: side and robot); empty: none."""

    def __post_init__(self) -> None:
        if Path(self.urdf) == Path(""):
            raise ValueError("urdf must name the robot's URDF file, got an empty path")


@dataclass(frozen=True)
class VizFrame:
    """What one video frame is drawn from (references; the worker copies nothing it
    does not draw on).

    Attributes:
        image: (H, W, 3) uint8 RGB input image.
        uv: (21, 2) keypoint pixels, or None.
        K: (3, 3) intrinsics of ``image``, or None (no hand mesh then).
        hands: solved hands to draw as meshes.
        joint_positions: robot joint name -> commanded position (radians / metres), of
            the first robot panel.
        more_joint_positions: the same for each further robot panel, in panel order
            (bimanual: the left robot's); None: no command yet (drawn neutral).
        uv_by_side: bimanual: hand side -> that hand's latest (21, 2) keypoint pixels,
            each drawn with its R / L tag (besides ``uv``, normally None then).
        estimated: the estimator's own meshes (``handtrack_mesh``), drawn in green under
            the IK's.
    """

    image: np.ndarray
    uv: np.ndarray | None
    K: np.ndarray | None
    hands: tuple[HandPose, ...]
    joint_positions: Mapping[str, float]
    more_joint_positions: tuple[Mapping[str, float] | None, ...] = ()
    uv_by_side: Mapping[str, np.ndarray] = field(default_factory=dict)
    estimated: tuple[CameraMesh, ...] = ()


class TeleopViz:
    """Writes the side-by-side viz video from :class:`VizFrame` s on a worker thread.

    Args:
        path: output ``.mp4``.
        robots: the commanded robot's URDF (one unlabelled panel), or one
            :class:`VizRobot` per robot panel, left to right (bimanual: right, left).
        config: the options.

    Attributes:
        submitted, written, repeated, dropped: frame counts (``written`` includes the
            ``repeated`` ones, which show the last drawing again).
        render_ms: per drawn frame, milliseconds spent drawing the robot panels.
        left_ms: per written frame, milliseconds spent drawing the input panel (hand mesh
            and keypoints).
        backend: the robot renderer's backend (None until the worker has started it).
    """

    def __init__(self, path: str | Path, robots: str | Path | Sequence[VizRobot],
                 config: TeleopVizConfig | None = None):  # fmt: skip
        self.path = Path(path)
        if isinstance(robots, str | Path):
            robots = (VizRobot(Path(robots)),)
        self.robots = tuple(robots)
        if not self.robots:
            raise ValueError("robots must name at least one robot")
        self.config = config or TeleopVizConfig()
        self.submitted = self.written = self.repeated = self.dropped = 0
        self.render_ms: list[float] = []
        self.left_ms: list[float] = []
        self.backend: str | None = None
        self._queue: queue.Queue = queue.Queue(MAX_PENDING)
        self._frames_pending = 0  # VizFrames in the queue (the rest are repeat tokens)
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._renderers = None
        if self.config.robot_backend != "gl":
            self._renderers = self._make_renderers()  # errors surface here, at start-up
        self._thread = threading.Thread(target=self._work, name="teleop_viz", daemon=True)
        self._thread.start()

    def _make_renderers(self) -> tuple[list[RobotMeshRenderer], HandMeshOverlay | None]:
        cfg = self.config
        size = (cfg.robot_size, cfg.robot_size)
        robots = [RobotMeshRenderer(r.urdf, size=size, backend=cfg.robot_backend)
                  for r in self.robots]  # fmt: skip
        self.backend = robots[0].backend
        return robots, HandMeshOverlay(cfg.hand_model) if cfg.hand_mesh else None

    def submit(self, frame: VizFrame) -> bool:
        """Queue one command's frame (or, when ``queue_size`` frames already wait, a
        repeat of the last drawing); False (counted as dropped) when the worker is
        ``MAX_PENDING`` commands behind."""
        self.submitted += 1
        with self._lock:
            heavy = self._frames_pending < self.config.queue_size
            self._frames_pending += heavy
        try:
            self._queue.put_nowait(frame if heavy else _REPEAT)
            return True
        except queue.Full:
            with self._lock:
                self._frames_pending -= heavy
                self.dropped += 1
            return False

    def _work(self) -> None:
        try:
            robots, hand = self._renderers or self._make_renderers()
        except BaseException as exc:  # re-raised by close()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        cfg = self.config
        size = (cfg.robot_size, cfg.robot_size)
        last: tuple[np.ndarray, np.ndarray] | None = None
        panels: list[tuple[tuple, np.ndarray] | None] = [None] * len(robots)  # last drawn
        next_draw = 0.0
        with SideBySideWriter(self.path, fps=self.config.fps, height=size[1]) as writer:
            while (frame := self._queue.get()) is not None:
                if frame is not _REPEAT:
                    with self._lock:
                        self._frames_pending -= 1
                try:
                    if frame is _REPEAT and last is None:
                        with self._lock:
                            self.dropped += 1  # nothing drawn yet to repeat
                        continue
                    if frame is _REPEAT or time.perf_counter() < next_draw:
                        writer.write(*last)
                        self.repeated += 1
                        self.written += 1
                        continue
                    start = time.perf_counter()
                    left = self._left(frame, hand, size[1])
                    middle = time.perf_counter()
                    right = self._right(frame, robots, panels)
                    end = time.perf_counter()
                    self.left_ms.append(1e3 * (middle - start))
                    self.render_ms.append(1e3 * (end - middle))
                    next_draw = end + (end - start) * (1.0 / cfg.max_busy - 1.0)
                    writer.write(left, right)
                    last = (left, right)
                    self.written += 1
                except Exception:  # one bad frame must not end the video
                    _log.exception("viz: frame %d not drawn", self.submitted)
        for robot in robots:
            robot.close()

    def _right(self, frame: VizFrame, robots: list[RobotMeshRenderer],
               panels: list[tuple[tuple, np.ndarray] | None]) -> np.ndarray:  # fmt: skip
        """The robot panels side by side, each in its own command (``panels``: per panel,
        the last command drawn and its image, reused while the command is the same)."""
        commands = (frame.joint_positions, *frame.more_joint_positions)
        images = []
        for k, (robot, spec) in enumerate(zip(robots, self.robots, strict=True)):
            command = dict(commands[k]) if k < len(commands) and commands[k] else {}
            key = tuple(sorted(command.items()))
            if panels[k] is None or panels[k][0] != key:
                image = robot.render(command)
                if spec.label:
                    image = put_label(np.ascontiguousarray(image), spec.label)
                panels[k] = (key, image)
            images.append(panels[k][1])
        return images[0] if len(images) == 1 else np.concatenate(images, axis=1)

    @staticmethod
    def _left(frame: VizFrame, hand: HandMeshOverlay | None, height: int) -> np.ndarray:
        """The input panel at ``height`` pixels: image, hand meshes, keypoints."""
        h, w = frame.image.shape[:2]
        s = height / h
        left = cv2.resize(frame.image, (max(1, round(w * s)), height),
                          interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)  # fmt: skip
        # Pixel centres at integers: u' = s (u + 0.5) - 0.5.
        if hand is not None and frame.K is not None and (frame.hands or frame.estimated):
            K = np.array(frame.K, dtype=float)
            K[:2] *= s
            K[:2, 2] += 0.5 * s - 0.5
            left = hand.draw_meshes(left, K, list(frame.estimated))
            left = hand.draw(left, K, list(frame.hands))
        if frame.uv is not None and np.abs(frame.uv).sum() > 0:
            draw_hand_keypoints(left, s * (np.asarray(frame.uv) + 0.5) - 0.5)
        for side, uv in frame.uv_by_side.items():
            if np.abs(uv).sum() > 0:
                draw_hand_keypoints(left, s * (np.asarray(uv) + 0.5) - 0.5, handedness=side)
        return left

    def close(self, timeout_s: float = 30.0) -> None:
        """Finish the queued frames and the file; logs the counts and the render time.

        Raises:
            RuntimeError: the worker could not start its renderers (the cause chained).
        """
        self._ready.wait(timeout_s)
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout_s)
        if self._error is not None:
            urdfs = ", ".join(str(r.urdf) for r in self.robots)
            raise RuntimeError(f"viz worker failed to start for {urdfs}") from self._error
        robot_ms, left_ms = np.asarray(self.render_ms), np.asarray(self.left_ms)
        _log.info("viz %s: %d frames written (%d repeat the last drawing), %d dropped of %d; "
                  "median ms: robot panel (%s) %.1f, input panel %.1f", self.path,
                  self.written, self.repeated, self.dropped, self.submitted, self.backend,
                  float(np.median(robot_ms)) if robot_ms.size else float("nan"),
                  float(np.median(left_ms)) if left_ms.size else float("nan"))  # fmt: skip
