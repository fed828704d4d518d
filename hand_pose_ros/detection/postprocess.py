"""Around the detector network: input warps, score filtering, NMS, mapping back to the frame.

The network sees a square ``S x S`` image made from the frame by a scale-and-shift
``p_input = p_frame * scale + pad``: a letterbox of the whole frame, or a square region
of interest (tracking) resized to ``S`` (pixels outside the frame are grey 114).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: Smallest region of interest side, frame pixels.
MIN_ROI_SIDE = 16.0


@dataclass(frozen=True)
class InputWarp:
    """``p_input = p_frame * scale + pad`` (pixels)."""

    scale: float
    pad: tuple[float, float]

    def to_frame(self, points: np.ndarray) -> np.ndarray:
        """(..., 2) input pixels -> frame pixels."""
        return (np.asarray(points, np.float64) - np.asarray(self.pad)) / self.scale

    def matrix(self) -> np.ndarray:
        """(3, 3) homogeneous frame -> input map (``A @ K`` is the input image's intrinsics)."""
        s, (px, py) = self.scale, self.pad
        return np.array([[s, 0.0, px], [0.0, s, py], [0.0, 0.0, 1.0]])

    def box_to_frame(self, boxes: np.ndarray) -> np.ndarray:
        """(..., 4) xyxy input pixels -> frame pixels."""
        b = np.asarray(boxes, np.float64)
        return np.concatenate([self.to_frame(b[..., :2]), self.to_frame(b[..., 2:])], -1)


def letterbox_input(image: np.ndarray, size: int) -> tuple[np.ndarray, InputWarp]:
    """Whole frame, aspect kept, centred on grey: (size, size, 3) uint8 and its warp."""
    from hand_pose_ros.detection.data import letterbox

    out, scale, pad = letterbox(image, size)
    return out, InputWarp(float(scale), (float(pad[0]), float(pad[1])))


def roi_input(image: np.ndarray, roi: np.ndarray, size: int) -> tuple[np.ndarray, InputWarp]:
    """Square region ``roi`` (xyxy frame pixels, may leave the frame) resized to ``size``
    (grey outside the frame). One warp of the ROI alone: ``data.warp_image`` would first
    area-resize the whole frame, about 10 ms more per tracked hand on 1280x720 video."""
    from hand_pose_ros.detection.data import PAD_VALUE

    x0, y0, x1, y1 = (float(v) for v in roi)
    if not np.all(np.isfinite(roi)):
        raise ValueError(f"roi: finite xyxy expected, got {roi}")
    side = max(x1 - x0, y1 - y0, MIN_ROI_SIDE)  # a collapsed track still gets a usable view
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    scale = size / side
    warp = InputWarp(scale, (size / 2 - cx * scale, size / 2 - cy * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    out = cv2.warpAffine(image, warp.matrix()[:2], (size, size), flags=interp,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=(PAD_VALUE,) * 3)  # fmt: skip
    return out, warp


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
    """Network outputs of one image -> :class:`~hand_pose_ros.detection.evaluate.Detection`
    list in frame pixels, best first.

    Args:
        boxes: (A, 4) xyxy input px. scores: (A, C) class probabilities (0 right, 1 left).
        keypoints: (A, K, 3) x, y input px and confidence. warp: the input's warp.
        score_threshold: minimum hand probability (sum over the two classes, at most 1).
        iou_threshold: class-agnostic NMS threshold (one hand, one box, either side).
        max_detections: at most this many.
    """
    from hand_pose_ros.detection.evaluate import Detection

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
