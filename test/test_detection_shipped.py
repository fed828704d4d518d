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
    from hand_pose_ros.detection.data import open_detection_eval_set

    return list(open_detection_eval_set(frames_dir))


def test_shipped_detector_finds_both_hands_and_their_sides(detector, open_hand_frames_dir):
    from hand_pose_ros.detection.evaluate import evaluate_detections

    items = _items(open_hand_frames_dir)
    preds = [detector.detect(it.image) for it in items]
    metrics = evaluate_detections(items, preds)
    assert metrics["num_gt"] == 12
    assert metrics["detection_rate"] >= DETECTION_RATE_MIN, metrics
    assert metrics["handedness_acc"] >= HANDEDNESS_MIN, metrics
    assert metrics["pck_matched_0.10"] >= PCK_MATCHED_MIN, metrics
    # Some frame holds a right and a left hand that are both found with the right sides.
    from hand_pose_ros.detection.evaluate import match_detections

    both = 0
    for it, dets in zip(items, preds, strict=True):
        if set(it.classes.tolist()) != {0, 1}:
            continue
        match = match_detections(dets, it.boxes)
        found = {int(it.classes[g]) for d, g in zip(dets, match, strict=True)
                 if g >= 0 and d.cls == it.classes[g]}  # fmt: skip
        both += found == {0, 1}
    assert both >= 1


def test_tracker_keeps_ids_on_a_moving_synthetic_sequence(detector, open_hand_frames_dir):
    """A synthetic sequence: one frame panned 3 px per frame; the tracker keeps its ids and
    runs the full-frame detector only every ``redetect_every`` frames."""
    import cv2

    from hand_pose_ros.detection.tracker import HandTracker, TrackerConfig

    items = _items(open_hand_frames_dir)
    base = items[BEST_SEQUENCE_FRAME].image
    tracker = HandTracker(detector.detect, TrackerConfig(redetect_every=5))
    ids_per_frame = []
    for t in range(12):
        m = np.float32([[1, 0, 3 * t - 18], [0, 1, 0]])
        frame = cv2.warpAffine(base, m, (base.shape[1], base.shape[0]),
                               borderMode=cv2.BORDER_REFLECT)  # fmt: skip
        ids_per_frame.append(sorted(h.track_id for h in tracker.update(frame)))
    assert ids_per_frame[0], "no hand found in the first frame"
    assert all(ids == ids_per_frame[0] for ids in ids_per_frame), ids_per_frame
    assert tracker.full_detections <= 3 + 2  # frames 0, 5, 10 (+ a lost-track retry or two)
