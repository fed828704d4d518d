"""``hand-teleop train meshnet``: train an I2L MeshNet-family estimator (seed 002 recipe).

Adam, lr 1e-4 with step decay (x ``--lr-gamma`` at the ``--lr-milestones`` fractions of
the run), seed 002 eq. (4) loss in lixel units
(:func:`~hand_pose_ros.research.estimation.losses.i2l_loss`: PoseNet joint L1 + MeshNet
joint L1 through the hand model's 21-joint regressor + vertex L1 + edge + 0.1 normal).
CPU-minded: ``torch.set_num_threads``, channels_last, a checkpoint every few minutes
(``OUT.ckpt``, atomic) that ``--resume`` continues exactly (same batches, same augmentation),
a tqdm bar with loss and samples/s, a JSON-lines log (``OUT.log.jsonl``).
SIGTERM / Ctrl-C stop the run cleanly after the current step: checkpoint, then weights.
``--export`` writes the weights of the last checkpoint without training.

At the end ``OUT`` holds the fp16 state dict and ``OUT.json`` its manifest (model, config,
hand model, training data, steps, and metrics on ``--test-data`` when given).

Example::

    hand-teleop train meshnet --model cpu_effb0_w05_128 --data data/synth/crops_train \
        --test-data data/synth/crops_test --out runs/meshnet/cpu_effb0_w05_128.pt --steps 20000
    hand-teleop train meshnet --model lite_effb0_dwse --data freihand:/data/FreiHAND_pub_v2 \
        --data data/synth/crops_train --threads 8 --workers 6 --device cuda --out lite.pt
"""

from __future__ import annotations

import argparse
import logging

import numpy as np

from hand_pose_ros.estimation.registry import create_mesh_net
from hand_pose_ros.research.training.loop import (
    CheckpointedTrainer,
    LossTerms,
    add_loop_arguments,
    fp16_state_dict,
    print_summary,
    start_run,
    write_weights_and_manifest,
)

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="registered estimator variant")
    parser.add_argument("--data", action="append", required=True,
                        help="training set: a synthetic crops folder or freihand:PATH "
                             "(repeat to concatenate)")
    parser.add_argument("--test-data", default=None, help="held-out set for the final metrics")
    add_loop_arguments(parser, batch_size=32, lr=1e-4)  # seed 002: Adam, lr 1e-4
    parser.add_argument("--input-size", type=int, default=None,
                        help="override the variant's input size (a multiple of 32)")
    parser.add_argument("--hand-model", default="open", help="hand model (faces, J_regressor)")
    parser.add_argument("--eval-count", type=int, default=500, help="test samples evaluated")


def joint_regressor21(hand) -> np.ndarray:
    """(21, V) regressor of the 21 keypoints (FreiHAND order) from the hand model's vertices:
    its 16-joint ``J_regressor`` plus one-hot fingertip vertices, in ``keypoint_gather`` order."""
    jr = np.asarray(hand.J_regressor, np.float64)
    tips = np.zeros((5, jr.shape[1]))
    tips[np.arange(5), np.asarray(hand.tip_vertex_ids)] = 1.0
    gather = np.asarray(hand.keypoint_gather)
    return np.concatenate([jr, tips])[gather]


def hand_model_fingerprint(hand) -> str:
    """Short sha256 of the hand model's faces, template and regressor (what a net predicts)."""
    import hashlib

    h = hashlib.sha256()
    for a in (hand.faces, hand.v_template, hand.J_regressor):
        h.update(np.ascontiguousarray(np.asarray(a.detach().cpu() if hasattr(a, "detach") else a,
                                                 np.float32)).tobytes())  # fmt: skip
    return h.hexdigest()[:16]


def _describe_data(spec: str, ds) -> dict:
    meta = getattr(ds, "meta", None)
    if meta is None:
        return {"spec": spec, "kind": "freihand", "count": len(ds)}
    return {"spec": spec, "kind": meta.get("kind"), "seed": meta.get("seed"),
            "split": meta.get("split"), "count": len(ds)}  # fmt: skip


