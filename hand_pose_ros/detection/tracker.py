"""MediaPipe-like hand tracking on top of a full-frame / ROI hand detector.

Once a hand is found, the next frame's detector crop (ROI) comes from its last keypoints
(fast path). The full-frame detector runs again in the *same* frame when no hand is
tracked or a track was missed (as MediaPipe does), and at least every
``redetect_every`` frames to pick up new hands. Track ids are stable and never reused;
the handedness is an exponential moving average of the left-hand probability.

Pure numpy: the detector is passed in as a callable
``detect(image, roi=None) -> list[Detection]`` (see
:class:`hand_pose_ros.detection.postprocess.Detection`); with ``roi`` a (4,) xyxy square in
frame pixels (possibly extending beyond the frame) it runs on that crop only and returns
detections in frame pixels. The tracker only reads the attributes of
:class:`DetectionLike`, so any object with them works.

All coordinates are frame pixels, x right, y down (OpenCV).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from hand_pose_ros.detection.postprocess import box_iou as pairwise_iou

HANDEDNESS_NAMES: tuple[str, ...] = ("right", "left")
ROI_SOURCES: tuple[str, ...] = ("keypoints", "box")


class DetectionLike(Protocol):
    """What the tracker reads from a detection (frame pixels)."""

    box: np.ndarray  # (4,) xyxy
    score: float  # hand probability
    cls: int  # 0 right, 1 left
    class_probs: np.ndarray  # (2,) right / left probabilities
    keypoints: np.ndarray  # (21, 2)
    kp_conf: np.ndarray  # (21,) in [0, 1]


Detector = Callable[..., Sequence[DetectionLike]]
"""``detect(image, roi=None) -> list[Detection]``; ``roi`` a (4,) xyxy frame-pixel square."""
SideProbability = Callable[[np.ndarray, DetectionLike], float]
"""``side_probability(image, detection) -> P(left | hand)`` in [0, 1]."""


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


@dataclass
class TrackerConfig:
    """Tracking thresholds and schedule (frames, probabilities, IoU ratios)."""

    max_hands: int = 2
    """Most hands tracked at once."""
    redetect_every: int = 10
    """A full-frame detection at least this often, frames."""
    min_detection_score: float = 0.5
    """Full-frame detections below this hand probability are ignored, so a new track needs
    at least this score. On the real hand video (run 3 weights, 621 frames) starting tracks
    from the detector's own threshold (0.3) let a patterned shirt at the frame edge start a
    second, lasting track (113 two-hand frames, 6 ids); from 0.5: none, 3 ids, hand found
    in 99.7 % of frames (measured 2026-12-01)."""
    min_tracking_score: float = 0.5
    """A track whose best ROI detection scores below this is missed this frame (the
    shipped factory sets the detector's threshold, 0.3: a hand once found is kept)."""
    roi_scale: float = 3.5
    """ROI side = roi_scale * the longer side of the keypoint box (or of the box, see
    ``roi_source``). Our detector runs on the
    ROI and was trained on full frames, where hands are small: at MediaPipe's 1.6 the hand
    fills the input and the shipped detector re-found it in 0 of 11 ROI calls on a panned
    synthetic frame (full detection every frame); at 3.5 the fast path held (3 full
    detections in 12 frames, redetect_every=5), measured 2026-12-01."""
    match_iou: float = 0.3
    """Least IoU for a full-frame detection to refresh an existing track."""
    handedness_momentum: float = 0.95
    """EMA weight of the previous left-hand probability, in [0, 1). A track is one physical
    hand, whose side does not change, so the vote is long (about 20 frames). On the real
    right-hand video (621 frames, the shipped handedness probe as ``side_probability``) the
    share of frames labelled left was 0.156 / 0.118 / 0.070 and label flips 13 / 10 / 8 at
    momentum 0.8 / 0.9 / 0.95 (measured 2026-12-02)."""
    max_missed: int = 0
    """Consecutive missed frames a track survives; one more and it is dropped."""
    duplicate_iou: float = 0.5
    """An unmatched detection with this IoU to any track never starts a new track."""
    suppress_iou: float = 0.6
    """Two tracks with this IoU converged on one hand: the younger one is dropped."""
    roi_source: str = "keypoints"
    """What the ROI is centred on and sized by: ``"keypoints"`` (the last keypoint box, as
    MediaPipe does) or ``"box"`` (the last detected box)."""
    roi_kp_conf: float = 0.2
    """Keypoints above this confidence define the ROI ..."""
    min_roi_keypoints: int = 4
    """... unless fewer than this many pass; then all keypoints are used."""

    def __post_init__(self) -> None:
        _check(self.max_hands >= 1, f"max_hands must be >= 1, got {self.max_hands}")
        _check(
            self.redetect_every >= 1, f"redetect_every must be >= 1, got {self.redetect_every}"
        )
        for name in ("min_detection_score", "min_tracking_score", "roi_kp_conf"):
            value = getattr(self, name)
            _check(0.0 <= value <= 1.0, f"{name} must be in [0, 1], got {value}")
        for name in ("match_iou", "duplicate_iou", "suppress_iou"):
            value = getattr(self, name)
            _check(0.0 < value <= 1.0, f"{name} must be in (0, 1], got {value}")
        _check(
            np.isfinite(self.roi_scale) and self.roi_scale >= 1.0,
            f"roi_scale must be a finite number >= 1, got {self.roi_scale}",
        )
        _check(
            0.0 <= self.handedness_momentum < 1.0,
            f"handedness_momentum must be in [0, 1), got {self.handedness_momentum}",
        )
        _check(self.roi_source in ROI_SOURCES,
               f"roi_source must be one of {ROI_SOURCES}, got {self.roi_source!r}")  # fmt: skip
        _check(self.max_missed >= 0, f"max_missed must be >= 0, got {self.max_missed}")
        _check(
            self.min_roi_keypoints >= 2,
            f"min_roi_keypoints must be >= 2, got {self.min_roi_keypoints}",
        )


@dataclass
class TrackedHand:
    """One tracked hand (frame pixels)."""

    track_id: int
    handedness: str
    """"right" or "left", from the smoothed ``left_prob``."""
    left_prob: float
    """Smoothed probability that this is a left hand."""
    box: np.ndarray
    """(4,) xyxy."""
    keypoints: np.ndarray
    """(21, 2)."""
    kp_conf: np.ndarray
    """(21,) in [0, 1]."""
    score: float
    """Hand probability of the latest detection."""
    age: int
    """Frames since the track was born (0 on its first frame)."""
    source: str
    """"detect" (full-frame detector) or "track" (ROI from the last keypoints)."""
    missed: int = 0
    """Consecutive frames without a detection (only > 0 in :attr:`HandTracker.tracks`)."""


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two (4,) xyxy boxes; 0 for empty boxes."""
    return float(pairwise_iou(a, b)[0, 0])


def boxes_overlap(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two (4,) xyxy boxes intersect with a positive area."""
    return bool(min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1]))


