"""HandTracker on a scripted synthetic scene with a fake detector (pure numpy, fast)."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import pytest

from hand_pose_ros.detection.tracker import (
    HandTracker,
    TrackerConfig,
    box_iou,
    roi_from_box,
    roi_from_keypoints,
)

FRAME_W, FRAME_H = 640, 480
_TEMPLATE = np.random.default_rng(0).uniform(-30.0, 30.0, size=(21, 2))
"""Keypoint offsets from the hand centre, pixels (a ~60 px hand)."""


@dataclass
class FakeHand:
    """A hand moving on a straight path, visible on frames [start, stop)."""

    start_xy: tuple[float, float]
    velocity: tuple[float, float]
    left: bool
    start: int = 0
    stop: int = 10**9
    score: float | dict[int, float] = 0.95
    """Hand probability, or per-frame overrides (default 0.95)."""
    flip_frames: set[int] = field(default_factory=set)
    """Frames whose class probabilities are flipped."""
    stop_moving: int = 10**9
    """Frame after which the hand stands still."""

    def keypoints(self, t: int) -> np.ndarray:
        steps = min(t, self.stop_moving)
        centre = np.asarray(self.start_xy) + steps * np.asarray(self.velocity)
        return centre + _TEMPLATE

    def frame_score(self, t: int) -> float:
        if isinstance(self.score, dict):
            return self.score.get(t, 0.95)
        return self.score


class FakeScene:
    """Synthetic scene + fake ``detect(image, roi=None)`` counting its calls."""

    def __init__(self, hands: list[FakeHand], duplicates: bool = False, seed: int = 1):
        self.hands = hands
        self.duplicates = duplicates
        self.rng = np.random.default_rng(seed)
        self.t = 0
        self.full_calls = 0
        self.roi_calls = 0
        self.full_frames: list[int] = []
        self.image = np.zeros((FRAME_H, FRAME_W, 3), np.uint8)

    def _detection(self, hand: FakeHand, shift: float = 0.0) -> SimpleNamespace | None:
        kps = hand.keypoints(self.t) + shift
        box = np.concatenate([kps.min(0) - 5.0, kps.max(0) + 5.0])
        visible = box[2] > 0 and box[0] < FRAME_W and box[3] > 0 and box[1] < FRAME_H
        if not (hand.start <= self.t < hand.stop and visible):
            return None
        left = 0.9 + self.rng.uniform(-0.05, 0.05) if hand.left else 0.1 + self.rng.uniform(
            -0.05, 0.05
        )
        if self.t in hand.flip_frames:
            left = 1.0 - left
        score = hand.frame_score(self.t)  # class probs: P(hand) * (P(right|hand), P(left|hand))
        return SimpleNamespace(
            box=box, score=score, cls=int(left >= 0.5),
            class_probs=score * np.array([1.0 - left, left]), keypoints=kps,
            kp_conf=np.full(21, 0.9),
        )

    def detect(self, image: np.ndarray, roi: np.ndarray | None = None) -> list[SimpleNamespace]:
        assert image is self.image
        if roi is None:
            self.full_calls += 1
            self.full_frames.append(self.t)
        else:
            assert roi.shape == (4,)
            assert roi[2] - roi[0] == pytest.approx(roi[3] - roi[1])  # square
            self.roi_calls += 1
        out = []
        for hand in self.hands:
            for shift in (0.0, 2.0) if self.duplicates else (0.0,):
                det = self._detection(hand, shift)
                if det is None:
                    continue
                if roi is None or _overlap(det.box, roi):
                    out.append(det)
        return out

    def run(self, tracker: HandTracker, frames: int) -> list[list]:
        """Run the tracker on ``frames`` frames; returns each frame's output."""
        outputs = []
        for t in range(frames):
            self.t = t
            outputs.append(tracker.update(self.image))
        return outputs


def _overlap(a: np.ndarray, b: np.ndarray) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def _right(**kw) -> FakeHand:
    return FakeHand(start_xy=(150.0, 200.0), velocity=(3.0, 1.0), left=False, **kw)


def _left(**kw) -> FakeHand:
    return FakeHand(start_xy=(500.0, 300.0), velocity=(-1.0, -1.5), left=True, **kw)


def test_single_hand_keeps_id_across_moving_sequence():
    scene = FakeScene([_right()])
    tracker = HandTracker(scene.detect, TrackerConfig(redetect_every=10))
    outputs = scene.run(tracker, 50)
    for t, out in enumerate(outputs):
        assert [h.track_id for h in out] == [0]
        hand = out[0]
        assert hand.age == t
        assert hand.handedness == "right"
        np.testing.assert_allclose(hand.keypoints, scene.hands[0].keypoints(t))
        assert hand.source == ("detect" if t == 0 else "track")
    assert tracker.frame_index == 50


