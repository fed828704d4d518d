"""``hand-teleop train handedness``: the crop handedness classifier on synthetic crops.

Samples are our synthetic hand crops (``hand-teleop synth --kind crops``: left and right
hands, palm and back views) with their ``handedness`` label. Augmentation (seeded by
``(seed, epoch, index)``): zoom 0.8-1.25, rotation +-30 deg, shift +-8 % of the crop, a
horizontal flip that swaps the label (a mirrored right hand is a left hand), and the
detector's colour jitter. Loss: binary cross-entropy of the two handedness factors
(:class:`~hand_pose_ros.detection.handedness_model.HandednessNet`), whose targets come
from the labelled side and 2D keypoints (mapped through the same warp). The shared checkpointed
loop (:mod:`hand_pose_ros.research.training.loop`) resumes, logs and stops cleanly.

Evaluation (:func:`evaluate_handedness`): accuracy on held-out crops; on a
``handgraph_dev``-style folder of real crops the label comes from the joints' chirality
(:func:`hand_pose_ros.research.detection.data.open_detection_eval_set`).

Example::

    hand-teleop train handedness --data data/synth/crops_train --test-data data/synth/crops_test \\
        --out runs/handedness/handedness_cpu_128.pt --steps 3000 --threads 1
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hand_pose_ros.research.training.loop import (
    CheckpointedTrainer,
    LossTerms,
    add_loop_arguments,
    fp16_state_dict,
    print_summary,
    start_run,
    write_weights_and_manifest,
)


@dataclass
class HandednessAugment:
    """Strength of the classifier's training augmentation."""

    zoom_range: tuple[float, float] = (0.8, 1.25)
    rotation_deg: float = 30.0
    """Max in-plane rotation, degrees (uniform in +-)."""
    shift: float = 0.08
    """Max shift, fraction of the crop side."""
    flip_prob: float = 0.5
    """Chance of a horizontal mirror, which swaps the label."""
    color: bool = True
    """The detector's colour jitter (HSV, contrast, brightness, blur, grey)."""


def thumb_clockwise(kp2d: np.ndarray) -> bool:
    """Whether the thumb side of the palm (pinky MCP -> index MCP) lies clockwise of the
    finger direction (wrist -> middle MCP) in an image (x right, y down): the 2D cross
    product is positive. Invariant to in-plane rotation, flipped by a mirror."""
    u = kp2d[9] - kp2d[0]
    w = kp2d[5] - kp2d[17]
    return bool(u[0] * w[1] - u[1] * w[0] > 0)


class HandednessTrainSet:
    """Synthetic crops -> ``image`` (3, S, S) float32 in [0, 1], ``left`` () float32 and
    the factor targets ``factors`` (2,) float32: thumb side clockwise, ``left XOR
    clockwise`` (see :class:`~hand_pose_ros.detection.handedness_model.HandednessNet`).

    Args:
        roots: synthetic crops folders (concatenated).
        input_size: S, pixels.
        augment: random warp / flip / colour (else a plain resize).
        seed: base of the per-sample random stream ``(seed, epoch, index)``.
        aug: augmentation strengths.
    """

    def __init__(self, roots: list[str | Path], input_size: int, augment: bool = True,
                 seed: int = 0, aug: HandednessAugment | None = None) -> None:  # fmt: skip
        from hand_pose_ros.research.synth.shards import ConcatSynthDataset

        self.source = ConcatSynthDataset(roots, kind="crops")
        self.input_size = int(input_size)
        self.augment = augment
        self.seed = int(seed)
        self.epoch = 0
        self.aug = aug or HandednessAugment()

    def __len__(self) -> int:
        return len(self.source)

    def numpy_item(self, i: int) -> tuple[np.ndarray, int, np.ndarray]:
        """Sample ``i``: (S, S, 3) uint8 RGB crop, its label (1 = left) and its (21, 2)
        keypoints in crop pixels."""
        import cv2

        from hand_pose_ros.research.detection.data import DetectorAugment, color_augment

        item = self.source.numpy_item(i)
        S = self.input_size
        image = cv2.resize(item["image"], (S, S), interpolation=cv2.INTER_AREA)
        left = int(item["handedness"])
        h, w = item["image"].shape[:2]
        kp = (np.asarray(item["kp2d"], np.float64) + 0.5) * np.array([S / w, S / h]) - 0.5
        if not self.augment:
            return image, left, kp
        aug = self.aug
        rng = np.random.default_rng([self.seed, self.epoch, i])
        zoom = rng.uniform(*aug.zoom_range)
        angle = math.radians(rng.uniform(-aug.rotation_deg, aug.rotation_deg))
        c = (S - 1) / 2.0
        R = zoom * np.array([[math.cos(angle), -math.sin(angle)],
                             [math.sin(angle), math.cos(angle)]])  # fmt: skip
        dst = c + rng.uniform(-aug.shift, aug.shift, 2) * S
        M = np.concatenate([R, (dst - R @ np.array([c, c]))[:, None]], 1)
        if rng.random() < aug.flip_prob:  # x -> S - 1 - x; a mirrored right hand is left
            M[0] = -M[0]
            M[0, 2] += S - 1
            left = 1 - left
        image = cv2.warpAffine(image, M, (S, S), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT)  # fmt: skip
        if aug.color:
            image = color_augment(image, rng, DetectorAugment())
        return image, left, kp @ M[:, :2].T + M[:, 2]

    def __getitem__(self, i: int) -> dict:
        import torch

        image, left, kp = self.numpy_item(i)
        chw = np.ascontiguousarray(image.transpose(2, 0, 1))
        clockwise = thumb_clockwise(kp)
        factors = [float(clockwise), float(bool(left) != clockwise)]
        return {"image": torch.from_numpy(chw).float().div_(255.0),
                "left": torch.tensor(float(left)), "factors": torch.tensor(factors)}  # fmt: skip


