"""The shipped detector weights on fresh synthetic frames (test seeds, never trained on).

Accuracy targets live in ``hand-teleop bench detector``; these checks only pin that the
committed weights load, find hands, tell left from right, and track a moving hand.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from _estimation_helpers import one_torch_thread  # noqa: F401

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def detector():
    from hand_pose_ros.detection.runtime import HandDetector, default_weights

    path = default_weights()
    assert path.is_file(), f"shipped detector weights missing: {path}"
    manifest = json.loads(path.with_suffix(".json").read_text())
    assert manifest["training_data"] and manifest["training"]["steps"] > 0
    assert all(d["seed"] < 1_000_000 for d in manifest["training_data"])  # train split only
    return HandDetector(weights="default", backend="onnx", threads=1)


def _items(frames_dir):
    from hand_pose_ros.research.detection.data import open_detection_eval_set

    return list(open_detection_eval_set(frames_dir))


def test_shipped_detector_finds_hands(detector, open_hand_frames_dir):
    """Measured 2026-12-01 on these 12 hands (run 3 weights, 12,301 CPU steps in all):
    detection rate 0.42, PCK@0.10 of matched hands 0.13, 0.5 false positives per image,
    handedness 0.6 of 5 (chance: not learned, see docs/detector.md "Handedness"; run 2:
    0.42, 0.18, 0.5, 0.4). The floors
    below pin those levels with slack; the tracker's two-hand handedness logic is tested
    with scripted detections (test_detection_tracker.py)."""
    from hand_pose_ros.research.detection.evaluate import evaluate_detections

    items = _items(open_hand_frames_dir)
    preds = [detector.detect(it.image) for it in items]
    metrics = evaluate_detections(items, preds)
    assert metrics["num_gt"] == 12
    assert metrics["detection_rate"] >= 0.25, metrics
    assert metrics["pck_matched_0.10"] >= 0.10, metrics
    assert metrics["false_positives_per_image"] <= 1.0, metrics


def test_tracker_keeps_ids_on_a_moving_synthetic_sequence(detector, open_hand_frames_dir):
    """A synthetic sequence: one frame panned 3 px per frame; the tracker keeps its id and
    the fast path (ROI from the last keypoints) spares most full-frame detections."""
    import cv2

    from hand_pose_ros.detection.tracker import HandTracker, TrackerConfig

    items = _items(open_hand_frames_dir)
    base = items[5].image  # a frame whose hand the shipped detector finds
    thr = detector.score_threshold
    tracker = HandTracker(detector.detect, TrackerConfig(redetect_every=5, min_detection_score=thr,
                                                         min_tracking_score=thr))  # fmt: skip
    ids_per_frame = []
    for t in range(12):
        m = np.float32([[1, 0, 3 * t - 18], [0, 1, 0]])
        frame = cv2.warpAffine(base, m, (base.shape[1], base.shape[0]),
                               borderMode=cv2.BORDER_REFLECT)  # fmt: skip
        ids_per_frame.append(sorted(h.track_id for h in tracker.update(frame)))
    assert ids_per_frame == [[0]] * 12, ids_per_frame
    assert tracker.full_detections <= 6, tracker.full_detections  # measured 4 (frames 0, 5, 10 + 1)


def _separated_two_side_frames(items) -> list:
    """Frames whose two labelled hands are of different sides, do not overlap and lie in
    the frame (within 5 pixels)."""
    from hand_pose_ros.detection.postprocess import box_iou

    chosen = []
    for it in items:
        if len(it.boxes) != 2 or it.classes[0] == it.classes[1]:
            continue
        h, w = it.image.shape[:2]
        inside = all(b[0] >= -5 and b[1] >= -5 and b[2] <= w + 5 and b[3] <= h + 5
                     for b in it.boxes)  # fmt: skip
        if inside and box_iou(it.boxes[:1], it.boxes[1:])[0, 0] == 0.0:
            chosen.append(it)
    return chosen


def test_shipped_detector_finds_a_left_and_a_right_hand(detector, two_hand_frames_dir):
    """Frames with a left and a right hand apart: the detector finds both, and the tracker
    starts two tracks. Measured 2026-12-01 on the 12 such frames of these 48 (run 3): both
    hands found in 7 frames, 19 of the 24 hands (run 2: 4 frames, 14 hands). The detector's
    own side class is at chance (docs/detector.md "Handedness"); the shipped handedness
    probe names the side of 14 of the 19 found hands, from one frame each."""
    from hand_pose_ros.detection.handedness import HandednessClassifier, crop_side_probability
    from hand_pose_ros.detection.tracker import HandTracker, TrackerConfig
    from hand_pose_ros.pipeline.two_stage import CROP_SCALE
    from hand_pose_ros.research.detection.evaluate import match_detections

    frames = _separated_two_side_frames(_items(two_hand_frames_dir))
    assert len(frames) >= 8, len(frames)  # 12 with these seeds; the set must stay two-sided
    side = crop_side_probability(HandednessClassifier("default", threads=1), CROP_SCALE)
    found, side_right = [], []
    for it in frames:
        dets = detector.detect(it.image)
        matches = match_detections(dets, it.boxes)
        found.append(sorted(j for j in matches if j >= 0))
        side_right += [(side(it.image, d) > 0.5) == (int(it.classes[j]) == 1)
                       for d, j in zip(dets, matches, strict=True) if j >= 0]  # fmt: skip
    both = [it for it, f in zip(frames, found, strict=True) if f == [0, 1]]
    assert len(both) >= 4, found
    assert sum(map(len, found)) >= 0.6 * 2 * len(frames), found
    assert sum(side_right) >= 0.6 * len(side_right), side_right

    # The shipped tracker settings: a new track needs a 0.5 score (TrackerConfig's default),
    # so a hand found at 0.3-0.5 is not started (measured: two tracks in 4 of the 7 frames).
    config = TrackerConfig(min_tracking_score=detector.score_threshold)
    two_ids = 0
    for it in both:
        hands = HandTracker(detector.detect, config).update(it.image)
        assert [h.track_id for h in hands] in ([0], [0, 1]), hands
        two_ids += len(hands) == 2
    assert two_ids >= 2, two_ids


def test_table5_ablation_records_are_equal_budget_and_cover_each_option():
    """docs/detector_ablation (docs/detector.md "Seed 000 Table 5 at equal budget"): every
    variant trained the same way; baseline, each option alone, all three."""
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "docs" / "detector_ablation"
    records = {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json")}
    options = {name: (m["config"]["focused_attention"], m["config"]["kpa"], m["config"]["rle"])
               for name, m in records.items()}  # fmt: skip
    assert set(options.values()) == {(False, False, False), (True, False, False),
                                     (False, True, False), (False, False, True),
                                     (True, True, True)}  # fmt: skip
    budgets = set()
    for m in records.values():
        t = m["training"]
        budgets.add((t["steps"], t["batch_size"], t["lr"], tuple(t["lr_milestones"]),
                     t["init_weights"], json.dumps(m["training_data"], sort_keys=True)))
    assert len(budgets) == 1, budgets
    for name, m in records.items():
        assert m["metrics"]["num_gt"] == 363 and 0.0 < m["metrics"]["ap50"] < 1.0, name
        assert (folder / f"{name}.log.jsonl").is_file()
