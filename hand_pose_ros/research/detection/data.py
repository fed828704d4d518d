"""Detector data: letterbox, augmented training samples from synthetic frames, eval sets.

Training (:class:`DetectorTrainSet`): synthetic datasets (``hand-teleop synth --kind
frames``; crops folders work too, one hand each) -> letterboxed (S, S) inputs and
per-hand targets in input pixels (:class:`DetectionTargets`). With ``augment`` each
sample gets one random affine warp (zoom 0.5-1.5 of the letterbox scale, rotation
+-20 deg, a translation that can put a hand anywhere, partly out of the image
included), a horizontal flip (p = 0.5; it swaps right <-> left: a mirrored right hand
is a left hand), HSV / brightness / contrast jitter, occasional blur and grey-scale.
The random stream is ``np.random.default_rng([seed, epoch, index])``: a sample is the
same whatever the number of loader workers or where a run resumed (call
:meth:`DetectorTrainSet.set_epoch` before each epoch; with ``persistent_workers`` the
workers keep their copy, so do not use it with epoch-dependent augmentation).

Evaluation (:func:`open_detection_eval_set`): full frames with per-hand boxes,
classes and 2D keypoints, from a synthetic folder (amodal mesh boxes) or a
``handgraph_dev``-style folder of real 256 x 256 crops (one hand each, box = tight box
of the 21 projected joints; see :mod:`hand_pose_ros.research.estimation.evaluate`).

Pixel convention: centres at integers. :func:`letterbox` maps a frame point ``p`` to
``p * scale + pad`` exactly for that convention (the half-pixel term of the resize is
folded into ``pad``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from hand_pose_ros.crop import PAD_VALUE, letterbox
from hand_pose_ros.research.estimation.evaluate import open_eval_set
from hand_pose_ros.research.estimation.train_data import project
from hand_pose_ros.research.synth.shards import ConcatSynthDataset, SynthDataset

NUM_KEYPOINTS = 21
#: A hand whose clipped box keeps less than this share of its warped box area is dropped.
MIN_BOX_AREA_KEPT = 0.25
#: ... or whose clipped box is shorter than this on a side (input pixels).
MIN_BOX_SIDE = 4.0


# --- targets -----------------------------------------------------------------------------------


@dataclass
class DetectionTargets:
    """Per-hand labels of one network input (N hands, input pixels)."""

    boxes: np.ndarray  # (N, 4) float32 xyxy, clipped to [0, S]
    classes: np.ndarray  # (N,) int64: 0 right, 1 left
    keypoints: np.ndarray  # (N, 21, 2) float32, amodal (may lie outside the image)
    kp_valid: np.ndarray  # (N, 21) bool: inside the input image (occluded ones count)
    kp_visible: np.ndarray  # (N, 21) bool: visible in the source frame and inside

    def __len__(self) -> int:
        return len(self.classes)


def _affine_points(M: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine to (..., 2) points."""
    p = np.asarray(p, np.float64)
    return p @ M[:, :2].T + M[:, 2]


