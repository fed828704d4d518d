"""Generate a sharded synthetic dataset with worker processes (resumable).

Splits are disjoint by seed: every sample's random stream, pose block and skin
texture bank derive from the dataset seed, so datasets with different seeds
share no sample. Seeds ``[0, 1_000_000)`` are for training and
``[1_000_000, 2_000_000)`` for testing (:func:`split_for_seed`); use e.g.
``--seed 0`` for a training set and ``--seed 1000000`` for its test set. (The
finite pool of background photos is shared by both splits.)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import multiprocessing as mp
import os
import queue
import shutil
import time
from pathlib import Path

from .shards import FORMAT, read_meta, shard_name, write_shard

logger = logging.getLogger(__name__)

TRAIN_SEEDS = range(0, 1_000_000)
TEST_SEEDS = range(1_000_000, 2_000_000)


def split_for_seed(seed: int) -> str:
    """``"train"`` or ``"test"`` for a dataset seed (ValueError outside both ranges)."""
    if seed in TRAIN_SEEDS:
        return "train"
    if seed in TEST_SEEDS:
        return "test"
    raise ValueError(
        f"seed must be in [0, 1000000) (train) or [1000000, 2000000) (test), got {seed}"
    )


# --- worker side -------------------------------------------------------------------------------
_WORKER: dict = {}


def _init_worker(
    config_dict: dict, seed: int, backgrounds: str | None, progress_queue, hand_source=None
) -> None:
    # One llvmpipe and one torch thread per process: processes give the parallelism.
    os.environ.setdefault("LP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    from .generator import SynthConfig, SynthGenerator

    _WORKER["gen"] = SynthGenerator(
        SynthConfig(**config_dict), seed, backgrounds, hand_source=hand_source
    )
    _WORKER["queue"] = progress_queue


def _make_shard(job: tuple[int, int, int, str, bool]) -> int:
    shard, start, stop, out, masks = job
    gen = _WORKER["gen"]
    q = _WORKER["queue"]
    samples, done = [], 0
    for i in range(start, stop):
        samples.append(gen.sample(i))
        done += 1
        if q is not None and done % 8 == 0:
            q.put(8)
    if q is not None and done % 8:
        q.put(done % 8)
    hand_slots = 1 if gen.config.kind == "crops" else 2
    num_verts = int(gen.hand.faces.max()) + 1
    write_shard(
        Path(out) / shard_name(shard),
        list(range(start, stop)),
        samples,
        hand_slots,
        num_verts,
        masks=masks,
    )
    return stop - start


# --- driver ------------------------------------------------------------------------------------
def generate_dataset(
    out: str | Path,
    config,
    count: int,
    seed: int,
    workers: int = 2,
    shard_size: int = 500,
    backgrounds: str | None = None,
    masks: bool = True,
    progress: bool = True,
    hand_source=None,
) -> dict:
    """Generate (or finish) a dataset folder.

    Args:
        out: output folder (created; finished shards are kept and skipped).
        config: a :class:`hand_pose_ros.research.synth.generator.SynthConfig`.
        count: number of samples. seed: dataset seed (fixes the split).
        workers: worker processes (0 = in this process).
        shard_size: samples per shard.
        backgrounds: optional folder of background images.
        masks: store label masks.
        progress: show a tqdm progress bar.
        hand_source: override the hand source (tests; only with ``workers=0``).

    Returns:
        ``{"samples_written", "shards_written", "shards_skipped", "seconds", "images_per_s",
        "images_per_s_after_startup"}`` (the latter from the first worker report on, i.e.
        without process start-up and texture painting; None without workers).
    """
    _check_arguments(count, shard_size, workers, hand_source)
    out = Path(out)
    config_dict = dataclasses.asdict(config)
    meta = _start_meta(out, config, config_dict, count, seed, shard_size, backgrounds)
    n_shards = math.ceil(count / shard_size)
    jobs = [(k, k * shard_size, min(count, (k + 1) * shard_size), str(out), masks)
            for k in range(n_shards) if not (out / shard_name(k)).is_dir()]  # fmt: skip
    todo = sum(stop - start for _, start, stop, _, _ in jobs)
    from tqdm import tqdm

    bar = tqdm(total=todo, unit="img", desc=f"synth {config.kind}", disable=not progress)
    t0 = time.perf_counter()
    first = None
    if jobs and workers == 0:
        _init_worker(config_dict, seed, backgrounds, None, hand_source)
        for job in jobs:
            bar.update(_make_shard(job))
    elif jobs:
        first = _run_pool(jobs, workers, (config_dict, seed, backgrounds), bar)
    bar.close()
    seconds = time.perf_counter() - t0
    meta["finished"] = all((out / shard_name(k)).is_dir() for k in range(n_shards))
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    return _summary(todo, len(jobs), n_shards, seconds, t0, first)


def _summary(todo: int, written: int, n_shards: int, seconds: float, t0: float,
             first: tuple[float, int] | None) -> dict:  # fmt: skip
    """:func:`generate_dataset`'s result: counts and rates (images per second)."""
    steady = None
    if first is not None and todo - first[1] > 0:
        steady = round((todo - first[1]) / max(t0 + seconds - first[0], 1e-9), 2)
    return {
        "samples_written": todo,
        "shards_written": written,
        "shards_skipped": n_shards - written,
        "seconds": round(seconds, 3),
        "images_per_s": round(todo / seconds, 2) if todo and seconds > 0 else None,
        "images_per_s_after_startup": steady,
    }


