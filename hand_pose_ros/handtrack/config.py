"""Options of the hand tracking graph (palm detector + landmark network)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from hand_pose_ros.estimation.detections import CAMERA_POINTS, HAND_SIDES

PALM_MODELS: tuple[str, ...] = ("palm_full", "palm_lite")
LANDMARK_MODELS: tuple[str, ...] = ("landmark_full", "landmark_lite")


@dataclass
class HandTrackConfig:
    """How hands are found, followed and labelled."""

    max_hands: int = 2
    """Hands tracked at once."""
    palm_model: str = "palm_full"
    """Palm detector network: palm_full or palm_lite."""
    landmark_model: str = "landmark_full"
    """Landmark network: landmark_full or landmark_lite."""
    min_detection_score: float = 0.5
    """A palm starts a track from this detection probability."""
    min_presence: float = 0.5
    """A track ends when the landmark network's hand presence falls below this."""
    nms_iou: float = 0.3
    """Palms overlapping a better one by more IoU than this are merged into it."""
    same_hand_iou: float = 0.5
    """A palm (or track) whose ROI overlaps a tracked hand's ROI by more IoU than this is
    that hand, not a new one."""
    search_every: int = 10
    """While at least one but fewer than ``max_hands`` hands are tracked, look for new
    ones every this many frames (with none tracked: every frame). 10 at 30 fps finds a
    second hand within a third of a second and keeps the palm detector (about as slow as
    the landmark network) off most frames."""
    palm_roi_scale: float = 2.6
    """Hand ROI side / palm box side."""
    palm_roi_shift: float = -0.5
    """Hand ROI shift from the palm box toward the fingers, in palm box sizes."""
    landmark_roi_scale: float = 2.0
    """Next frame's ROI side / the palm landmarks' extent."""
    landmark_roi_shift: float = -0.1
    """Next frame's ROI shift toward the fingers, in ROI sizes."""
    handedness_momentum: float = 0.8
    """Weight of a track's past handedness when a new frame's estimate arrives (0: per
    frame only)."""
    mirrored_input: bool = False
    """Images are mirrored (selfie view): report the physical side, opposite to the seen."""
    hand_side: str = "auto"
    """auto: each hand's side from the landmark network; right | left: the operator's hand,
    only that hand is reported (the track labelled that side, else the best)."""
    roi_refinements: int = 0
    """Extra landmark passes on a newly found hand before its first result, each on the
    ROI from the previous pass's landmarks (as a tracked hand's next frame gets it). 0: the
    palm's ROI only. Costs a landmark pass per refinement, only on frames that start a
    track (every frame when each image is new)."""
    mirror_average: bool = False
    """Also run every ROI mirrored and average the two answers (2D and world landmarks;
    presence and side from the unmirrored one): twice the landmark network's work."""
    camera_points: str = "translated"
    """translated: the world landmarks (metres, hand-centred) translated so that they
    project onto the 2D landmarks as well as one translation can; image_rays: then each
    moved onto its 2D landmark's ray at its depth (the 3D's depths, the 2D's x and y:
    more accurate 3D keypoints, a slightly worse robot command after the IK;
    docs/handtrack.md)."""

    def __post_init__(self) -> None:
        if self.max_hands < 1:
            raise ValueError(f"HandTrackConfig.max_hands must be >= 1, got {self.max_hands}")
        if self.palm_model not in PALM_MODELS:
            raise ValueError(f"HandTrackConfig.palm_model: one of {PALM_MODELS}, "
                             f"got {self.palm_model!r}")  # fmt: skip
        if self.landmark_model not in LANDMARK_MODELS:
            raise ValueError(f"HandTrackConfig.landmark_model: one of {LANDMARK_MODELS}, "
                             f"got {self.landmark_model!r}")  # fmt: skip
        for name in ("min_detection_score", "min_presence", "nms_iou", "same_hand_iou"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"HandTrackConfig.{name} must be in [0, 1], got {value}")
        if not 0.0 <= self.handedness_momentum < 1.0:
            raise ValueError("HandTrackConfig.handedness_momentum must be in [0, 1)")
        if not (isinstance(self.roi_refinements, int) and self.roi_refinements >= 0):
            raise ValueError(f"HandTrackConfig.roi_refinements must be an int >= 0, "
                             f"got {self.roi_refinements!r}")  # fmt: skip
        if self.search_every < 1:
            raise ValueError("HandTrackConfig.search_every must be >= 1")
        if self.palm_roi_scale <= 0 or self.landmark_roi_scale <= 0:
            raise ValueError("HandTrackConfig: ROI scales must be positive")
        if self.camera_points not in CAMERA_POINTS:
            raise ValueError(f"HandTrackConfig.camera_points: one of {CAMERA_POINTS}, "
                             f"got {self.camera_points!r}")  # fmt: skip
        if self.hand_side not in HAND_SIDES:
            raise ValueError(f"HandTrackConfig.hand_side: one of {HAND_SIDES}, "
                             f"got {self.hand_side!r}")  # fmt: skip

    def to_dict(self) -> dict:
        return asdict(self)