def _box_corners(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) xyxy -> (N, 4, 2) corners."""
    x0, y0, x1, y1 = (boxes[:, i] for i in range(4))
    return np.stack([np.stack([x0, y0], -1), np.stack([x1, y0], -1),
                     np.stack([x1, y1], -1), np.stack([x0, y1], -1)], 1)  # fmt: skip


def _inside(points: np.ndarray, size: int) -> np.ndarray:
    """(..., 2) -> (...) bool: within [0, size] on both axes."""
    return ((points >= 0.0) & (points <= float(size))).all(-1)


def make_targets(
    M: np.ndarray,
    size: int,
    boxes: np.ndarray,
    classes: np.ndarray,
    keypoints: np.ndarray,
    visibility: np.ndarray,
) -> DetectionTargets:
    """Frame labels -> input labels through the 2x3 affine ``M`` (frame -> input pixels).

    Box = min / max of the 4 warped corners of the original (amodal) box, clipped to
    [0, S]; a hand whose clipped box keeps < ``MIN_BOX_AREA_KEPT`` of the unclipped area
    or is < ``MIN_BOX_SIDE`` px on a side is dropped. ``classes`` are taken as given
    (the caller swaps them for a mirroring ``M``).
    """
    n = len(classes)
    corners = _affine_points(M, _box_corners(np.asarray(boxes, np.float64).reshape(n, 4)))
    warped = np.concatenate([corners.min(1), corners.max(1)], -1).reshape(n, 4)
    clipped = np.clip(warped, 0.0, float(size))
    area = np.prod(np.maximum(warped[:, 2:] - warped[:, :2], 0.0), -1)
    wh = clipped[:, 2:] - clipped[:, :2]
    keep = (wh.min(-1) >= MIN_BOX_SIDE) & (wh.prod(-1) >= MIN_BOX_AREA_KEPT * area)
    kp = _affine_points(M, np.asarray(keypoints).reshape(n, NUM_KEYPOINTS, 2))
    inside = _inside(kp, size)
    vis = np.asarray(visibility, bool).reshape(n, NUM_KEYPOINTS) & inside
    return DetectionTargets(
        boxes=clipped[keep].astype(np.float32),
        classes=np.asarray(classes, np.int64).reshape(n)[keep],
        keypoints=kp[keep].astype(np.float32),
        kp_valid=inside[keep],
        kp_visible=vis[keep],
    )


# --- augmentation ------------------------------------------------------------------------------


@dataclass
class DetectorAugment:
    """Strength of the detector's training augmentation."""

    scale_range: tuple[float, float] = (0.85, 1.6)
    """Zoom relative to the letterbox scale (uniform). Mostly zoom-in: the frames already
    vary the hand distance (0.3-1.6 m), and a zoom-out fills the input with grey that the
    letterboxed camera frames at run time never show."""
    rotation_deg: float = 10.0
    """Max in-plane rotation, degrees (uniform in +-)."""
    hand_anchor_prob: float = 0.25
    """Chance to place a random hand's box centre uniformly over the input (it can end
    up on the border, partly out); otherwise the frame centre moves by +-``shift``."""
    shift: float = 0.1
    """Max shift of the frame centre, fraction of the input side."""
    close_up_prob: float = 0.3
    """Chance of a close-up instead: a random hand's box side becomes ``close_up_side`` of
    the input, its centre within +-``shift`` of the input centre (hands that fill the
    view, as in a tracker ROI or a camera close to the hand; the frames alone have few)."""
    close_up_side: tuple[float, float] = (0.35, 0.95)
    """Hand box side of a close-up, fraction of the input side (uniform)."""
    close_up_max_zoom: float = 2.0
    """At most this many input pixels per frame pixel in a close-up (a far hand is not
    blown up into a blurry close-up; it stays smaller)."""
    flip_prob: float = 0.5
    hsv_gain: tuple[float, float, float] = (0.015, 0.6, 0.35)
    """Max relative hue (fraction of the circle), saturation and value change."""
    contrast: float = 0.25
    """Contrast factor uniform in 1 +- contrast."""
    brightness: float = 20.0
    """Brightness offset uniform in +- (0-255 scale)."""
    blur_prob: float = 0.1
    gray_prob: float = 0.05


