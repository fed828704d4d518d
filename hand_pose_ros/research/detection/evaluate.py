"""Detector accuracy on labelled frames (seed 000 protocol).

Metrics of :func:`evaluate_detections` (all in frame pixels):

- ``ap50``: COCO-style 101-point interpolated average precision at IoU 0.5, over
  hands of both classes (class-agnostic: handedness is scored separately);
- ``detection_rate``: share of GT hands matched (IoU >= 0.5) by a detection;
- ``handedness_acc``: over matched GT hands with a known class, the share whose
  detection has the same class (right 0 / left 1);
- ``pck_T`` for T in :data:`hand_pose_ros.research.estimation.evaluate.PCK_THRESHOLDS`: 2D PCK,
  keypoint error / max(GT box width, height) <= T, over all labelled keypoints of ALL
  GT hands; keypoints of unmatched GT hands count as wrong (strict: PCK includes the
  misses of the detector); ``pck_matched_0.10`` is the same over matched hands only;
- ``auc``: area under the strict PCK curve on [0, 0.12] (121 thresholds, trapezoid),
  normalised to [0, 1];
- ``false_positives_per_image``: unmatched detections per image.

Matching is greedy by score (VOC / COCO): each detection, best first, takes the
unmatched GT box of highest IoU if that IoU >= 0.5. On sets whose GT boxes are the
tight boxes of the 21 keypoints (``box_source == "keypoints"``, e.g. ``handgraph_dev``)
a detection is matched by the tight box of its predicted keypoints instead of its
predicted box: the detector predicts amodal mesh boxes, larger than keypoint boxes. On
such sets ``detection_rate_box`` also reports the share of hands matched by the predicted
box itself (found, whatever the keypoints); it is NaN on sets with mesh boxes.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from hand_pose_ros.detection.postprocess import Detection, box_iou
from hand_pose_ros.research.estimation.evaluate import PCK_THRESHOLDS

#: AUC thresholds: fractions of the GT box size.
AUC_THRESHOLDS = np.linspace(0.0, 0.12, 121)
IOU_THRESHOLD = 0.5


def detection_boxes(dets: list[Detection], from_keypoints: bool = False) -> np.ndarray:
    """(N, 4) boxes of ``dets``: predicted boxes, or tight boxes of predicted keypoints."""
    if not dets:
        return np.zeros((0, 4))
    if from_keypoints:
        kp = np.stack([np.asarray(d.keypoints, np.float64) for d in dets])
        return np.concatenate([kp.min(1), kp.max(1)], -1)
    return np.stack([np.asarray(d.box, np.float64) for d in dets])


def match_detections(
    dets: list[Detection],
    gt_boxes: np.ndarray,
    iou_thr: float = IOU_THRESHOLD,
    from_keypoints: bool = False,
) -> list[int]:
    """Greedy matching by score: for each detection (input order) its GT index or -1.

    Detections are visited by decreasing score (ties: input order); each takes the
    still unmatched GT box of highest IoU when that IoU >= ``iou_thr``.
    ``from_keypoints``: match with the tight box of the predicted keypoints.
    """
    gt_boxes = np.asarray(gt_boxes, np.float64).reshape(-1, 4)
    out = [-1] * len(dets)
    if not dets or not len(gt_boxes):
        return out
    iou = box_iou(detection_boxes(dets, from_keypoints), gt_boxes)
    taken = np.zeros(len(gt_boxes), bool)
    order = np.argsort([-float(d.score) for d in dets], kind="stable")
    for i in order:
        cand = np.where(taken, -1.0, iou[i])
        j = int(np.argmax(cand))
        if cand[j] >= iou_thr:
            out[i], taken[j] = j, True
    return out


def average_precision(all_scores, all_is_tp, num_gt: int) -> float:
    """COCO-style 101-point interpolated AP (NaN when there is no GT).

    Args:
        all_scores: (D,) detection scores over the whole set.
        all_is_tp: (D,) bool, whether each detection was matched.
        num_gt: number of GT objects.
    """
    if num_gt <= 0:
        return float("nan")
    scores = np.asarray(all_scores, np.float64).reshape(-1)
    tp = np.asarray(all_is_tp, bool).reshape(-1)
    if not len(scores):
        return 0.0
    order = np.argsort(-scores, kind="mergesort")
    tp = tp[order]
    ctp, cfp = np.cumsum(tp), np.cumsum(~tp)
    recall = ctp / num_gt
    precision = ctp / np.maximum(ctp + cfp, 1)
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # precision envelope
    idx = np.searchsorted(recall, np.linspace(0.0, 1.0, 101), side="left")
    sampled = np.where(idx < len(recall), precision[np.minimum(idx, len(recall) - 1)], 0.0)
    return float(sampled.mean())


def pck_curve(rel_errors: np.ndarray, thresholds: Iterable[float]) -> np.ndarray:
    """Share of relative keypoint errors <= each threshold (NaN for no keypoints)."""
    rel = np.asarray(rel_errors, np.float64).reshape(-1)
    if not len(rel):
        return np.full(len(list(thresholds)), np.nan)
    return np.array([float((rel <= t).mean()) for t in thresholds])


def _image_errors(item, dets: list[Detection], match: list[int]) -> np.ndarray:
    """(N, 21) relative keypoint errors of the GT hands (inf: unmatched; NaN: unlabelled)."""
    gt_kp = np.asarray(item.keypoints, np.float64).reshape(-1, 21, 2)
    boxes = np.asarray(item.boxes, np.float64).reshape(-1, 4)
    size = np.maximum((boxes[:, 2:] - boxes[:, :2]).max(-1), 1e-6)
    err = np.full(gt_kp.shape[:2], np.inf)
    for d, g in enumerate(match):
        if g >= 0:
            dist = np.linalg.norm(np.asarray(dets[d].keypoints, np.float64) - gt_kp[g], axis=-1)
            err[g] = dist / size[g]
    return np.where(np.asarray(item.kp_valid, bool).reshape(err.shape), err, np.nan)


def evaluate_detections(items, predictions: list[list[Detection]]) -> dict:
    """Seed 000 detection metrics (see the module docstring) of ``predictions[i]`` on item i.

    Args:
        items: :class:`hand_pose_ros.research.detection.data.DetectionEvalItem` sequence (an eval
            set), each with ``boxes``, ``classes``, ``keypoints``, ``kp_valid``,
            ``box_source``.
        predictions: per item, its detections (frame pixels), e.g. after NMS.
    """
    scores, is_tp, errors, matched_rows = [], [], [], []
    num_gt = num_matched = num_fp = cls_ok = cls_n = 0
    n_images = num_kp_gt = num_box_matched = 0
    for item, dets in zip(items, predictions, strict=True):
        n_images += 1
        gt_cls = np.asarray(item.classes, np.int64).reshape(-1)
        match = match_detections(dets, item.boxes, IOU_THRESHOLD,
                                 from_keypoints=item.box_source == "keypoints")  # fmt: skip
        num_gt += len(gt_cls)
        for d, g in zip(dets, match, strict=True):
            scores.append(float(d.score))
            is_tp.append(g >= 0)
            num_fp += g < 0
            if g >= 0:
                num_matched += 1
                if gt_cls[g] >= 0:
                    cls_n += 1
                    cls_ok += int(d.cls) == int(gt_cls[g])
        if item.box_source == "keypoints":
            by_box = match_detections(dets, item.boxes, IOU_THRESHOLD)
            num_kp_gt += len(gt_cls)
            num_box_matched += sum(g >= 0 for g in by_box)
        err = _image_errors(item, dets, match)
        errors.append(err)
        matched_rows.append(np.isin(np.arange(len(gt_cls)), match))
    err = np.concatenate(errors) if errors else np.zeros((0, 21))
    matched = np.concatenate(matched_rows) if matched_rows else np.zeros(0, bool)
    strict = err[~np.isnan(err)]  # all labelled keypoints (NaN = unlabelled, inf = missed)
    on_matched = err[matched][~np.isnan(err[matched])]
    out: dict = {
        "num_images": n_images,
        "num_gt": num_gt,
        "num_detections": len(scores),
        "detection_rate": num_matched / num_gt if num_gt else float("nan"),
        "detection_rate_box": num_box_matched / num_kp_gt if num_kp_gt else float("nan"),
        "ap50": average_precision(scores, is_tp, num_gt),
        "handedness_acc": cls_ok / cls_n if cls_n else float("nan"),
    }
    for t, v in zip(PCK_THRESHOLDS, pck_curve(strict, PCK_THRESHOLDS), strict=True):
        out[f"pck_{t:.2f}"] = float(v)
    out["pck_matched_0.10"] = float(pck_curve(on_matched, [0.10])[0])
    curve = pck_curve(strict, AUC_THRESHOLDS)
    out["auc"] = float(np.trapezoid(curve, AUC_THRESHOLDS) / AUC_THRESHOLDS[-1])
    out["false_positives_per_image"] = num_fp / n_images if n_images else float("nan")
    return out