@pytest.mark.parametrize("hands", [[_right()], [_right(), _left()]])
def test_full_detector_runs_only_every_redetect_every_frames(hands):
    scene = FakeScene(hands)
    tracker = HandTracker(scene.detect, TrackerConfig(max_hands=2, redetect_every=10))
    scene.run(tracker, 50)
    assert scene.full_frames == [0, 10, 20, 30, 40]
    assert tracker.full_detections == scene.full_calls == 5
    assert tracker.roi_calls == scene.roi_calls == len(hands) * 49


def test_two_hands_of_different_handedness():
    scene = FakeScene([_right(), _left()])
    tracker = HandTracker(scene.detect)
    outputs = scene.run(tracker, 30)
    for t, out in enumerate(outputs):
        assert [h.track_id for h in out] == [0, 1]
        by_label = {h.handedness: h for h in out}
        assert set(by_label) == {"right", "left"}
        np.testing.assert_allclose(by_label["right"].keypoints, scene.hands[0].keypoints(t))
        np.testing.assert_allclose(by_label["left"].keypoints, scene.hands[1].keypoints(t))
        assert by_label["left"].left_prob > 0.8 > 0.2 > by_label["right"].left_prob


def test_hand_leaving_frame_is_dropped_and_newcomer_gets_new_id():
    # Leaves to the right around frame 60; another hand appears at frame 80.
    leaver = FakeHand(start_xy=(300.0, 240.0), velocity=(6.0, 0.0), left=False)
    newcomer = _left(start=80)
    scene = FakeScene([leaver, newcomer])
    tracker = HandTracker(scene.detect, TrackerConfig(redetect_every=10))
    outputs = scene.run(tracker, 90)
    gone = next(t for t, out in enumerate(outputs) if not out)
    assert 50 < gone < 80
    assert all(not out for out in outputs[gone:80])
    assert all([h.track_id for h in out] == [1] for out in outputs[80:])
    assert outputs[80][0].handedness == "left"
    # With nothing tracked, the full detector runs on every frame.
    assert set(range(gone, 81)) <= set(scene.full_frames)


def test_handedness_is_left_over_hand_probability():
    """A hand scored 0.5 as P(right) 0.2 + P(left) 0.3 is left (0.6), not right (0.3)."""
    det = SimpleNamespace(box=np.array([10.0, 10.0, 60.0, 60.0]), score=0.5, cls=1,
                          class_probs=np.array([0.2, 0.3]), keypoints=np.full((21, 2), 30.0),
                          kp_conf=np.full(21, 0.9))  # fmt: skip
    tracker = HandTracker(lambda image, roi=None: [det], TrackerConfig(min_detection_score=0.4))
    (hand,) = tracker.update(np.zeros((100, 100, 3), np.uint8))
    assert hand.left_prob == pytest.approx(0.6)
    assert hand.handedness == "left"


def test_brief_handedness_flip_does_not_flip_label():
    scene = FakeScene([_right(flip_frames={20})])
    tracker = HandTracker(scene.detect, TrackerConfig(handedness_momentum=0.8))
    outputs = scene.run(tracker, 30)
    assert all(out[0].handedness == "right" for out in outputs)
    assert outputs[20][0].left_prob > outputs[19][0].left_prob


def test_sustained_handedness_change_flips_label():
    scene = FakeScene([_right(flip_frames=set(range(10, 30)))])
    outputs = scene.run(HandTracker(scene.detect), 30)
    assert outputs[10][0].handedness == "right"
    assert outputs[29][0].handedness == "left"
    assert {h.track_id for out in outputs for h in out} == {0}


def test_duplicate_detections_never_create_two_tracks():
    scene = FakeScene([_right()], duplicates=True)
    tracker = HandTracker(scene.detect, TrackerConfig(max_hands=2, redetect_every=3))
    outputs = scene.run(tracker, 30)
    assert all([h.track_id for h in out] == [0] for out in outputs)


def test_low_tracking_score_redetects_in_same_frame():
    # Score drops on frame 5 only: the track is lost, the full detector runs on frame 5.
    scene = FakeScene([_right(score={5: 0.2})])
    tracker = HandTracker(scene.detect, TrackerConfig(redetect_every=10))
    outputs = scene.run(tracker, 8)
    assert scene.full_frames == [0, 5, 6]
    assert outputs[5] == []
    assert [h.track_id for h in outputs[6]] == [1]
    assert outputs[6][0].source == "detect"


def test_max_missed_keeps_id_through_short_dropout():
    scene = FakeScene([_right(score={5: 0.1, 6: 0.1})])
    tracker = HandTracker(scene.detect, TrackerConfig(max_missed=2))
    outputs = scene.run(tracker, 10)
    assert outputs[5] == outputs[6] == []
    assert [h.missed for h in tracker.tracks] == [0]
    assert all([h.track_id for h in out] == [0] for t, out in enumerate(outputs) if t not in (5, 6))


