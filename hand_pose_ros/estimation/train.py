"""``hand-teleop train meshnet``: train an I2L MeshNet-family estimator (seed 002 recipe).

Adam, lr 1e-4 with step decay (x ``--lr-gamma`` at the ``--lr-milestones`` fractions of
the run), seed 002 eq. (4) loss in lixel units (:func:`~hand_pose_ros.estimation.losses.i2l_loss`:
PoseNet joint L1 + MeshNet joint L1 through the hand model's 21-joint regressor + vertex L1 +
edge + 0.1 normal). CPU-minded: ``torch.set_num_threads``, channels_last, a checkpoint every
few minutes (``OUT.ckpt``, atomic) that ``--resume`` continues exactly (same batches, same
augmentation), a tqdm bar with loss and samples/s, a JSON-lines log (``OUT.log.jsonl``).
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
import json
import logging
import os
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="registered estimator variant")
    parser.add_argument("--data", action="append", required=True,
                        help="training set: a synthetic crops folder or freihand:PATH "
                             "(repeat to concatenate)")
    parser.add_argument("--test-data", default=None, help="held-out set for the final metrics")
    parser.add_argument("--out", type=Path, required=True, help="weights file (.pt)")
    parser.add_argument("--steps", type=int, default=20000, help="optimizer steps in all")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--input-size", type=int, default=None,
                        help="override the variant's input size (a multiple of 32)")
    parser.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (seed 002)")
    parser.add_argument("--lr-milestones", type=float, nargs="*", default=[0.7, 0.9],
                        help="fractions of --steps where the lr is multiplied by --lr-gamma")
    parser.add_argument("--lr-gamma", type=float, default=0.1)
    parser.add_argument("--hand-model", default="open", help="hand model (faces, J_regressor)")
    parser.add_argument("--seed", type=int, default=0, help="init, order and augmentation seed")
    parser.add_argument("--no-augment", action="store_true", help="disable augmentation")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--workers", type=int, default=0, help="data loader processes")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--checkpoint-minutes", type=float, default=5.0)
    parser.add_argument("--resume", action="store_true", help="continue from OUT.ckpt")
    parser.add_argument("--export", action="store_true",
                        help="no training: write OUT + OUT.json from OUT.ckpt (and evaluate)")
    parser.add_argument("--log-every", type=int, default=20, help="steps per log line")
    parser.add_argument("--eval-count", type=int, default=500, help="test samples evaluated")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


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


def _save_atomic(obj, path: Path) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def fp16_state_dict(model) -> dict:
    """State dict with floating tensors in fp16 (loads into an fp32 model unchanged)."""
    return {k: (v.half() if v.is_floating_point() else v).clone()
            for k, v in model.state_dict().items()}  # fmt: skip


class Trainer:
    """Model, optimizer, data order and step counter of one run (checkpointable)."""

    def __init__(self, args: argparse.Namespace) -> None:
        import torch
        from torch.utils.data import ConcatDataset

        from hand_ik import load_hand_model
        from hand_pose_ros.estimation.registry import create_estimator
        from hand_pose_ros.estimation.train_data import LixelTrainSet, TrainAugment, open_dataset

        self.args = args
        self.device = torch.device(args.device)
        self.hand = load_hand_model(args.hand_model)
        overrides = {"num_vertices": self.hand.num_vertices}
        if args.input_size:
            overrides["input_size"] = args.input_size
        torch.manual_seed(args.seed)
        self.model = create_estimator(args.model, **overrides).to(self.device)
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
        self.sets = [LixelTrainSet(b, self.cfg.input_size, self.cfg.depth_range_m, args.seed, aug)
                     for b in bases]  # fmt: skip
        self.dataset = ConcatDataset(self.sets)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=args.lr)
        milestones = sorted({max(1, int(f * args.steps)) for f in args.lr_milestones})
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, milestones,
                                                              args.lr_gamma)  # fmt: skip
        self.step = 0
        self.elapsed = 0.0
        self.stop_requested = False

    @property
    def ckpt_path(self) -> Path:
        return self.args.out.with_name(self.args.out.name + ".ckpt")

    def state(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "step": self.step,
                "elapsed_s": self.elapsed, "model_name": self.args.model,
                "overrides": self.overrides, "seed": self.args.seed,
                "batch_size": self.args.batch_size}  # fmt: skip

    def save_checkpoint(self) -> None:
        _save_atomic(self.state(), self.ckpt_path)

    def load_checkpoint(self, path: Path) -> None:
        import torch

        state = torch.load(path, map_location=self.device, weights_only=False)
        for key, want in (("model_name", self.args.model), ("seed", self.args.seed),
                          ("batch_size", self.args.batch_size)):  # fmt: skip
            if state[key] != want:
                raise ValueError(f"{path}: checkpoint has {key}={state[key]!r}, run asks {want!r}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.elapsed = int(state["step"]), float(state["elapsed_s"])

    def batches(self):
        """Yield batches from the current step on: epoch ``e`` visits a permutation seeded by
        (seed, e); resuming skips the batches already seen without loading them."""
        import torch
        from torch.utils.data import DataLoader

        n, b = len(self.dataset), self.args.batch_size
        per_epoch = max(1, n // b)  # the last partial batch of an epoch is dropped
        while True:
            epoch, first = divmod(self.step, per_epoch)
            for s in self.sets:
                s.epoch = epoch
            g = torch.Generator().manual_seed(self.args.seed * 100003 + epoch)
            perm = torch.randperm(n, generator=g).tolist()
            order = [perm[i * b : (i + 1) * b] for i in range(first, per_epoch)]
            loader = DataLoader(self.dataset, batch_sampler=order,
                                num_workers=self.args.workers,
                                persistent_workers=False)  # fmt: skip
            yield from loader

    def loss(self, batch: dict):
        import torch

        from hand_pose_ros.estimation.losses import coord_l1, i2l_loss, regress_joints

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
        return _Terms(total=total, pose_posenet=pose)

    def train(self, log_path: Path, quiet: bool = False) -> dict:
        """Run to ``--steps``; returns the last log record."""
        from tqdm import tqdm

        args = self.args
        self.model.train()
        last_ckpt = time.monotonic()
        window_t, window_n = time.monotonic(), 0
        record: dict = {}
        bar = tqdm(total=args.steps, initial=self.step, disable=quiet, unit="step",
                   dynamic_ncols=True)  # fmt: skip
        with log_path.open("a") as log_file:
            for batch in self.batches():
                if self.step >= args.steps or self.stop_requested:
                    break
                t0 = time.monotonic()
                terms = self.loss(batch)
                self.optimizer.zero_grad(set_to_none=True)
                terms.total.backward()
                self.optimizer.step()
                self.scheduler.step()
                self.step += 1
                self.elapsed += time.monotonic() - t0
                window_n += len(batch["image"])
                bar.update(1)
                if self.step % args.log_every == 0 or self.step == args.steps:
                    now = time.monotonic()
                    rate = window_n / max(now - window_t, 1e-9)
                    window_t, window_n = now, 0
                    record = {"step": self.step, "lr": self.scheduler.get_last_lr()[0],
                              "samples_per_s": round(rate, 2), "time": time.time(),
                              **{k: round(float(v.detach()), 5)
                                 for k, v in terms.__dict__.items()}}
                    log_file.write(json.dumps(record) + "\n")
                    log_file.flush()
                    bar.set_postfix(loss=f"{record['total']:.3f}", sps=f"{rate:.1f}")
                if time.monotonic() - last_ckpt > 60 * args.checkpoint_minutes:
                    self.save_checkpoint()
                    last_ckpt = time.monotonic()
        bar.close()
        self.save_checkpoint()
        return record


class _Terms:
    """Loss terms when some of eq. (4) is skipped (no mesh labels)."""

    def __init__(self, **terms) -> None:
        self.__dict__.update(terms)


def write_weights(trainer: Trainer, metrics: dict | None, extra: dict | None = None) -> dict:
    """Save ``OUT`` (fp16 state dict) and ``OUT.json`` (manifest); returns the manifest."""
    import torch

    args = trainer.args
    _save_atomic(fp16_state_dict(trainer.model), args.out)
    manifest = {
        "format": "hand_pose_ros.estimator_weights/1",
        "model": args.model,
        "config": trainer.cfg.to_dict(),
        "hand_model": {"name": trainer.hand.name,
                       "fingerprint": hand_model_fingerprint(trainer.hand),
                       "num_vertices": trainer.hand.num_vertices},
        "training_data": trainer.data_info,
        "training": {"steps": trainer.step, "batch_size": args.batch_size,
                     "samples_seen": trainer.step * args.batch_size, "lr": args.lr,
                     "lr_milestones": args.lr_milestones, "lr_gamma": args.lr_gamma,
                     "seed": args.seed, "augment": not args.no_augment,
                     "train_seconds": round(trainer.elapsed, 1),
                     "threads": torch.get_num_threads(), "device": args.device},
        "weights_dtype": "float16",
        "metrics": metrics or {},
        **(extra or {}),
    }
    path = args.out.with_name(args.out.stem + ".json")
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _train_until_stopped(trainer: Trainer, log_path: Path, quiet: bool) -> dict:
    """Train; SIGTERM / SIGINT finish the current step, then checkpoint and return."""
    import signal

    def request_stop(signum, frame) -> None:
        log.warning("signal %d: stopping after this step (checkpoint + weights)", signum)
        trainer.stop_requested = True

    old = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return trainer.train(log_path, quiet=quiet)
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def run(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(max(1, args.threads))
    args.out = Path(args.out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(args)
    if args.resume:
        if trainer.ckpt_path.is_file():
            trainer.load_checkpoint(trainer.ckpt_path)
            log.info("resumed %s at step %d", trainer.ckpt_path, trainer.step)
        else:
            log.warning("--resume: no checkpoint at %s, starting fresh", trainer.ckpt_path)
    log_path = args.out.with_name(args.out.stem + ".log.jsonl")
    if args.export:
        if not trainer.ckpt_path.is_file():
            raise FileNotFoundError(f"--export: no checkpoint at {trainer.ckpt_path}")
        trainer.load_checkpoint(trainer.ckpt_path)
        lines = log_path.read_text().splitlines() if log_path.is_file() else []
        last = json.loads(lines[-1]) if lines else {}
    else:
        last = _train_until_stopped(trainer, log_path, args.quiet)
    metrics = None
    if args.test_data:
        from hand_pose_ros.estimation.evaluate import evaluate_network, open_eval_set

        trainer.model.eval()
        metrics = evaluate_network(trainer.model.to(memory_format=torch.contiguous_format),
                                   open_eval_set(args.test_data), limit=args.eval_count)
        metrics = {"test_data": args.test_data, **metrics}
    manifest = write_weights(trainer, metrics, {"last_log": last})
    print(json.dumps({"weights": str(args.out), "steps": trainer.step,
                      "metrics": manifest["metrics"]}, indent=2))  # fmt: skip
    return 0
