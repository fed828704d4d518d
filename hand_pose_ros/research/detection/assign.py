"""Task-aligned label assignment (YOLOv8 / TOOD) with optional keypoint alignment (KPA).

For every ground-truth hand, the candidate anchors are those whose centre lies inside its
box and within ``center_radius`` strides of the box centre (centre sampling as in YOLOX: on
short CPU runs, plain TAL's hundreds of look-alike candidates inside a big hand leave the
class scores stuck near the candidates' mean target, measured 0.05 after 400 steps); each
candidate gets the alignment metric ``t = s^alpha * IoU^beta`` (s: the predicted
probability of the hand's class, IoU of the predicted box) and the ``topk`` best become
positives. With KPA (seed 000's keypoint alignment strategy, as we read it: the paper's
text is OCR-garbled) the metric also rewards keypoint quality, ``t *= OKS^gamma``, so the
anchors chosen to learn a hand are those whose keypoints already fit it, not only its box.
An anchor claimed by several hands goes to the one with the highest IoU. A positive's
class target is the IoU of its predicted box (not TOOD's normalised ``t``; see below).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

#: Per-keypoint OKS constant k = 2 * sigma (hand keypoints, COCO-WholeBody's hand sigmas
#: average about 0.025); errors are relative to sqrt(box area).
OKS_K: float = 0.05


@dataclass
class Assignment:
    """Targets per anchor (B, A, ...)."""

    fg: torch.Tensor  # (B, A) bool: positive anchors
    gt_index: torch.Tensor  # (B, A) int64 index into the image's hands (0 where not fg)
    scores: torch.Tensor  # (B, A, C) soft class targets (0 where not fg)
    classes: torch.Tensor  # (B, A) int64 class of the assigned hand (-1: unknown or not fg)
    boxes: torch.Tensor  # (B, A, 4) xyxy target box
    keypoints: torch.Tensor  # (B, A, K, 2)
    kp_valid: torch.Tensor  # (B, A, K) bool
    kp_visible: torch.Tensor  # (B, A, K) bool


def box_inter_union(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Elementwise intersection and union areas of xyxy boxes (broadcast, (..., 4))."""
    lt = torch.maximum(a[..., :2], b[..., :2])
    rb = torch.minimum(a[..., 2:], b[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(-1)
    area_b = (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1)
    return inter, area_a + area_b - inter


def box_iou_pairs(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Elementwise IoU of xyxy boxes ``a`` and ``b`` (broadcast, (..., 4))."""
    inter, union = box_inter_union(a, b)
    return inter / (union + eps)


def keypoint_oks(
    pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, area: torch.Tensor
) -> torch.Tensor:
    """Object keypoint similarity (broadcast): pred/target (..., K, 2) px, valid (..., K),
    area (...) px^2. Mean of exp(-d^2 / (2 area k^2)) over valid keypoints (0 if none)."""
    d2 = ((pred - target) ** 2).sum(-1)
    e = torch.exp(-d2 / (2 * area[..., None].clamp(min=1.0) * OKS_K**2))
    v = valid.to(e.dtype)
    return (e * v).sum(-1) / v.sum(-1).clamp(min=1.0)


@torch.no_grad()
def assign(
    pred_scores: torch.Tensor,
    pred_boxes: torch.Tensor,
    pred_kpts: torch.Tensor,
    anchors: torch.Tensor,
    gt_classes: torch.Tensor,
    gt_boxes: torch.Tensor,
    gt_kpts: torch.Tensor,
    gt_kp_valid: torch.Tensor,
    gt_kp_visible: torch.Tensor,
    gt_mask: torch.Tensor,
    topk: int = 10,
    alpha: float = 0.5,
    beta: float = 6.0,
    gamma: float = 1.0,
    kpa: bool = True,
    anchor_strides: torch.Tensor | None = None,
    center_radius: float = 1.5,
) -> Assignment:
    """Assign anchors to ground-truth hands.

    Args:
        pred_scores: (B, A, C) probabilities (of the hand's class; a class-agnostic hand
            probability repeated over C works too). pred_boxes: (B, A, 4) xyxy px.
        pred_kpts: (B, A, K, 2) px. anchors: (A, 2) anchor centres, px.
        gt_classes: (B, M) int64. gt_boxes: (B, M, 4). gt_kpts: (B, M, K, 2).
        gt_kp_valid, gt_kp_visible: (B, M, K) bool. gt_mask: (B, M) bool (real hands).
        topk: positives per hand. alpha, beta, gamma: exponents of score, IoU, OKS.
        kpa: include the OKS term (keypoint alignment).
        anchor_strides: (A,) stride of each anchor; with it, candidates must also lie within
            ``center_radius`` strides of the box centre (per axis).
    """
    B, A, C = pred_scores.shape
    M, K = gt_kpts.shape[1], gt_kpts.shape[2]
    if M == 0:
        return _empty_assignment(B, A, C, K, pred_scores.device)
    candidate = _candidates(anchors, gt_boxes, gt_mask, anchor_strides, center_radius)
    gb = gt_boxes[..., None, :]  # (B, M, 1, 4)
    iou = box_iou_pairs(pred_boxes[:, None], gb).clamp(min=0)  # (B, M, A)
    cls_idx = gt_classes.clamp(min=0)[..., None].expand(B, M, A)
    score = pred_scores.permute(0, 2, 1).gather(1, cls_idx)  # (B, M, A)
    metric = score.pow(alpha) * iou.pow(beta)
    if kpa:
        area = (gt_boxes[..., 2:] - gt_boxes[..., :2]).clamp(min=1).prod(-1)  # (B, M)
        oks = keypoint_oks(pred_kpts[:, None], gt_kpts[:, :, None], gt_kp_valid[:, :, None],
                           area[..., None])  # fmt: skip
        metric = metric * oks.pow(gamma)
    metric = metric * candidate
    chosen = _top_k_positives(metric, candidate, anchors, gt_boxes, gt_mask, topk)
    return _targets(_one_hand_per_anchor(chosen, iou), iou, gt_classes, gt_boxes, gt_kpts,
                    gt_kp_valid, gt_kp_visible, C)  # fmt: skip


def _empty_assignment(B: int, A: int, C: int, K: int, dev: torch.device) -> Assignment:
    """No hand in the batch: every anchor is background."""
    z = torch.zeros
    return Assignment(z(B, A, dtype=torch.bool, device=dev),
                      z(B, A, dtype=torch.long, device=dev), z(B, A, C, device=dev),
                      torch.full((B, A), -1, dtype=torch.long, device=dev),
                      z(B, A, 4, device=dev), z(B, A, K, 2, device=dev),
                      z(B, A, K, dtype=torch.bool, device=dev),
                      z(B, A, K, dtype=torch.bool, device=dev))  # fmt: skip


def _candidates(
    anchors: torch.Tensor, gt_boxes: torch.Tensor, gt_mask: torch.Tensor,
    anchor_strides: torch.Tensor | None, center_radius: float,
) -> torch.Tensor:  # fmt: skip
    """(B, M, A) bool: anchor centres inside a real hand's box (and, with ``anchor_strides``,
    within ``center_radius`` strides of its centre per axis)."""
    A = anchors.shape[0]
    ax, ay = anchors[:, 0].view(1, 1, A), anchors[:, 1].view(1, 1, A)
    gb = gt_boxes[..., None, :]  # (B, M, 1, 4)
    inside = (ax > gb[..., 0]) & (ax < gb[..., 2]) & (ay > gb[..., 1]) & (ay < gb[..., 3])
    if anchor_strides is not None:
        r = center_radius * anchor_strides.view(1, 1, A)
        cx = (gb[..., 0] + gb[..., 2]) / 2
        cy = (gb[..., 1] + gb[..., 3]) / 2
        inside &= ((ax - cx).abs() < r) & ((ay - cy).abs() < r)
    return inside & gt_mask[..., None]


def _top_k_positives(
    metric: torch.Tensor, candidate: torch.Tensor, anchors: torch.Tensor,
    gt_boxes: torch.Tensor, gt_mask: torch.Tensor, topk: int,
) -> torch.Tensor:  # fmt: skip
    """(B, M, A) bool: each hand's top-k candidates by ``metric`` (ties with zero metric
    are dropped); a hand whose candidates all score zero (untrained net) still gets its
    nearest inside anchors, by centre distance."""
    A = anchors.shape[0]
    k = min(topk, A)
    top_val, top_idx = metric.topk(k, dim=-1)
    chosen = torch.zeros_like(metric, dtype=torch.bool)
    chosen.scatter_(-1, top_idx, top_val > 0)
    empty = gt_mask & ~chosen.any(-1) & candidate.any(-1)
    if bool(empty.any()):
        centre = (gt_boxes[..., :2] + gt_boxes[..., 2:]) / 2
        dist = ((anchors.view(1, 1, A, 2) - centre[..., None, :]) ** 2).sum(-1)
        dist = dist.masked_fill(~candidate, float("inf"))
        near = dist.topk(k, dim=-1, largest=False).indices
        fallback = torch.zeros_like(chosen).scatter_(-1, near, True) & candidate
        chosen = torch.where(empty[..., None], fallback, chosen)
    return chosen & candidate


def _one_hand_per_anchor(chosen: torch.Tensor, iou: torch.Tensor) -> torch.Tensor:
    """An anchor claimed by several hands goes to the one it overlaps most (B, M, A)."""
    multi = chosen.sum(1) > 1  # (B, A)
    best = iou.masked_fill(~chosen, -1).argmax(1)  # (B, A)
    one_hot = torch.zeros_like(chosen).scatter_(1, best[:, None], True)
    return torch.where(multi[:, None], one_hot & chosen, chosen)


def _targets(chosen: torch.Tensor, iou: torch.Tensor, gt_classes: torch.Tensor,
             gt_boxes: torch.Tensor, gt_kpts: torch.Tensor, gt_kp_valid: torch.Tensor,
             gt_kp_visible: torch.Tensor, C: int) -> Assignment:  # fmt: skip
    """Per-anchor targets of the chosen (B, M, A) positives."""
    B, _, A = chosen.shape
    dev = chosen.device
    fg = chosen.any(1)
    gt_index = chosen.to(torch.int64).argmax(1)  # (B, A)
    # Soft targets: each positive's own IoU (IoU-aware classification, as VarifocalNet).
    # TOOD's metric-normalised targets (t / max t * max IoU) spread the ~10 positives of a
    # hand from its best IoU down to ~0: on our short CPU runs the scores then stayed at the
    # positives' mean (0.04 after 500 steps, measured); IoU targets rise with the boxes.
    soft = (iou * chosen).amax(1)  # (B, A)
    b_idx = torch.arange(B, device=dev)[:, None]
    classes = torch.where(fg, gt_classes[b_idx, gt_index], -1)
    cls = classes.clamp(min=0)
    scores = torch.zeros(B, A, C, device=dev)
    scores.scatter_(-1, cls[..., None], soft[..., None])
    scores = scores * fg[..., None]
    return Assignment(
        fg=fg,
        gt_index=gt_index * fg,
        scores=scores,
        classes=classes,
        boxes=gt_boxes[b_idx, gt_index],
        keypoints=gt_kpts[b_idx, gt_index],
        kp_valid=gt_kp_valid[b_idx, gt_index] & fg[..., None],
        kp_visible=gt_kp_visible[b_idx, gt_index] & fg[..., None],
    )
