"""A checkpointed, resumable training loop shared by ``hand-teleop train meshnet|detector``.

A subclass builds its model, datasets and optimizer and defines :meth:`CheckpointedTrainer.loss`;
this class owns the rest: the data order (a permutation per epoch seeded by ``(seed, epoch)``,
so a resumed run sees the batches an uninterrupted one would), the step loop with a tqdm bar
(loss, samples/s), a JSON-lines log, atomic checkpoints every few minutes, and a clean stop
on SIGTERM / Ctrl-C (finish the step, checkpoint, return).

Arguments it reads from ``args``: ``out``, ``steps``, ``batch_size``, ``seed``, ``workers``,
``log_every``, ``checkpoint_minutes``, ``lr``, ``lr_milestones``, ``lr_gamma``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)


def save_atomic(obj, path: Path) -> None:
    """``torch.save`` to a temporary file renamed into place."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def fp16_state_dict(model, state: dict | None = None) -> dict:
    """``state`` (default: the model's state dict) with floating tensors in fp16 (loads into an
    fp32 model unchanged)."""
    state = model.state_dict() if state is None else state
    return {k: (v.half() if v.is_floating_point() else v).clone()
            for k, v in state.items()}  # fmt: skip


class LossTerms:
    """Named scalar loss tensors; ``total`` is the one back-propagated."""

    def __init__(self, **terms) -> None:
        self.__dict__.update(terms)


def add_loop_arguments(parser: argparse.ArgumentParser, *, batch_size: int, lr: float) -> None:
    """The options every trainer shares."""
    parser.add_argument("--out", type=Path, required=True, help="weights file (.pt)")
    parser.add_argument("--steps", type=int, default=20000, help="optimizer steps in all")
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--lr", type=float, default=lr, help="Adam learning rate")
    parser.add_argument("--lr-milestones", type=float, nargs="*", default=[0.7, 0.9],
                        help="fractions of --steps where the lr is multiplied by --lr-gamma")
    parser.add_argument("--lr-gamma", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0, help="init, order and augmentation seed")
    parser.add_argument("--no-augment", action="store_true", help="disable augmentation")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--workers", type=int, default=0, help="data loader processes")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--checkpoint-minutes", type=float, default=5.0)
    parser.add_argument("--resume", action="store_true", help="continue from OUT.ckpt")
    parser.add_argument("--init-weights", type=Path, default=None,
                        help="start from these weights (a state dict, fp16 is fine) "
                             "instead of a random init; ignored when resuming")
    parser.add_argument("--export", action="store_true",
                        help="no training: write OUT + OUT.json from OUT.ckpt (and evaluate)")
    parser.add_argument("--log-every", type=int, default=20, help="steps per log line")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


