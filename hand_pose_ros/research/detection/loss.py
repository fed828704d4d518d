"""Training loss of the hand detector (YOLOv8-pose terms; seed 000 RrFM as an option).

``total = box_w * (1 - GIoU) + cls_w * BCE + keypoint terms``: box and keypoint terms
averaged over the positive anchors, the class term (targets: each positive's IoU, see
:mod:`~hand_pose_ros.research.detection.assign`) summed over all anchors and divided by the sum
of the targets. With ``cfg.handedness_head`` that class term trains the hand logit alone
and a separate ``handedness_w * BCE`` term, averaged over the positive anchors of hands
with a known class, trains the left-vs-right logit:

- without RLE: YOLOv8-pose's OKS loss ``1 - exp(-d^2 / (2 area k^2))`` over labelled
  keypoints, plus a BCE keypoint-confidence term trained towards "visible";
- with RLE (``cfg.rle``, seed 000's regression residual fitting module): the residual
  log-likelihood of the keypoint error, normalised by the hand box side, under a learned
  RealNVP residual density (:func:`hand_pose_ros.detection.flow.rle_loss`); the predicted
  sigma becomes the keypoint confidence at inference.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from hand_pose_ros.detection.flow import rle_loss
from hand_pose_ros.detection.model import anchor_points
from hand_pose_ros.research.detection.assign import OKS_K, assign, box_inter_union
from hand_pose_ros.research.training.loop import LossTerms


@dataclass
class LossWeights:
    """Term weights (YOLOv8-pose defaults: box 7.5, cls 0.5, pose 12, kobj 1)."""

    box: float = 7.5
    cls: float = 0.5
    pose: float = 12.0
    kobj: float = 1.0
    rle: float = 1.0
    handedness: float = 1.0


def giou(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Generalised IoU of xyxy boxes (..., 4), elementwise."""
    inter, union = box_inter_union(a, b)
    lt = torch.minimum(a[..., :2], b[..., :2])
    rb = torch.maximum(a[..., 2:], b[..., 2:])
    hull = (rb - lt).clamp(min=0).prod(-1)
    return inter / (union + eps) - (hull - union) / (hull + eps)


def ltrb_to_xyxy(ltrb: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """(B, A, 4) distances from the anchor centres (A, 2) -> xyxy boxes."""
    return torch.cat([anchors - ltrb[..., :2], anchors + ltrb[..., 2:]], -1)


def detection_loss(
    model, raw: dict[str, torch.Tensor], batch: dict[str, torch.Tensor],
    weights: LossWeights | None = None,
) -> LossTerms:  # fmt: skip
    """Loss of one batch.

    Args:
        model: the :class:`~hand_pose_ros.detection.model.HandDetectorNet` (config, anchors,
            and the RLE flow).
        raw: ``model.forward_raw(images)``.
        batch: ``collate_detection`` output (``boxes`` (B, M, 4), ``classes`` (B, M),
            ``keypoints`` (B, M, K, 2), ``kp_valid``/``kp_visible`` (B, M, K), ``gt_mask``).
    """
    w = weights or LossWeights()
    cfg = model.cfg
    dev = raw["cls"].device
    anchors, strides = anchor_points(cfg)
    anchors, strides = anchors.to(dev), strides.to(dev)
    pred_boxes = ltrb_to_xyxy(raw["box"], anchors)
    gt = {k: v.to(dev) for k, v in batch.items() if isinstance(v, torch.Tensor)}
    if cfg.handedness_head:  # assign by the class-agnostic hand probability
        assign_scores = raw["cls"][..., :1].detach().sigmoid().expand_as(raw["cls"])
    else:
        assign_scores = raw["cls"].detach().sigmoid()
    a = assign(
        assign_scores, pred_boxes.detach(), raw["kpt"].detach(), anchors,
        gt["classes"], gt["boxes"], gt["keypoints"], gt["kp_valid"], gt["kp_visible"],
        gt["gt_mask"], kpa=cfg.kpa, anchor_strides=strides,
    )  # fmt: skip
    fg = a.fg
    zero = raw["box"].sum() * 0.0
    cls_loss, hand_loss = _class_losses(cfg, raw["cls"], a, zero)
    cls_total = w.cls * cls_loss + w.handedness * hand_loss
    if not bool(fg.any()):
        return LossTerms(total=cls_total + zero, box=zero, cls=cls_loss, kpt=zero)
    box_loss = (1.0 - giou(pred_boxes[fg], a.boxes[fg])).mean()
    target_boxes = a.boxes[fg]
    side = (target_boxes[:, 2:] - target_boxes[:, :2]).amax(-1).clamp(min=1.0)
    kp_pred, kp_gt, kp_valid = raw["kpt"][fg], a.keypoints[fg], a.kp_valid[fg]
    if cfg.rle:
        kpt = rle_loss(kp_pred, raw["kpt_sigma"][fg], kp_gt, side, kp_valid, model.flow)
        total = w.box * box_loss + cls_total + w.rle * kpt
        return LossTerms(total=total, box=box_loss, cls=cls_loss, kpt=kpt,
                         **_handedness_term(cfg, hand_loss))  # fmt: skip
    area = (target_boxes[:, 2:] - target_boxes[:, :2]).clamp(min=1.0).prod(-1)
    d2 = ((kp_pred - kp_gt) ** 2).sum(-1)
    e = d2 / (2 * area[:, None] * OKS_K**2)
    v = kp_valid.float()
    oks_loss = (((1 - torch.exp(-e)) * v).sum(-1) / v.sum(-1).clamp(min=1.0)).mean()
    kobj = F.binary_cross_entropy_with_logits(raw["kpt_logit"][fg], a.kp_visible[fg].float())
    total = w.box * box_loss + cls_total + w.pose * oks_loss + w.kobj * kobj
    return LossTerms(total=total, box=box_loss, cls=cls_loss, kpt=oks_loss, kobj=kobj,
                     **_handedness_term(cfg, hand_loss))  # fmt: skip


def _class_losses(cfg, cls_logits: torch.Tensor, a, zero: torch.Tensor) -> tuple:
    """``(cls_loss, hand_loss)``: the classification BCE against the soft assignment scores
    (normalised by their sum) and, with a handedness head, the left/right BCE of the
    positives whose side is known (``zero`` otherwise)."""
    norm = a.scores.sum().clamp(min=1.0)
    hand_loss = zero
    if cfg.handedness_head:
        hand_target = a.scores.sum(-1)
        cls_loss = F.binary_cross_entropy_with_logits(cls_logits[..., 0], hand_target,
                                                      reduction="sum") / norm  # fmt: skip
        known = a.fg & (a.classes >= 0)
        if bool(known.any()):
            hand_loss = F.binary_cross_entropy_with_logits(cls_logits[..., 1][known],
                                                           a.classes[known].float())  # fmt: skip
    else:
        cls_loss = F.binary_cross_entropy_with_logits(cls_logits, a.scores,
                                                      reduction="sum") / norm  # fmt: skip
    return cls_loss, hand_loss


def _handedness_term(cfg, hand_loss: torch.Tensor) -> dict[str, torch.Tensor]:
    """The logged ``handedness`` term (only for a handedness head)."""
    return {"handedness": hand_loss} if cfg.handedness_head else {}