def test_converged_tracks_keep_the_older():
    # Hand 1 walks onto hand 0 and stays there.
    still = FakeHand(start_xy=(300.0, 240.0), velocity=(0.0, 0.0), left=False)
    walker = FakeHand(start_xy=(420.0, 240.0), velocity=(-6.0, 0.0), left=True, stop_moving=20)
    scene = FakeScene([still, walker])
    tracker = HandTracker(scene.detect)
    outputs = scene.run(tracker, 25)
    assert [h.track_id for h in outputs[0]] == [0, 1]
    assert [h.track_id for h in outputs[-1]] == [0]


def test_reset_restarts_ids_and_counters():
    scene = FakeScene([_right()])
    tracker = HandTracker(scene.detect)
    scene.run(tracker, 3)
    tracker.reset()
    assert (tracker.frame_index, tracker.full_detections, tracker.roi_calls) == (0, 0, 0)
    assert [h.track_id for h in tracker.update(scene.image)] == [0]


def test_roi_is_square_and_centred_on_confident_keypoints():
    kps = np.array([[10.0, 20.0], [30.0, 60.0], [20.0, 40.0], [25.0, 30.0], [500.0, 500.0]])
    conf = np.array([0.9, 0.9, 0.9, 0.9, 0.1])
    roi = roi_from_keypoints(kps, conf, np.array([0.0, 0.0, 1.0, 1.0]), 1.5)
    np.testing.assert_allclose(roi, [-10.0, 10.0, 50.0, 70.0])
    # Too few confident keypoints: all are used.
    roi = roi_from_keypoints(kps, np.zeros(5), np.zeros(4), 1.0)
    assert roi[2] - roi[0] == pytest.approx(490.0) == roi[3] - roi[1]
    assert box_iou(np.array([0, 0, 2, 2.0]), np.array([1, 0, 3, 2.0])) == pytest.approx(1 / 3)


def test_roi_from_the_last_box():
    """``roi_source="box"``: the ROI is roi_scale x the last box, centred on it."""
    np.testing.assert_allclose(roi_from_box(np.array([10.0, 20.0, 50.0, 40.0]), 2.0),
                               [-10.0, -10.0, 70.0, 70.0])  # fmt: skip
    scene = FakeScene([FakeHand((200.0, 200.0), (4.0, 0.0), left=False)])
    rois = []

    def detect(image, roi=None):
        if roi is not None:
            rois.append(roi.copy())
        return scene.detect(image, roi)

    tracker = HandTracker(detect, TrackerConfig(roi_source="box", roi_scale=2.5))
    outputs = scene.run(tracker, 4)
    assert [[h.track_id for h in hands] for hands in outputs] == [[0]] * 4
    assert len(rois) == 3 and scene.full_calls == 1  # frames 1-3 on the fast path
    for t, roi in enumerate(rois):  # each from the box found in the frame before
        np.testing.assert_allclose(roi, roi_from_box(outputs[t][0].box, 2.5))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"roi_source": "mask"},
        {"max_hands": 0},
        {"redetect_every": 0},
        {"min_detection_score": 1.5},
        {"min_tracking_score": -0.1},
        {"roi_scale": 0.5},
        {"roi_scale": float("inf")},
        {"match_iou": 0.0},
        {"match_iou": 1.2},
        {"handedness_momentum": 1.0},
        {"handedness_momentum": -0.1},
        {"max_missed": -1},
        {"suppress_iou": 0.0},
    ],
)
def test_bad_config_raises(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        TrackerConfig(**kwargs)


def test_lost_tracks_free_their_slots_for_new_hands():
    """Both tracks are lost at once and the detector finds hands elsewhere: with
    ``max_hands`` tracks still on the books, the new hands must still be tracked."""
    kp_a = np.stack([np.linspace(10, 50, 21), np.linspace(10, 50, 21)], 1)

    def det_at(offset: float, cls: int) -> SimpleNamespace:
        return SimpleNamespace(box=np.array([5.0, 5.0, 55.0, 55.0]) + offset, score=0.9,
                               cls=cls, class_probs=np.array([1.0 - cls, float(cls)]),
                               keypoints=kp_a + offset, kp_conf=np.ones(21))  # fmt: skip

    frame = {"t": 0}

    def detect(image, roi=None):
        if frame["t"] == 0:
            return [det_at(0.0, 0), det_at(100.0, 1)] if roi is None else []
        return [] if roi is not None else [det_at(200.0, 0), det_at(300.0, 1)]

    tracker = HandTracker(detect, TrackerConfig(max_hands=2))
    first = tracker.update(np.zeros((10, 10, 3), np.uint8))
    frame["t"] = 1
    second = tracker.update(np.zeros((10, 10, 3), np.uint8))
    assert [h.track_id for h in first] == [0, 1]
    assert [h.track_id for h in second] == [2, 3]