def _check_arguments(count: int, shard_size: int, workers: int, hand_source) -> None:
    """ValueError naming the argument of :func:`generate_dataset` that is out of range."""
    if count <= 0:
        raise ValueError(f"count must be > 0, got {count}")
    if shard_size <= 0:
        raise ValueError(f"shard_size must be > 0, got {shard_size}")
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    if hand_source is not None and workers > 0:
        raise ValueError("hand_source overrides need workers=0")


def _start_meta(
    out: Path, config, config_dict: dict, count: int, seed: int, shard_size: int,
    backgrounds: str | None,
) -> dict:  # fmt: skip
    """Create ``out``, refuse a folder holding another dataset, drop partial shards of an
    interrupted run and write ``meta.json`` (unfinished); returns the meta dict."""
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": FORMAT,
        "kind": config.kind,
        "seed": int(seed),
        "split": split_for_seed(seed),
        "count": int(count),
        "shard_size": int(shard_size),
        "image_size": list(config.image_size),
        "config": config_dict,
        "backgrounds": str(backgrounds) if backgrounds else None,
    }
    if (out / "meta.json").exists():
        old = read_meta(out)
        for key in ("kind", "seed", "shard_size", "config"):
            if json.loads(json.dumps(old[key])) != json.loads(json.dumps(meta[key])):
                raise ValueError(
                    f"{out} holds a dataset with another {key} ({old[key]!r}); use a new folder"
                )
    for stale in out.glob("shard_*.tmp-*"):  # partial shards of an interrupted run
        shutil.rmtree(stale, ignore_errors=True)
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    return meta


def _run_pool(jobs: list, workers: int, worker_args: tuple, bar) -> tuple[float, int] | None:
    """Shards ``jobs`` on ``workers`` spawned processes, counting images on ``bar``.

    Returns ``(time, images done)`` at the first worker report (start of the steady-state
    rate; ``time.perf_counter`` seconds), or None when no worker reported.
    """
    first = None
    ctx = mp.get_context("spawn")  # a fresh process per worker: no inherited GL or torch state
    q = ctx.Queue()
    with ctx.Pool(
        min(workers, len(jobs)),
        initializer=_init_worker,
        initargs=(*worker_args, q),
    ) as pool:
        pending = pool.map_async(_make_shard, jobs, chunksize=1)
        while True:
            try:
                n = q.get(timeout=0.25)
                if first is None:  # workers are up: start of the steady-state rate
                    first = (time.perf_counter(), bar.n)
                bar.update(n)
            except queue.Empty:
                if pending.ready():
                    break
        pending.get()  # re-raises a worker's exception
        while not q.empty():
            bar.update(q.get())
    return first
