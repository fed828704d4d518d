"""``hand-teleop train detector``: train the hand detector on synthetic full frames.

Adam with step decay on the shared checkpointed loop (:mod:`hand_pose_ros.training.loop`:
resumable, tqdm bar, JSON-lines log, SIGTERM-safe). Loss: :mod:`hand_pose_ros.detection.loss`
(YOLOv8-pose terms; RLE with a RealNVP flow when the variant has ``rle``). The flow is
trained with the network and dropped from the shipped weights (inference does not use it).

At the end ``OUT`` holds the fp16 inference state dict and ``OUT.json`` its manifest
(variant, config, training data, steps, metrics on ``--test-data``).

Example::

    hand-teleop synth --kind frames --count 10000 --seed 0 --out data/synth/frames_train --no-masks
    hand-teleop train detector --model far_handnet_cpu_256 --data data/synth/frames_train \\
        --test-data data/synth/frames_test --out runs/detector/far.pt --steps 6000 --threads 1
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from hand_pose_ros.training.loop import (
    CheckpointedTrainer,
    fp16_state_dict,
    run_trainer,
    save_atomic,
)

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from hand_pose_ros.training.loop import add_loop_arguments

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

        from hand_pose_ros.detection.data import DetectorTrainSet, collate_detection
        from hand_pose_ros.detection.model import create_detector
        from hand_pose_ros.synth.shards import SynthDataset

        super().__init__(args)
        torch.manual_seed(args.seed)
        self.overrides = config_overrides(args)
        self.model = create_detector(args.model, **self.overrides).to(self.device)
        self.cfg = self.model.cfg
        self.dataset = DetectorTrainSet(args.data, self.cfg.input_size,
                                        augment=not args.no_augment, seed=args.seed)  # fmt: skip
        self.epoch_sets = [self.dataset]
        self.collate_fn = collate_detection
        self.data_info = []
        for spec in args.data:
            ds = SynthDataset(spec)  # count = finished shards (a stopped run keeps those)
            self.data_info.append({"spec": str(spec), "kind": ds.meta.get("kind"),
                                   "seed": ds.meta.get("seed"), "split": ds.meta.get("split"),
                                   "count": len(ds)})  # fmt: skip
        self.setup_optimizer()

    def loss(self, batch: dict):
        from hand_pose_ros.detection.loss import detection_loss

        raw = self.model.forward_raw(batch["image"].to(self.device))
        return detection_loss(self.model, raw, batch)


def write_weights(trainer: DetectorTrainer, metrics: dict | None, extra: dict | None = None
                  ) -> dict:  # fmt: skip
    """Save ``OUT`` (fp16 inference state dict, no flow) and ``OUT.json``; returns the manifest."""
    args = trainer.args
    state = fp16_state_dict(trainer.model)
    state = {k: v for k, v in state.items() if not k.startswith("flow.")}
    save_atomic(state, args.out)
    manifest = {
        "format": "hand_pose_ros.detector_weights/1",
        "model": args.model,
        "config": trainer.cfg.to_dict(),
        "training_data": trainer.data_info,
        "training": trainer.training_record(),
        "weights_dtype": "float16",
        "metrics": metrics or {},
        **(extra or {}),
    }
    path = args.out.with_name(args.out.stem + ".json")
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def run(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(max(1, args.threads))
    args.out = Path(args.out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    trainer = DetectorTrainer(args)
    last, _ = run_trainer(trainer)
    metrics = None
    if args.test_data:
        from hand_pose_ros.detection.bench import evaluate_model

        trainer.model.eval()
        metrics = {"test_data": args.test_data,
                   **evaluate_model(trainer.model, args.test_data, limit=args.eval_count)}
    manifest = write_weights(trainer, metrics, {"last_log": last})
    print(json.dumps({"weights": str(args.out), "steps": trainer.step,
                      "metrics": manifest["metrics"]}, indent=2))  # fmt: skip
    return 0