def augment_affine(
    rng: np.random.Generator,
    frame_hw: tuple[int, int],
    size: int,
    boxes: np.ndarray,
    aug: DetectorAugment,
) -> tuple[np.ndarray, bool]:
    """A random 2x3 affine frame -> input pixels and whether it mirrors the image."""
    h, w = frame_hw
    s = size / max(h, w) * rng.uniform(*aug.scale_range)
    a = math.radians(rng.uniform(-aug.rotation_deg, aug.rotation_deg))
    centre = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    close_up = len(boxes) > 0 and rng.random() < aug.close_up_prob
    if close_up:
        b = boxes[rng.integers(len(boxes))]
        side = max(float(b[2] - b[0]), float(b[3] - b[1]), 1.0)
        s = min(size * rng.uniform(*aug.close_up_side) / side, aug.close_up_max_zoom)
    R = s * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    if close_up:
        src = np.array([(b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0])
        dst = (size - 1) / 2.0 + rng.uniform(-aug.shift, aug.shift, 2) * size
    elif len(boxes) and rng.random() < aug.hand_anchor_prob:
        b = boxes[rng.integers(len(boxes))]
        src = np.array([(b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0])
        dst = rng.uniform(0.0, size, 2)
    else:
        src = centre
        dst = (size - 1) / 2.0 + rng.uniform(-aug.shift, aug.shift, 2) * size
    M = np.concatenate([R, (dst - R @ src)[:, None]], 1)
    flip = bool(rng.random() < aug.flip_prob)
    if flip:  # x -> S - 1 - x in input pixels (centres at integers)
        M[0] = -M[0]
        M[0, 2] += size - 1
    return M, flip


def warp_image(image: np.ndarray, M: np.ndarray, size: int) -> np.ndarray:
    """Warp ``image`` by the 2x3 ``M`` into (size, size), grey border.

    A strong zoom-out is first area-resampled (so the warp does not alias); the
    geometry is the same as one warp by ``M``.
    """
    zoom = math.sqrt(abs(np.linalg.det(M[:, :2])))
    if zoom < 0.8:
        pre = cv2.resize(image, (0, 0), fx=zoom, fy=zoom, interpolation=cv2.INTER_AREA)
        # cv2 maps source p to q = p * zoom + (zoom - 1) / 2; compose M with the inverse.
        A = M[:, :2] / zoom
        M = np.concatenate([A, (M[:, 2] - A @ np.full(2, (zoom - 1) / 2))[:, None]], 1)
        image = pre
    return cv2.warpAffine(image, M, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT,
                          borderValue=(PAD_VALUE,) * 3)  # fmt: skip


def color_augment(img: np.ndarray, rng: np.random.Generator, aug: DetectorAugment) -> np.ndarray:
    """HSV gain, contrast / brightness, occasional blur and grey-scale of an RGB uint8 image."""
    gh, gs, gv = (rng.uniform(-g, g) for g in aug.hsv_gain)
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
    x = np.arange(256, dtype=np.float64)
    lut_h = ((x + gh * 180.0) % 180).astype(np.uint8)
    lut_s = np.clip(x * (1.0 + gs), 0, 255).astype(np.uint8)
    lut_v = np.clip(x * (1.0 + gv), 0, 255).astype(np.uint8)
    hsv = cv2.merge((cv2.LUT(hsv[..., 0], lut_h), cv2.LUT(hsv[..., 1], lut_s),
                     cv2.LUT(hsv[..., 2], lut_v)))  # fmt: skip
    img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    c = rng.uniform(1.0 - aug.contrast, 1.0 + aug.contrast)
    b = rng.uniform(-aug.brightness, aug.brightness)
    lut = np.clip((x - 127.5) * c + 127.5 + b, 0, 255).astype(np.uint8)
    img = cv2.LUT(img, lut)
    if rng.random() < aug.blur_prob:
        k = int(rng.choice([3, 5]))
        img = cv2.GaussianBlur(img, (k, k), 0)
    if rng.random() < aug.gray_prob:
        img = np.repeat(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[..., None], 3, -1)
    return np.ascontiguousarray(img)


# --- training set ------------------------------------------------------------------------------


def _hand_labels(item: dict) -> tuple[np.ndarray, ...]:
    """Valid hands of a synthetic item: boxes, classes, kp2d, visibility (leading hand axis)."""
    if np.asarray(item["handedness"]).ndim == 0:  # crops: no hand axis
        item = {k: np.asarray(v)[None] for k, v in item.items() if k != "image"}
        valid = np.ones(1, bool)
    else:
        valid = np.asarray(item["hand_valid"], bool)
    valid = valid & (np.asarray(item["handedness"]) >= 0)
    return (np.asarray(item["box_xyxy"], np.float64)[valid],
            np.asarray(item["handedness"], np.int64)[valid],
            np.asarray(item["kp2d"], np.float64)[valid],
            np.asarray(item["visibility"], bool)[valid])  # fmt: skip


class DetectorTrainSet(torch.utils.data.Dataset):
    """Synthetic datasets -> letterboxed, optionally augmented detector samples.

    Item: ``image`` (3, S, S) float32 in [0, 1] RGB; ``boxes`` (M, 4) float32 xyxy,
    ``classes`` (M,) int64, ``keypoints`` (M, 21, 2) float32, ``kp_valid`` /
    ``kp_visible`` (M, 21) bool (see :class:`DetectionTargets`; input pixels, M = hands
    kept); ``index`` () int64. Batch with :func:`collate_detection`.

    Args:
        roots: synthetic dataset folders (concatenated in order).
        input_size: S, pixels.
        augment: random warp / flip / colour (else letterbox only).
        seed: base of the per-sample random stream ``(seed, epoch, index)``.
        aug: augmentation strengths.
    """

    def __init__(
        self,
        roots: list[str | Path],
        input_size: int,
        augment: bool = True,
        seed: int = 0,
        aug: DetectorAugment | None = None,
    ) -> None:
        self.source = ConcatSynthDataset(roots)
        self.input_size = int(input_size)
        self.augment = augment
        self.seed = int(seed)
        self.epoch = 0
        self.aug = aug or DetectorAugment()

    def __len__(self) -> int:
        return len(self.source)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream of ``epoch``."""
        self.epoch = int(epoch)

    def numpy_item(self, i: int) -> dict:
        """Sample ``i`` as numpy: ``image`` (S, S, 3) uint8 RGB and ``targets``."""
        item = self.source.numpy_item(i)
        image = item["image"]
        boxes, classes, kp, vis = _hand_labels(item)
        S = self.input_size
        if not self.augment:
            out, scale, pad = letterbox(image, S)
            M = np.array([[scale, 0.0, pad[0]], [0.0, scale, pad[1]]])
            return {"image": out, "targets": make_targets(M, S, boxes, classes, kp, vis)}
        rng = np.random.default_rng([self.seed, self.epoch, i])
        M, flip = augment_affine(rng, image.shape[:2], S, boxes, self.aug)
        out = color_augment(warp_image(image, M, S), rng, self.aug)
        if flip:
            classes = 1 - classes
        return {"image": out, "targets": make_targets(M, S, boxes, classes, kp, vis)}

    def __getitem__(self, i: int) -> dict:
        s = self.numpy_item(i)
        t: DetectionTargets = s["targets"]
        image = np.ascontiguousarray(s["image"].transpose(2, 0, 1))
        return {
            "image": torch.from_numpy(image).float().div_(255.0),
            "boxes": torch.from_numpy(t.boxes),
            "classes": torch.from_numpy(t.classes),
            "keypoints": torch.from_numpy(t.keypoints),
            "kp_valid": torch.from_numpy(t.kp_valid),
            "kp_visible": torch.from_numpy(t.kp_visible),
            "index": torch.tensor(i, dtype=torch.int64),
        }


def collate_detection(batch: list[dict]) -> dict:
    """Stack images; pad per-sample targets to the batch's max hand count.

    Returns ``image`` (B, 3, S, S), ``boxes`` (B, M, 4), ``classes`` (B, M) (padding 0),
    ``keypoints`` (B, M, 21, 2), ``kp_valid`` / ``kp_visible`` (B, M, 21) (padding
    False), ``gt_mask`` (B, M) bool (True for real hands), ``index`` (B,); M >= 1.
    """
    B = len(batch)
    m = max([1] + [len(b["classes"]) for b in batch])
    out = {
        "image": torch.stack([b["image"] for b in batch]),
        "boxes": torch.zeros(B, m, 4),
        "classes": torch.zeros(B, m, dtype=torch.int64),
        "keypoints": torch.zeros(B, m, NUM_KEYPOINTS, 2),
        "kp_valid": torch.zeros(B, m, NUM_KEYPOINTS, dtype=torch.bool),
        "kp_visible": torch.zeros(B, m, NUM_KEYPOINTS, dtype=torch.bool),
        "gt_mask": torch.zeros(B, m, dtype=torch.bool),
        "index": torch.stack([torch.as_tensor(b["index"], dtype=torch.int64) for b in batch]),
    }
    for k, b in enumerate(batch):
        n = len(b["classes"])
        out["gt_mask"][k, :n] = True
        for key in ("boxes", "classes", "keypoints", "kp_valid", "kp_visible"):
            out[key][k, :n] = b[key]
    return out


# --- evaluation sets ---------------------------------------------------------------------------


@dataclass
class DetectionEvalItem:
    """One labelled full frame (frame pixels)."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    boxes: np.ndarray  # (N, 4) float64 xyxy
    classes: np.ndarray  # (N,) int64: 0 right, 1 left, -1 unknown
    keypoints: np.ndarray  # (N, 21, 2) float64
    kp_valid: np.ndarray  # (N, 21) bool: labelled and inside the frame
    box_source: str = "mesh"  # "mesh" (amodal mesh box) or "keypoints" (tight keypoint box)


@dataclass
class DetectionEvalSet:
    """A list-like, lazily loaded set of :class:`DetectionEvalItem`."""

    name: str
    kind: str
    count: int
    get: Callable[[int], DetectionEvalItem] = field(repr=False)
    box_source: str = "mesh"

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> DetectionEvalItem:
        if not 0 <= i < self.count:
            raise IndexError(f"index {i} out of range for {self.count} items")
        return self.get(i)

    def __iter__(self) -> Iterator[DetectionEvalItem]:
        return (self.get(i) for i in range(self.count))


def keypoint_boxes(keypoints: np.ndarray) -> np.ndarray:
    """(N, 21, 2) -> (N, 4) tight xyxy boxes of the keypoints."""
    kp = np.asarray(keypoints, np.float64)
    return np.concatenate([kp.min(-2), kp.max(-2)], -1)


def _frame_inside(kp: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    h, w = hw
    return (kp[..., 0] >= 0) & (kp[..., 0] <= w) & (kp[..., 1] >= 0) & (kp[..., 1] <= h)


def _synth_eval_item(item: dict) -> DetectionEvalItem:
    boxes, classes, kp, _ = _hand_labels(item)
    image = item["image"]
    return DetectionEvalItem(image, boxes, classes, kp, _frame_inside(kp, image.shape[:2]), "mesh")


def _crop_eval_item(item) -> DetectionEvalItem:
    """A one-hand crop (:class:`hand_pose_ros.research.estimation.evaluate.EvalItem`) as a frame."""
    kp = project(item.joints_cam, item.K)[None]
    return DetectionEvalItem(item.image, keypoint_boxes(kp), np.array([int(item.left)], np.int64),
                             kp, _frame_inside(kp, item.image.shape[:2]),
                             "keypoints")  # fmt: skip


def open_detection_eval_set(spec: str | Path) -> DetectionEvalSet:
    """Detection evaluation set from a spec.

    - a synthetic dataset folder (frames: 0-2 hands; crops: one): mesh boxes
      (``box_source = "mesh"``), classes from ``handedness``;
    - a ``handgraph_dev``-style folder (``labels.npz``) or ``freihand:PATH``: one hand
      per crop, read with :func:`hand_pose_ros.research.estimation.evaluate.open_eval_set`;
      keypoints = projection of the joints with the crop K, class from the set's
      chirality (left = 1), box = tight box of the 21 keypoints
      (``box_source = "keypoints"``).
    """
    spec = str(spec)
    root = Path(spec)
    if spec.startswith("freihand:") or (root / "labels.npz").is_file():
        crops = open_eval_set(spec)
        return DetectionEvalSet(crops.name, crops.kind, len(crops),
                                lambda i: _crop_eval_item(crops[i]), "keypoints")  # fmt: skip
    ds = SynthDataset(root)
    kind = f"synth_{ds.meta.get('kind', '?')}_{ds.meta.get('split', '?')}"
    return DetectionEvalSet(root.name, kind, len(ds),
                            lambda i: _synth_eval_item(ds.numpy_item(i)), "mesh")  # fmt: skip
