"""Around the detector network: its batch, score filtering, NMS, mapping back to the frame.

The network sees a square ``S x S`` image made from the frame by a scale-and-shift
:class:`~hand_pose_ros.crop.InputWarp` (:mod:`hand_pose_ros.crop`: a letterbox of the
whole frame, or a square region of interest when tracking).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hand_pose_ros.crop import InputWarp


@dataclass
class Detection:
    """One detected hand in frame pixels."""

    box: np.ndarray  # (4,) xyxy
    score: float
    cls: int  # 0 right, 1 left
    class_probs: np.ndarray  # (2,) P(right | hand), P(left | hand): sums to 1
    keypoints: np.ndarray  # (21, 2)
    kp_conf: np.ndarray  # (21,) in [0, 1]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of (N, 4) and (M, 4) xyxy boxes -> (N, M); 0 where a union is empty."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0.0, None).prod(-1)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0.0, None).prod(-1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0.0, None).prod(-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def to_batch(images: list[np.ndarray]) -> np.ndarray:
    """(S, S, 3) uint8 RGB images -> (B, 3, S, S) float32 in [0, 1]."""
    arr = np.stack([np.asarray(im) for im in images]).astype(np.float32) / 255.0
    return np.ascontiguousarray(arr.transpose(0, 3, 1, 2))


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression: indices of the kept boxes, best first.

    Args:
        boxes: (N, 4) xyxy. scores: (N,). iou_threshold: a box overlapping a kept, better
            box by more than this is dropped.
    """
    boxes = np.asarray(boxes, np.float64)
    order = np.argsort(-np.asarray(scores), kind="stable")
    area = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        lt = np.maximum(boxes[i, :2], boxes[rest, :2])
        rb = np.minimum(boxes[i, 2:], boxes[rest, 2:])
        inter = np.clip(rb - lt, 0, None).prod(-1)
        iou = inter / (area[i] + area[rest] - inter + 1e-9)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, np.int64)


def select_detections(
    boxes: np.ndarray, scores: np.ndarray, keypoints: np.ndarray, warp: InputWarp,
    score_threshold: float = 0.3, iou_threshold: float = 0.5, max_detections: int = 4,
) -> list:  # fmt: skip
    """Network outputs of one image -> :class:`Detection` list in frame pixels, best first.

    Args:
        boxes: (A, 4) xyxy input px. scores: (A, C) class probabilities (0 right, 1 left).
        keypoints: (A, K, 3) x, y input px and confidence. warp: the input's warp.
        score_threshold: minimum hand probability (sum over the two classes, at most 1).
        iou_threshold: class-agnostic NMS threshold (one hand, one box, either side).
        max_detections: at most this many.
    """
    # Right and left are exclusive: the hand probability is their sum (a hand whose side the
    # network is unsure of splits its mass between the two classes).
    hand = np.clip(scores.sum(-1), 0.0, 1.0)
    idx = np.flatnonzero(hand >= score_threshold)
    if idx.size == 0:
        return []
    keep = idx[nms(boxes[idx], hand[idx], iou_threshold)][:max_detections]
    out = []
    for i in keep:
        probs = scores[i].astype(np.float64)
        class_probs = probs / max(probs.sum(), 1e-9)
        out.append(
            Detection(
                box=warp.box_to_frame(boxes[i]),
                score=float(hand[i]),
                cls=int(np.argmax(probs)),
                class_probs=class_probs,
                keypoints=warp.to_frame(keypoints[i, :, :2]),
                kp_conf=np.clip(keypoints[i, :, 2].astype(np.float64), 0.0, 1.0),
            )
        )
    return out
