"""Detector metrics on hand-made cases: IoU, greedy matching, AP, strict PCK, AUC."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import realdata_path

from hand_pose_ros.research.detection.data import DetectionEvalItem, open_detection_eval_set
from hand_pose_ros.research.detection.evaluate import (
    Detection,
    average_precision,
    box_iou,
    evaluate_detections,
    match_detections,
)


def _det(box, score=0.9, cls=0, keypoints=None) -> Detection:
    box = np.asarray(box, np.float64)
    if keypoints is None:  # a 3 x 7 grid filling the box
        gx, gy = np.meshgrid(np.linspace(box[0], box[2], 7), np.linspace(box[1], box[3], 3))
        keypoints = np.stack([gx.ravel(), gy.ravel()], -1)
    probs = np.array([1.0 - cls, float(cls)])
    return Detection(box, float(score), int(cls), probs, np.asarray(keypoints, np.float64),
                     np.ones(21))  # fmt: skip


def _item(boxes, classes, box_source="mesh") -> DetectionEvalItem:
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    kp = np.stack([_det(b).keypoints for b in boxes]) if len(boxes) else np.zeros((0, 21, 2))
    return DetectionEvalItem(np.zeros((100, 100, 3), np.uint8), boxes,
                             np.asarray(classes, np.int64), kp,
                             np.ones(kp.shape[:2], bool), box_source)  # fmt: skip


def test_box_iou_known_values():
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 0]])
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]])
    np.testing.assert_allclose(box_iou(a, b), [[1.0, 50 / 150, 0.0], [0.0, 0.0, 0.0]])
    assert box_iou(np.zeros((0, 4)), b).shape == (0, 3)


def test_greedy_matching_by_score():
    gt = np.array([[0, 0, 10, 10], [20, 0, 30, 10]])
    dets = [_det([1, 0, 11, 10], 0.5), _det([0, 0, 10, 10], 0.9), _det([20, 0, 30, 10], 0.7),
            _det([50, 50, 60, 60], 0.95)]  # fmt: skip
    # The best-scored det takes GT 0; the lower-scored duplicate finds it taken.
    assert match_detections(dets, gt) == [-1, 0, 1, -1]
    assert match_detections(dets, np.zeros((0, 4))) == [-1] * 4
    assert match_detections([], gt) == []


def test_average_precision_hand_made():
    assert average_precision([0.9, 0.8], [True, True], 2) == pytest.approx(1.0)
    # TP, FP, TP with 2 GT: recall 0.5 at precision 1, then recall 1 at precision 2/3.
    # 101-point: 51 recall points (0 .. 0.50) at 1, 50 points (0.51 .. 1) at 2/3.
    expected = (51 * 1.0 + 50 * 2.0 / 3.0) / 101
    assert average_precision([0.9, 0.8, 0.7], [True, False, True], 2) == pytest.approx(expected)
    # Order is by score, not by input order; a missed GT caps recall at 0.5.
    assert average_precision([0.7, 0.9, 0.8], [True, True, False], 2) == pytest.approx(expected)
    assert average_precision([0.9], [True], 2) == pytest.approx(51 / 101)
    assert average_precision([], [], 3) == 0.0
    assert np.isnan(average_precision([0.5], [False], 0))


def test_pck_known_error_pattern_and_strict_misses():
    box = [10, 10, 60, 60]  # size 50 px
    item = _item([box], [0])
    kp = item.keypoints[0].copy()
    kp[::2, 0] += 0.05 * 50  # error of exactly 0.05 box on 11 of 21 keypoints
    res = evaluate_detections([item], [[_det(box, keypoints=kp)]])
    assert res["pck_0.04"] == pytest.approx(10 / 21) and res["pck_0.06"] == pytest.approx(1.0)
    assert res["ap50"] == pytest.approx(1.0) and res["detection_rate"] == 1.0
    # Exactly half of the labelled keypoints off: mask one of the 11 shifted ones.
    item.kp_valid[0, 0] = False
    res = evaluate_detections([item], [[_det(box, keypoints=kp)]])
    assert res["pck_0.04"] == pytest.approx(0.5) and res["pck_0.06"] == pytest.approx(1.0)
    # AUC of a step at 0.05: 1 - (0.05 / 0.12) / 2 (half the keypoints step at 0 and 0.05),
    # up to the trapezoid's half grid step (0.001 / 0.12 / 4 = 0.002).
    assert res["auc"] == pytest.approx(1.0 - 0.5 * 0.05 / 0.12, abs=2.5e-3)
    # A second GT hand that nothing detects: strict PCK counts its keypoints as wrong.
    two = _item([box, [70, 70, 90, 90]], [0, 1])
    res = evaluate_detections([two], [[_det(box, keypoints=two.keypoints[0])]])
    assert res["pck_0.10"] == pytest.approx(0.5) and res["pck_matched_0.10"] == 1.0
    assert res["detection_rate"] == 0.5 and res["ap50"] == pytest.approx(51 / 101)


def test_evaluate_detections_counts():
    items = [_item([[0, 0, 40, 40]], [1]), _item([[0, 0, 40, 40], [50, 50, 90, 90]], [0, -1]),
             _item(np.zeros((0, 4)), [])]  # fmt: skip
    preds = [
        [_det([0, 0, 40, 40], 0.9, cls=0)],  # wrong class
        [_det([0, 0, 40, 40], 0.8, cls=0), _det([50, 50, 90, 90], 0.7, cls=0)],  # 2nd: unknown
        [_det([10, 10, 30, 30], 0.6)],  # false positive on an empty frame
    ]
    res = evaluate_detections(items, preds)
    assert res["num_images"] == 3 and res["num_gt"] == 3 and res["num_detections"] == 4
    assert res["detection_rate"] == 1.0 and res["handedness_acc"] == pytest.approx(0.5)
    assert res["false_positives_per_image"] == pytest.approx(1 / 3)
    assert res["ap50"] == pytest.approx(1.0)  # the FP scores below every TP
    assert set(res) >= {"pck_0.04", "pck_0.06", "pck_0.08", "pck_0.10", "pck_0.12", "auc"}
    with pytest.raises(ValueError):
        evaluate_detections(items, preds[:2])


def test_keypoint_box_sets_match_by_predicted_keypoints():
    item = _item([[20, 20, 40, 40]], [0], box_source="keypoints")
    # Amodal predicted box much larger than the GT keypoint box (IoU 0.25), keypoints exact.
    det = _det([10, 10, 50, 50], keypoints=item.keypoints[0])
    res = evaluate_detections([item], [[det]])
    assert res["detection_rate"] == 1.0
    assert res["detection_rate_box"] == 0.0  # the amodal box alone misses (IoU 0.25)
    near = _det([18, 18, 43, 43], keypoints=item.keypoints[0] + 30.0)  # box IoU 0.64
    res = evaluate_detections([item], [[near]])
    assert res["detection_rate"] == 0.0 and res["detection_rate_box"] == 1.0
    item.box_source = "mesh"
    res = evaluate_detections([item], [[det]])
    assert res["detection_rate"] == 0.0 and np.isnan(res["detection_rate_box"])


def test_handgraph_perfect_predictions():
    data = open_detection_eval_set(realdata_path("handgraph_dev"))
    items = [data[i] for i in range(0, 100, 25)]
    preds = []
    for it in items:  # amodal-like boxes 20% larger than the keypoint boxes
        b = it.boxes[0]
        c, half = (b[:2] + b[2:]) / 2, 0.6 * (b[2:] - b[:2])
        preds.append([_det([*(c - half), *(c + half)], cls=int(it.classes[0]),
                           keypoints=it.keypoints[0])])  # fmt: skip
    res = evaluate_detections(items, preds)
    assert res["ap50"] == pytest.approx(1.0) and res["pck_0.04"] == 1.0
    assert res["handedness_acc"] == 1.0 and res["num_gt"] == 4


class _ScriptedVideoDetector:
    """Reads the frame number from the frame's grey level (10 per frame): one hand in
    every frame but the ``gap`` frames, a second far away in the ``extra`` frames."""

    score_threshold = 0.3

    def __init__(self, gap: set[int], extra: set[int]) -> None:
        self.gap, self.extra = gap, extra

    @staticmethod
    def _hand(x0: float) -> Detection:
        box = np.array([x0, 100.0, x0 + 40.0, 140.0])
        grid = np.stack(np.meshgrid(np.linspace(0, 40, 7), np.linspace(0, 40, 3)), -1)
        return Detection(box=box, score=0.9, cls=0, class_probs=np.array([0.9, 0.1]),
                         keypoints=grid.reshape(21, 2) + box[:2], kp_conf=np.ones(21))  # fmt: skip

    def detect(self, image: np.ndarray, roi: np.ndarray | None = None) -> list[Detection]:
        t = round(float(image.mean()) / 10.0)
        hands = [] if t in self.gap else [self._hand(100.0)]
        if t in self.extra:
            hands.append(self._hand(240.0))
        return hands


def test_track_video_counts_ids_gaps_and_extra_hands(tmp_path):
    """``bench detector --data video:...`` statistics on a 12-frame video with a one-frame
    dropout (frame 5) and a second hand from frame 8 on (found at the next full-frame
    detection, every 2 frames here): without coasting the dropout cuts the first hand's
    track (3 ids); ``max_missed=1`` bridges it (2 ids)."""
    import cv2

    from hand_pose_ros.benchmarks.detector import track_video

    path = tmp_path / "grey.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    assert writer.isOpened()
    for t in range(12):
        writer.write(np.full((240, 320, 3), 10 * t + 5, np.uint8))
    writer.release()
    detector = _ScriptedVideoDetector(gap={5}, extra={8, 9, 10, 11})

    cut = track_video(detector, str(path), redetect_every=2, max_missed=0)
    assert cut["frames"] == 12 and cut["detection_rate"] == round(11 / 12, 4)
    assert cut["full_frame_detection_rate"] == round(11 / 12, 4)
    assert cut["track_ids"] == 3  # before the gap, after it, the second hand
    assert cut["longest_track_frac"] == round(6 / 12, 4)  # frames 6-11
    assert cut["id_switches"] == 1  # the second hand appears beside a tracked one
    assert cut["multi_hand_frames"] == 4  # full detections at 0, 5, 6, 8: found at 8

    bridged = track_video(detector, str(path), redetect_every=2, max_missed=1)
    assert bridged["track_ids"] == 2 and bridged["id_switches"] == 1
    assert bridged["longest_track_frac"] == round(11 / 12, 4)
    assert bridged["multi_hand_frames"] == 3  # full detections at 0, 5, 7, 9: found at 9
