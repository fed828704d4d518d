"""Palm detector outputs -> palms: anchor decoding, score threshold, weighted NMS.

A palm is an axis-aligned box and 7 palm keypoints, all in pixels of the detector's
input. Keypoint 0 is the wrist centre and 2 the middle finger's base: together they
give the hand's direction, which orients the landmark network's crop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hand_pose_ros.detection.postprocess import box_iou

#: Palm keypoint indices that give the hand's direction (wrist -> middle finger base).
PALM_WRIST, PALM_MIDDLE_MCP = 0, 2
NUM_PALM_KEYPOINTS = 7


@dataclass
class Palm:
    """One detected palm (pixels of the image it was decoded for)."""

    box: np.ndarray
    """(4,) xyxy."""
    keypoints: np.ndarray
    """(7, 2) palm keypoints."""
    score: float
    """Detection probability in [0, 1]."""


def decode_palms(regressors: np.ndarray, logits: np.ndarray, anchors: np.ndarray,
                 input_size: int, min_score: float = 0.5) -> list[Palm]:  # fmt: skip
    """Decode one image's raw outputs (before NMS) above ``min_score``.

    Args:
        regressors: (N, 18) per anchor: box centre offset (x, y), size (w, h), then 7
            keypoint offsets (x, y); input pixels relative to the anchor centre.
        logits: (N,) raw score logits.
        anchors: (N, 2) anchor centres normalised to [0, 1] (:func:`ssd_anchor_centres`).
        input_size: the detector's square input side, pixels.
        min_score: keep palms with probability >= this.

    Returns:
        Palms in input pixels, unsorted.
    """
    regressors = np.asarray(regressors, np.float64)
    logits = np.asarray(logits, np.float64).reshape(-1)
    n = len(anchors)
    if regressors.shape != (n, 4 + 2 * NUM_PALM_KEYPOINTS) or len(logits) != n:
        raise ValueError(f"palm outputs: expected ({len(anchors)}, 18) and ({len(anchors)},), "
                         f"got {regressors.shape} and {logits.shape}")  # fmt: skip
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -100.0, 100.0)))
    keep = np.flatnonzero(scores >= min_score)
    palms = []
    for i in keep:
        r = regressors[i]
        centre = anchors[i] * input_size
        if not np.isfinite(r).all():
            continue
        c = centre + r[:2]
        half = 0.5 * np.abs(r[2:4])
        kps = centre + r[4:].reshape(NUM_PALM_KEYPOINTS, 2)
        palms.append(Palm(np.concatenate([c - half, c + half]), kps, float(scores[i])))
    return palms


def weighted_nms(palms: list[Palm], iou_threshold: float = 0.3) -> list[Palm]:
    """Weighted non-maximum suppression, best first.

    The best remaining palm and every palm overlapping it by more than ``iou_threshold``
    form a cluster; the cluster becomes one palm whose box and keypoints are the
    score-weighted mean of its members and whose score is the best member's.
    """
    remaining = sorted(palms, key=lambda p: -p.score)
    out = []
    while remaining:
        best = remaining[0]
        overlap = box_iou(best.box, np.stack([p.box for p in remaining]))[0]
        cluster = [p for p, iou in zip(remaining, overlap, strict=True) if iou > iou_threshold]
        if best not in cluster:  # an empty box overlaps nothing, itself included
            cluster.append(best)
        w = np.array([p.score for p in cluster])
        w = w / w.sum()
        box = np.einsum("n,nk->k", w, np.stack([p.box for p in cluster]))
        kps = np.einsum("n,nkd->kd", w, np.stack([p.keypoints for p in cluster]))
        out.append(Palm(box, kps, best.score))
        ids = {id(p) for p in cluster}
        remaining = [p for p in remaining if id(p) not in ids]
    return out