class Trainer(CheckpointedTrainer):
    """The mesh estimator's model, data and eq. (4) loss on the shared checkpointed loop."""

    def __init__(self, args: argparse.Namespace) -> None:
        import torch
        from torch.utils.data import ConcatDataset

        from hand_ik import load_hand_model
        from hand_pose_ros.research.estimation.train_data import (
            LixelTrainSet,
            TrainAugment,
            open_dataset,
        )

        super().__init__(args)
        self.hand = load_hand_model(args.hand_model)
        overrides = {"num_vertices": self.hand.num_vertices}
        if args.input_size:
            overrides["input_size"] = args.input_size
        torch.manual_seed(args.seed)
        self.model = create_mesh_net(args.model, **overrides).to(self.device)
        self.model = self.model.to(memory_format=torch.channels_last)
        self.cfg = self.model.cfg
        self.overrides = overrides
        self.j_reg = torch.as_tensor(joint_regressor21(self.hand), dtype=torch.float32,
                                     device=self.device)  # fmt: skip
        self.faces = torch.as_tensor(np.asarray(self.hand.faces), dtype=torch.long,
                                     device=self.device)  # fmt: skip
        aug = None if args.no_augment else TrainAugment()
        bases = [open_dataset(spec) for spec in args.data]
        self.data_info = [_describe_data(s, d) for s, d in zip(args.data, bases, strict=True)]
        self.epoch_sets = [LixelTrainSet(b, self.cfg.input_size, self.cfg.depth_range_m,
                                         args.seed, aug) for b in bases]  # fmt: skip
        self.dataset = ConcatDataset(self.epoch_sets)
        self.setup_optimizer()

    def loss(self, batch: dict):
        import torch

        from hand_pose_ros.research.estimation.losses import coord_l1, i2l_loss, regress_joints

        image = batch["image"].to(self.device).contiguous(memory_format=torch.channels_last)
        out = self.model(image)
        jg = batch["joints_lixel"].to(self.device)
        vg = batch["verts_lixel"].to(self.device)
        mv = batch["mesh_valid"].to(self.device) > 0.5
        if bool(mv.all()):
            return i2l_loss(out.joints, out.vertices, jg, vg, self.j_reg, self.faces)
        # Some samples lack a mesh label: mesh terms on those that have one only.
        pose = coord_l1(out.joints, jg)
        total = pose
        if bool(mv.any()):
            t = i2l_loss(out.joints[mv], out.vertices[mv], jg[mv], vg[mv], self.j_reg, self.faces)
            total = t.total - t.pose_posenet + pose
        else:
            total = pose + coord_l1(regress_joints(out.vertices, self.j_reg), jg)
        return LossTerms(total=total, pose_posenet=pose)


def write_weights(trainer: Trainer, metrics: dict | None, extra: dict | None = None) -> dict:
    """Save ``OUT`` (fp16 state dict) and ``OUT.json`` (manifest); returns the manifest."""
    header = {
        "format": "hand_pose_ros.estimator_weights/1",
        "model": trainer.args.model,
        "config": trainer.cfg.to_dict(),
        "hand_model": {"name": trainer.hand.name,
                       "fingerprint": hand_model_fingerprint(trainer.hand),
                       "num_vertices": trainer.hand.num_vertices},
    }  # fmt: skip
    return write_weights_and_manifest(trainer, fp16_state_dict(trainer.model), header, metrics,
                                      extra)  # fmt: skip


def run(args: argparse.Namespace) -> int:
    import torch

    trainer, last = start_run(args, Trainer)
    metrics = None
    if args.test_data:
        from hand_pose_ros.research.estimation.evaluate import evaluate_network, open_eval_set

        trainer.model.eval()
        metrics = evaluate_network(trainer.model.to(memory_format=torch.contiguous_format),
                                   open_eval_set(args.test_data), limit=args.eval_count)
        metrics = {"test_data": args.test_data, **metrics}
    print_summary(trainer, write_weights(trainer, metrics, {"last_log": last}))
    return 0