def add_crops_data_arguments(parser: argparse.ArgumentParser) -> None:
    """``--data`` (training crops) and ``--test-data`` (evaluation sets) of a handedness
    trainer."""
    parser.add_argument("--data", action="append", required=True,
                        help="synthetic crops folder (repeat to concatenate)")
    parser.add_argument("--test-data", action="append", default=None,
                        help="held-out synthetic crops or a handgraph_dev-style folder "
                             "(repeatable; metrics in the manifest)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_crops_data_arguments(parser)
    parser.add_argument("--input-size", type=int, default=128,
                        help="crop side, pixels (a multiple of 32)")
    add_loop_arguments(parser, batch_size=64, lr=2e-3)


class HandednessTrainer(CheckpointedTrainer):
    """The handedness classifier, its synthetic crops and its BCE loss on the shared loop."""

    checkpoint_keys = ("seed", "batch_size", "input_size")

    def __init__(self, args: argparse.Namespace) -> None:
        import torch

        from hand_pose_ros.detection.handedness import HandednessConfig, create_handedness_net
        from hand_pose_ros.research.synth.shards import synth_data_info

        super().__init__(args)
        torch.manual_seed(args.seed)
        self.cfg = HandednessConfig(name=f"handedness_cpu_{args.input_size}",
                                    input_size=args.input_size)
        self.model = create_handedness_net(self.cfg).to(self.device)
        self.dataset = HandednessTrainSet(args.data, self.cfg.input_size,
                                          augment=not args.no_augment, seed=args.seed)  # fmt: skip
        self.epoch_sets = [self.dataset]
        self.data_info = synth_data_info(args.data)
        self.setup_optimizer()

    def loss(self, batch: dict) -> LossTerms:
        import torch
        import torch.nn.functional as F

        from hand_pose_ros.detection.handedness_model import left_from_factors

        logits = self.model(batch["image"].to(self.device))
        targets = batch["factors"].to(self.device)
        clockwise = F.binary_cross_entropy_with_logits(logits[:, 0], targets[:, 0])
        palm = F.binary_cross_entropy_with_logits(logits[:, 1], targets[:, 1])
        with torch.no_grad():  # logged only: the side these factors give
            p = torch.sigmoid(logits)
            p_left = left_from_factors(p[:, 0], p[:, 1]).clamp(1e-6, 1 - 1e-6)
            side = F.binary_cross_entropy(p_left, batch["left"].to(self.device))
        return LossTerms(total=clockwise + palm, clockwise=clockwise, palm=palm, side=side)


def labelled_crops(spec: str | Path, limit: int | None = None):
    """(RGB crop, label 1 = left) pairs of a synthetic crops folder or a handgraph_dev-style
    folder (labels from the joints' chirality)."""
    from hand_pose_ros.research.detection.data import open_detection_eval_set

    eval_set = open_detection_eval_set(spec)
    n = len(eval_set) if limit is None else min(limit, len(eval_set))
    for i in range(n):
        item = eval_set[i]
        if len(item.classes) == 1 and int(item.classes[0]) >= 0:
            yield item.image, int(item.classes[0])


def evaluate_handedness(left_probability, spec: str | Path, limit: int | None = None) -> dict:
    """``accuracy`` (threshold 0.5), ``accuracy_right`` / ``accuracy_left``, ``log_loss``
    and ``count`` of ``left_probability(list of crops) -> (N,) P(left)`` on a crops set."""
    probs, labels = [], []
    for image, label in labelled_crops(spec, limit):
        probs.append(float(left_probability([image])[0]))
        labels.append(label)
    p, y = np.clip(np.array(probs), 1e-6, 1 - 1e-6), np.array(labels)
    if not len(y):
        raise ValueError(f"{spec}: no crops with a handedness label")
    correct = (p >= 0.5) == (y == 1)
    out = {"count": len(y), "accuracy": float(correct.mean()),
           "log_loss": float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))}  # fmt: skip
    for name, value in (("right", 0), ("left", 1)):
        sel = y == value
        out[f"accuracy_{name}"] = float(correct[sel].mean()) if sel.any() else None
    return out


def run(args: argparse.Namespace) -> int:
    from hand_pose_ros.detection.handedness import METADATA_KEY, HandednessClassifier

    trainer, last = start_run(args, HandednessTrainer)
    model = trainer.model.eval()
    classifier = HandednessClassifier.from_model(model, str(trainer.device))
    metrics = {str(spec): evaluate_handedness(classifier.left_probability, spec)
               for spec in args.test_data or []}  # fmt: skip
    header = {"format": "hand_pose_ros.handedness_weights/1", "model": trainer.cfg.name,
              "metadata_key": METADATA_KEY, "config": trainer.cfg.to_dict()}  # fmt: skip
    manifest = write_weights_and_manifest(trainer, fp16_state_dict(model), header, metrics,
                                          {"last_log": last})  # fmt: skip
    print_summary(trainer, manifest)
    return 0
