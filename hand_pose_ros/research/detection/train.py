"""``hand-teleop train detector``: train the hand detector on synthetic full frames.

Adam with step decay on the shared checkpointed loop
(:mod:`hand_pose_ros.research.training.loop`: resumable, tqdm bar, JSON-lines log,
SIGTERM-safe). Loss: :mod:`hand_pose_ros.research.detection.loss` (YOLOv8-pose terms;
RLE with a RealNVP flow when the variant has ``rle``). The flow is trained with the
network and dropped from the shipped weights (inference does not use it).

At the end ``OUT`` holds the fp16 inference state dict and ``OUT.json`` its manifest
(variant, config, training data, steps, metrics on ``--test-data``).

Example::

    hand-teleop synth --kind frames --count 10000 --seed 0 --out data/synth/frames_train --no-masks
    hand-teleop train detector --model far_handnet_cpu_256 --data data/synth/frames_train \\
        --test-data data/synth/frames_test --out runs/detector/far.pt --steps 6000 --threads 1
"""

from __future__ import annotations

import argparse
import logging

from hand_pose_ros.benchmarks.detector import evaluate_model
from hand_pose_ros.research.training.loop import (
    CheckpointedTrainer,
    add_loop_arguments,
    fp16_state_dict,
    print_summary,
    start_run,
    write_weights_and_manifest,
)

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="registered detector variant")
    parser.add_argument("--data", action="append", required=True,
                        help="synthetic frames folder (repeat to concatenate)")
    parser.add_argument("--test-data", default=None, help="held-out frames for the metrics")
    add_loop_arguments(parser, batch_size=16, lr=2e-3)
    parser.add_argument("--no-fla", action="store_true",
                        help="ablation: no focused linear attention (plain CSPDarkNet)")
    parser.add_argument("--no-kpa", action="store_true", help="ablation: no keypoint alignment")
    parser.add_argument("--no-rle", action="store_true",
                        help="ablation: OKS keypoint loss instead of RLE + RealNVP")
    parser.add_argument("--eval-count", type=int, default=300, help="test frames evaluated")


def config_overrides(args: argparse.Namespace) -> dict:
    """Ablation switches -> DetectorConfig overrides."""
    out = {}
    if args.no_fla:
        out["focused_attention"] = False
    if args.no_kpa:
        out["kpa"] = False
    if args.no_rle:
        out["rle"] = False
    return out


class DetectorTrainer(CheckpointedTrainer):
    """The detector network, its synthetic frames and its loss on the shared loop."""

    checkpoint_keys = ("model", "seed", "batch_size", "no_fla", "no_kpa", "no_rle")

    def __init__(self, args: argparse.Namespace) -> None:
        import torch

        from hand_pose_ros.detection.model import create_detector
        from hand_pose_ros.research.detection.data import DetectorTrainSet, collate_detection
        from hand_pose_ros.research.synth.shards import synth_data_info

        super().__init__(args)
        torch.manual_seed(args.seed)
        self.overrides = config_overrides(args)
        self.model = create_detector(args.model, **self.overrides).to(self.device)
        self.cfg = self.model.cfg
        self.dataset = DetectorTrainSet(args.data, self.cfg.input_size,
                                        augment=not args.no_augment, seed=args.seed)  # fmt: skip
        self.epoch_sets = [self.dataset]
        self.collate_fn = collate_detection
        self.data_info = synth_data_info(args.data)
        self.setup_optimizer()

    def loss(self, batch: dict):
        from hand_pose_ros.research.detection.loss import detection_loss

        raw = self.model.forward_raw(batch["image"].to(self.device))
        return detection_loss(self.model, raw, batch)


def write_weights(trainer: DetectorTrainer, metrics: dict | None, extra: dict | None = None
                  ) -> dict:  # fmt: skip
    """Save ``OUT`` (fp16 inference state dict, no flow) and ``OUT.json``; returns the manifest."""
    state = fp16_state_dict(trainer.model, trainer.model.inference_state_dict())
    header = {"format": "hand_pose_ros.detector_weights/1", "model": trainer.args.model,
              "config": trainer.cfg.to_dict()}  # fmt: skip
    return write_weights_and_manifest(trainer, state, header, metrics, extra)


def run(args: argparse.Namespace) -> int:
    trainer, last = start_run(args, DetectorTrainer)
    metrics = None
    if args.test_data:
        trainer.model.eval()
        metrics = {"test_data": args.test_data,
                   **evaluate_model(trainer.model, args.test_data, limit=args.eval_count)}
    print_summary(trainer, write_weights(trainer, metrics, {"last_log": last}))
    return 0
