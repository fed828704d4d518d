"""Capture an operator's open hand and fist through the estimator and the IK, for the
flexion calibration (:mod:`hand_ik.ik.flexion_calibration`; ``hand-teleop calibrate
--source``).

Frames come from the demo (its scripted open-hand and fist holds), a video file or a
camera; each frame goes through the image estimator and the IK stage as in the teleop
graph (tracking, warm starts), and the solved joint angles of the chosen frame ranges are
kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from hand_ik.bio_dofs import NUM_BIO_DOFS
from hand_ik.hand_state import HandState
from hand_pose_ros.graph_plan import parse_source
from hand_pose_ros.pipeline.estimators import ESTIMATOR_CONVENTIONS, create_estimator
from hand_pose_ros.pipeline.stages import IKStage, IKStageConfig

#: Default frame ranges (start, stop) of a camera: open hand 1-3 s, fist 5-7 s at 30 fps.
WEBCAM_RANGES = {"open": (30, 90), "fist": (150, 210)}


@dataclass
class CapturedPoses:
    """Estimated joint angles (radians, ``BIO_DOF_NAMES`` order) of the two poses; a row of
    NaN where no hand was found or solved."""

    open: np.ndarray  # (N, 23)
    fist: np.ndarray  # (M, 23)


def parse_frame_range(text: str) -> tuple[int, int]:
    """``"A:B"`` -> (A, B): frames A to B - 1 of the source."""
    try:
        start, stop = (int(part) for part in str(text).split(":"))
    except ValueError:
        raise ValueError(f"a frame range is START:STOP (frames START to STOP-1), got "
                         f"{text!r}") from None
    if not 0 <= start < stop:
        raise ValueError(f"a frame range needs 0 <= START < STOP, got {text!r}")
    return start, stop


def operator_prompts(ranges: dict[str, tuple[int, int]]) -> dict[int, str]:
    """Frame -> what to tell a live operator then: the first pose at frame 0, the second
    when the first range ends, and when the last one ends."""
    names = {"open": "an OPEN hand (fingers straight, palm to the camera)", "fist": "a FIST"}
    (p1, (_, e1)), (p2, (s2, e2)) = sorted(ranges.items(), key=lambda item: item[1][0])
    s1 = ranges[p1][0]
    return {0: f"show {names[p1]} and hold it (frames {s1}-{e1 - 1})",
            e1: f"now {names[p2]}, and hold it (frames {s2}-{e2 - 1})",
            e2 - 1: "done: relax"}  # fmt: skip


def demo_ranges() -> dict[str, tuple[int, int]]:
    """The scripted demo's first open-hand hold and its first fist hold (frames)."""
    from hand_pose_ros.pipeline.demo import DEMO_SCRIPT, DemoHand

    demo = DemoHand()
    segment = demo.transition_s + demo.hold_s
    ranges = {}
    for pose, keyframe_name in (("open", "flat"), ("fist", "fist")):
        k = next(i for i, (name, _) in enumerate(DEMO_SCRIPT) if name == keyframe_name)
        start = int(np.ceil((k * segment + demo.transition_s) * demo.fps))
        ranges[pose] = (start, int((k + 1) * segment * demo.fps))
    return ranges


def frames_of(source: str) -> tuple[Iterator[tuple[np.ndarray, np.ndarray]], Callable[[], None]]:
    """(iterator of (RGB image, K), close) for ``demo``, ``video:PATH`` or ``webcam:N``."""
    kind, _ = parse_source(source)
    if kind == "demo":
        from hand_pose_ros.pipeline.demo import DemoHand

        demo = DemoHand()

        def demo_frames():
            for frame in demo:
                yield frame.image, frame.K

        return demo_frames(), lambda: None
    if kind not in ("video", "webcam"):
        raise ValueError(f"source: demo, video:PATH or webcam:N, got {source!r}")
    from hand_pose_ros.pipeline.video_source import VideoSource

    video = VideoSource(source)

    def video_frames():
        while (image := video.read()) is not None:
            yield image, video.K

    return video_frames(), video.close


class HandSolver:
    """One image's best hand through the image estimator and the IK stage, as in the
    teleop graph (one hand, the estimator's keypoint convention, warm starts per track)."""

    def __init__(self, estimator: str = "handtrack", hand_side: str = "auto",
                 mirrored_input: bool = False) -> None:  # fmt: skip
        self.estimator = create_estimator(estimator, max_hands=1, hand_side=hand_side,
                                          mirrored_input=mirrored_input)  # fmt: skip
        self.stage = IKStage(IKStageConfig(keypoint_convention=ESTIMATOR_CONVENTIONS[estimator]))

    def __call__(self, image: np.ndarray, K: np.ndarray) -> HandState | None:
        """The solved hand of an RGB image with intrinsics ``K``, or None (no hand found, or
        the IK refused it)."""
        hands = self.estimator(image, K)
        if not hands:
            return None
        h = hands[0]
        state = self.stage.solve(h.camera_points, h.handedness, h.track_id,
                                 with_vertices=False, image_points=h.image_points,
                                 K=K)  # fmt: skip
        return state if state.valid[0] else None


def capture_poses(source: str, ranges: dict[str, tuple[int, int]],
                  estimator: str = "handtrack", hand_side: str = "auto",
                  mirrored_input: bool = False,
                  on_frame: Callable[[int], None] | None = None) -> CapturedPoses:  # fmt: skip
    """The estimated joint angles of the frames in ``ranges`` (``{"open": (a, b), "fist":
    (c, d)}``) of ``source``, through :class:`HandSolver`. ``on_frame(i)`` is called before
    frame i (prompts).

    Raises:
        ValueError: the source ends before the last range does.
    """
    frames, close = frames_of(source)
    solve = HandSolver(estimator, hand_side, mirrored_input)
    stop = max(b for _, b in ranges.values())
    rows: dict[str, list[np.ndarray]] = {pose: [] for pose in ranges}
    try:
        for i in range(stop):
            if on_frame is not None:
                on_frame(i)
            try:
                image, K = next(frames)
            except StopIteration:
                raise ValueError(f"{source} ended at frame {i}, before frame {stop - 1} of "
                                 "the frame ranges") from None  # fmt: skip
            state = solve(image, K)
            bio = np.full(NUM_BIO_DOFS, np.nan) if state is None \
                else np.asarray(state.bio[0], dtype=np.float64)  # fmt: skip
            for pose, (a, b) in ranges.items():
                if a <= i < b:
                    rows[pose].append(bio)
    finally:
        close()
    return CapturedPoses(np.array(rows["open"]), np.array(rows["fist"]))