def roi_from_box(box: np.ndarray, scale: float) -> np.ndarray:
    """Square (4,) xyxy ROI, frame pixels: centred on ``box``, side ``scale`` x its longer
    side (at least ``scale`` pixels)."""
    ref = np.asarray(box, dtype=np.float64).reshape(4)
    centre = (ref[:2] + ref[2:]) / 2.0
    half = scale * max(ref[2] - ref[0], ref[3] - ref[1], 1.0) / 2.0
    return np.concatenate([centre - half, centre + half])


def roi_from_keypoints(
    keypoints: np.ndarray,
    kp_conf: np.ndarray,
    box: np.ndarray,
    scale: float,
    min_conf: float = 0.2,
    min_points: int = 4,
) -> np.ndarray:
    """Square (4,) xyxy ROI, frame pixels, centred on the tight keypoint box.

    Uses the keypoints with ``kp_conf > min_conf`` (all finite ones if fewer than
    ``min_points`` pass); side = ``scale`` * the longer side of their box. Falls back to
    the detection ``box`` when the keypoints are degenerate (side under 1 pixel).
    """
    kps = np.asarray(keypoints, dtype=np.float64).reshape(-1, 2)
    finite = np.isfinite(kps).all(axis=1)
    confident = finite & (np.asarray(kp_conf, dtype=np.float64).reshape(-1) > min_conf)
    pts = kps[confident] if confident.sum() >= min_points else kps[finite]
    ref = np.asarray(box, dtype=np.float64)
    if len(pts) >= 2:
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        if (hi - lo).max() >= 1.0:
            ref = np.concatenate([lo, hi])
    return roi_from_box(ref, scale)


@dataclass
class _Track:
    """Internal mutable track state."""

    hand: TrackedHand
    updated: bool = False
    """Observed (by ROI or full-frame detection) in the current frame."""


def _label(left_prob: float) -> str:
    return HANDEDNESS_NAMES[1] if left_prob >= 0.5 else HANDEDNESS_NAMES[0]


def _left_prob(det: DetectionLike) -> float:
    """P(left | hand) of a detection: its left probability over its hand probability
    (``class_probs`` are P(right hand), P(left hand); 0.5 when both are 0)."""
    probs = np.clip(np.asarray(det.class_probs, dtype=np.float64).reshape(-1)[:2], 0.0, 1.0)
    total = float(probs.sum())
    return float(probs[1] / total) if total > 0.0 else 0.5


