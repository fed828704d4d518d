"""Detector metrics on hand-made cases: IoU, greedy matching, AP, strict PCK, AUC."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import realdata_path

from hand_pose_ros.detection.data import DetectionEvalItem, open_detection_eval_set
from hand_pose_ros.detection.evaluate import (
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