class CheckpointedTrainer:
    """Model, optimizer, data order and step counter of one run (checkpointable).

    Subclasses set ``self.model`` and ``self.dataset`` (and optionally ``self.epoch_sets``,
    datasets whose ``epoch`` attribute selects their augmentation stream) and then call
    :meth:`setup_optimizer`; they define :meth:`loss` and may extend :meth:`checkpoint_keys`.
    """

    #: Args that must match between a checkpoint and the run resuming it.
    checkpoint_keys: tuple[str, ...] = ("model", "seed", "batch_size")
    collate_fn = None

    def __init__(self, args: argparse.Namespace) -> None:
        import torch

        self.args = args
        self.device = torch.device(args.device)
        self.step = 0
        self.elapsed = 0.0
        self.stop_requested = False
        self.epoch_sets: list = []

    def setup_optimizer(self) -> None:
        import torch

        args = self.args
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=args.lr)
        milestones = sorted({max(1, int(f * args.steps)) for f in args.lr_milestones})
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, milestones,
                                                              args.lr_gamma)  # fmt: skip

    # --- checkpoints -------------------------------------------------------------------------
    @property
    def ckpt_path(self) -> Path:
        return self.args.out.with_name(self.args.out.name + ".ckpt")

    def state(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "step": self.step,
                "elapsed_s": self.elapsed,
                "args": {k: getattr(self.args, k) for k in self.checkpoint_keys}}  # fmt: skip

    def save_checkpoint(self) -> None:
        save_atomic(self.state(), self.ckpt_path)

    def load_checkpoint(self, path: Path) -> None:
        """Restore a checkpoint (ValueError when it was made with other key arguments)."""
        import torch

        state = torch.load(path, map_location=self.device, weights_only=False)
        for key in self.checkpoint_keys:
            have, want = state["args"].get(key), getattr(self.args, key)
            if have != want:
                raise ValueError(f"{path}: checkpoint has {key}={have!r}, run asks {want!r}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.elapsed = int(state["step"]), float(state["elapsed_s"])

    def load_init_weights(self, path: Path) -> None:
        """Start from a state dict (e.g. shipped fp16 weights) instead of the random init."""
        import torch

        if not Path(path).is_file():
            raise FileNotFoundError(f"--init-weights: not found: {path}")
        state = torch.load(path, map_location=self.device, weights_only=True)
        state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
        self.model.load_state_dict(state, strict=False)
        log.info("initialised from %s", path)

    # --- data and loop -----------------------------------------------------------------------
    def batches(self):
        """Yield batches from the current step on: epoch ``e`` visits a permutation seeded by
        (seed, e); resuming skips the batches already seen without loading them."""
        import torch
        from torch.utils.data import DataLoader

        n, b = len(self.dataset), self.args.batch_size
        per_epoch = max(1, n // b)  # the last partial batch of an epoch is dropped
        while True:
            epoch, first = divmod(self.step, per_epoch)
            for s in self.epoch_sets:
                s.epoch = epoch
            g = torch.Generator().manual_seed(self.args.seed * 100003 + epoch)
            perm = torch.randperm(n, generator=g).tolist()
            order = [perm[i * b : (i + 1) * b] for i in range(first, per_epoch)]
            loader = DataLoader(self.dataset, batch_sampler=order,
                                num_workers=self.args.workers, collate_fn=self.collate_fn,
                                persistent_workers=False)  # fmt: skip
            yield from loader

    def loss(self, batch: dict) -> LossTerms:
        raise NotImplementedError

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

    def training_record(self) -> dict:
        """The manifest's ``training`` entry."""
        import torch

        args = self.args
        return {"steps": self.step, "batch_size": args.batch_size,
                "samples_seen": self.step * args.batch_size, "lr": args.lr,
                "lr_milestones": args.lr_milestones, "lr_gamma": args.lr_gamma,
                "seed": args.seed, "augment": not args.no_augment,
                "init_weights": str(args.init_weights) if args.init_weights else None,
                "train_seconds": round(self.elapsed, 1),
                "threads": torch.get_num_threads(), "device": args.device}  # fmt: skip


def train_until_stopped(trainer: CheckpointedTrainer, log_path: Path, quiet: bool) -> dict:
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


def run_trainer(trainer: CheckpointedTrainer) -> dict:
    """Resume / init / train or export as the args say; returns the last log record."""
    args = trainer.args
    if args.resume and trainer.ckpt_path.is_file():
        trainer.load_checkpoint(trainer.ckpt_path)
        log.info("resumed %s at step %d", trainer.ckpt_path, trainer.step)
    else:
        if args.resume:
            log.warning("--resume: no checkpoint at %s, starting fresh", trainer.ckpt_path)
        if args.init_weights is not None and not args.export:
            trainer.load_init_weights(args.init_weights)
    log_path = args.out.with_name(args.out.stem + ".log.jsonl")
    if args.export:
        if not trainer.ckpt_path.is_file():
            raise FileNotFoundError(f"--export: no checkpoint at {trainer.ckpt_path}")
        trainer.load_checkpoint(trainer.ckpt_path)
        lines = log_path.read_text().splitlines() if log_path.is_file() else []
        return json.loads(lines[-1]) if lines else {}
    return train_until_stopped(trainer, log_path, args.quiet)


def start_run(args: argparse.Namespace, trainer_class) -> tuple[CheckpointedTrainer, dict]:
    """Threads, output folder, trainer; then resume / train / export (:func:`run_trainer`).
    Returns the trainer and the last log record."""
    import torch

    torch.set_num_threads(max(1, args.threads))
    args.out = Path(args.out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    trainer = trainer_class(args)
    return trainer, run_trainer(trainer)


def write_weights_and_manifest(
    trainer: CheckpointedTrainer, state: dict, header: dict, metrics: dict | None,
    extra: dict | None = None,
) -> dict:  # fmt: skip
    """Save ``OUT`` (the given fp16 state dict) and ``OUT.json``: ``header`` (format, model,
    config, ...), the training data and record, the metrics and ``extra``; returns the
    manifest."""
    args = trainer.args
    save_atomic(state, args.out)
    manifest = {**header, "training_data": trainer.data_info,
                "training": trainer.training_record(), "weights_dtype": "float16",
                "metrics": metrics or {}, **(extra or {})}  # fmt: skip
    path = args.out.with_name(args.out.stem + ".json")
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def print_summary(trainer: CheckpointedTrainer, manifest: dict) -> None:
    print(json.dumps({"weights": str(trainer.args.out), "steps": trainer.step,
                      "metrics": manifest["metrics"]}, indent=2))  # fmt: skip