class HandTracker:
    """Tracks up to ``max_hands`` hands through frames with a ROI fast path.

    Per :meth:`update`:

    1. Each live track is re-detected in a square ROI around its last keypoints; the
       best-scoring detection overlapping the ROI updates it (source "track") if it scores
       at least ``min_tracking_score``, otherwise the track is missed (dropped once missed
       more than ``max_missed`` frames in a row).
    2. The full-frame detector runs in the same frame when no track is live, any track was
       missed this frame, or ``redetect_every`` frames have passed since the last full
       detection. Its detections (score >= ``min_detection_score``) are matched greedily
       by IoU (>= ``match_iou``) to the tracks: a match re-finds a missed track
       (source "detect", same id); a track already updated by its ROI this frame keeps the
       ROI result (finer crop). Unmatched detections start new tracks, highest score
       first, up to ``max_hands``, unless they overlap a track by ``duplicate_iou``.
    3. Handedness: ``left_prob = m * left_prob + (1 - m) * P(left | hand)``, where
       ``P(left | hand)`` is ``side_probability(image, detection)`` when given (e.g. the
       crop classifier of :mod:`hand_pose_ros.detection.handedness`), else the
       detector's ``class_probs[1] / sum(class_probs)``.
    4. Tracks overlapping by ``suppress_iou`` converged on one hand: the older one stays.

    It returns the hands observed in this frame, sorted by id; coasting tracks (missed
    but within ``max_missed``) are only in :attr:`tracks`.
    """

    def __init__(self, detect: Detector, config: TrackerConfig | None = None,
                 side_probability: SideProbability | None = None) -> None:  # fmt: skip
        self.detect = detect
        self.config = config if config is not None else TrackerConfig()
        self.side_probability = side_probability
        self.reset()

    def reset(self) -> None:
        """Forget all tracks and counters; ids start again from 0."""
        self._tracks: list[_Track] = []
        self._next_id = 0
        self._frame_index = 0
        self._last_full: int | None = None
        self._full_detections = 0
        self._roi_calls = 0

    @property
    def frame_index(self) -> int:
        """Frames processed so far (the index of the next frame)."""
        return self._frame_index

    @property
    def full_detections(self) -> int:
        """Full-frame detector calls so far."""
        return self._full_detections

    @property
    def roi_calls(self) -> int:
        """ROI detector calls so far."""
        return self._roi_calls

    @property
    def tracks(self) -> list[TrackedHand]:
        """All live tracks, including coasting (missed) ones, sorted by id."""
        return [_snapshot(t) for t in sorted(self._tracks, key=lambda t: t.hand.track_id)]

    def update(self, image: np.ndarray) -> list[TrackedHand]:
        """Track hands in one RGB frame; returns the hands observed in it, sorted by id."""
        for track in self._tracks:
            track.updated = False
            track.hand.age += 1
        any_missed = self._track_rois(image)
        if self._needs_full_detection(any_missed):
            self._full_detection(image)
        self._drop_missed()
        self._suppress_converged()
        self._frame_index += 1
        observed = [t for t in self._tracks if t.updated]
        return [_snapshot(t) for t in sorted(observed, key=lambda t: t.hand.track_id)]

    # -- step 1: ROI fast path -------------------------------------------------------------

    def _track_rois(self, image: np.ndarray) -> bool:
        """Re-detect each track in its ROI; returns whether any track was missed."""
        cfg = self.config
        any_missed = False
        for track in self._tracks:
            hand = track.hand
            if cfg.roi_source == "box":
                roi = roi_from_box(hand.box, cfg.roi_scale)
            else:
                roi = roi_from_keypoints(
                    hand.keypoints, hand.kp_conf, hand.box, cfg.roi_scale,
                    cfg.roi_kp_conf, cfg.min_roi_keypoints,
                )
            self._roi_calls += 1
            dets = [d for d in self.detect(image, roi) if boxes_overlap(_box(d), roi)]
            best = max(dets, key=lambda d: float(d.score), default=None)
            if best is not None and float(best.score) >= cfg.min_tracking_score:
                self._refresh(track, best, "track", image)
            else:
                hand.missed += 1
                any_missed = True
        return any_missed

    # -- step 2: full-frame detection ------------------------------------------------------

    def _needs_full_detection(self, any_missed: bool) -> bool:
        """Whether to run the full-frame detector in this frame."""
        if not self._tracks or any_missed or self._last_full is None:
            return True
        # Fewer than max_hands or not, a full detection is due every redetect_every frames.
        return self._frame_index - self._last_full >= self.config.redetect_every

    def _full_detection(self, image: np.ndarray) -> None:
        """Run the full-frame detector; refresh matched tracks and start new ones."""
        cfg = self.config
        self._full_detections += 1
        self._last_full = self._frame_index
        dets = [d for d in self.detect(image, None) if float(d.score) >= cfg.min_detection_score]
        dets.sort(key=lambda d: float(d.score), reverse=True)
        matched = self._match(dets)
        for det_index, track in matched.items():
            if not track.updated:
                self._refresh(track, dets[det_index], "detect", image)
        # Lost tracks the detector did not recover free their slots before new tracks start.
        self._drop_missed()
        for det_index, det in enumerate(dets):
            if det_index in matched or len(self._tracks) >= cfg.max_hands:
                continue
            box = _box(det)
            if any(box_iou(box, t.hand.box) >= cfg.duplicate_iou for t in self._tracks):
                continue
            self._start_track(det, image)

    def _match(self, dets: list[DetectionLike]) -> dict[int, _Track]:
        """Greedy IoU matching (highest IoU first, >= match_iou): detection index -> track."""
        pairs = [
            (box_iou(_box(det), track.hand.box), i, j)
            for i, det in enumerate(dets)
            for j, track in enumerate(self._tracks)
        ]
        pairs.sort(key=lambda p: p[0], reverse=True)
        matched: dict[int, _Track] = {}
        used_tracks: set[int] = set()
        for iou, i, j in pairs:
            if iou < self.config.match_iou:
                break
            if i in matched or j in used_tracks:
                continue
            matched[i] = self._tracks[j]
            used_tracks.add(j)
        return matched

    # -- track state -----------------------------------------------------------------------

    def _side(self, image: np.ndarray, det: DetectionLike) -> float:
        """P(left | hand) of a detection (step 3)."""
        if self.side_probability is None:
            return _left_prob(det)
        return float(np.clip(self.side_probability(image, det), 0.0, 1.0))

    def _refresh(self, track: _Track, det: DetectionLike, source: str,
                 image: np.ndarray) -> None:  # fmt: skip
        """Update a track from a detection, smoothing the handedness (step 3)."""
        hand = track.hand
        m = self.config.handedness_momentum
        hand.left_prob = float(m * hand.left_prob + (1.0 - m) * self._side(image, det))
        hand.handedness = _label(hand.left_prob)
        _copy_geometry(hand, det)
        hand.source = source
        hand.missed = 0
        track.updated = True

    def _start_track(self, det: DetectionLike, image: np.ndarray) -> None:
        """Start a new track (next id) from a full-frame detection."""
        left_prob = self._side(image, det)
        hand = TrackedHand(
            track_id=self._next_id, handedness=_label(left_prob), left_prob=left_prob,
            box=np.zeros(4), keypoints=np.zeros((0, 2)), kp_conf=np.zeros(0),
            score=0.0, age=0, source="detect",
        )
        _copy_geometry(hand, det)
        self._next_id += 1
        self._tracks.append(_Track(hand=hand, updated=True))

    def _drop_missed(self) -> None:
        """Drop tracks missed more than ``max_missed`` frames in a row."""
        self._tracks = [t for t in self._tracks if t.hand.missed <= self.config.max_missed]

    def _suppress_converged(self) -> None:
        """Step 4: of two tracks overlapping by ``suppress_iou``, keep the older (lower id)."""
        kept: list[_Track] = []
        for track in sorted(self._tracks, key=lambda t: t.hand.track_id):
            if all(
                box_iou(track.hand.box, k.hand.box) < self.config.suppress_iou for k in kept
            ):
                kept.append(track)
        self._tracks = kept


def _snapshot(track: _Track) -> TrackedHand:
    """A copy of a track's hand, independent of later updates and of the caller's edits."""
    hand = track.hand
    return replace(
        hand, box=hand.box.copy(), keypoints=hand.keypoints.copy(), kp_conf=hand.kp_conf.copy()
    )


def _box(det: DetectionLike) -> np.ndarray:
    return np.asarray(det.box, dtype=np.float64).reshape(4)


def _copy_geometry(hand: TrackedHand, det: DetectionLike) -> None:
    """Copy box, keypoints, keypoint confidences and score of a detection into a hand."""
    hand.box = _box(det).copy()
    hand.keypoints = np.array(det.keypoints, dtype=np.float64).reshape(-1, 2)
    hand.kp_conf = np.array(det.kp_conf, dtype=np.float64).reshape(-1)
    hand.score = float(det.score)
