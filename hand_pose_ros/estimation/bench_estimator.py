"""Estimator speed per variant and backend: ms per frame at batch 1 on this machine.

Each row times :meth:`MeshEstimator.estimate` end to end (resize + normalise, network,
decoding to camera metres with a given root depth) on a fixed random crop after a
warm-up. Weights are a seeded random init (``weights: "random-init"`` in the row):
speed does not depend on them. Accuracy columns join these rows once trained weights
exist (issue 7): a row is keyed by ``name`` + ``backend``.
"""

from __future__ import annotations

import argparse

#: Default variants: the lite ones and the CPU candidates (the ResNet-50 baseline is slow).
DEFAULT_MODELS: tuple[str, ...] = (
    "lite_effb0_dw",
    "lite_effb0_mbconv",
    "lite_effb0_dwse",
    "cpu_effb0_w05_128",
    "cpu_effb0_w05_160",
    "cpu_effb0_128",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", choices=("torch", "onnx", "tensorrt"), default="onnx")
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), help="variants")
    parser.add_argument("--repeats", type=int, default=30, help="timed calls per variant")
    parser.add_argument("--warmup", type=int, default=5, help="untimed calls first")
    parser.add_argument("--threads", type=int, default=None, help="torch / ORT threads")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")


def speed_row(estimator, repeats: int, warmup: int) -> dict:
    """Timing row of one estimator on a fixed 256x256 random crop (root depth given)."""
    import os

    import numpy as np

    from hand_pose_ros.bench_utils import time_calls, timing_row

    crop = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    k = np.array([[400.0, 0.0, 127.5], [0.0, 400.0, 127.5], [0.0, 0.0, 1.0]])
    load_before = os.getloadavg()[0]
    times = time_calls(lambda: estimator.estimate(crop, k, root_depth=0.5), repeats=repeats,
                       warmup=warmup)  # fmt: skip
    # This machine's cores are shared: the 1-minute load average tells how busy it was.
    return {**timing_row(times), "load_avg_1min_before": load_before,
            "load_avg_1min_after": os.getloadavg()[0]}  # fmt: skip


def run(args: argparse.Namespace) -> dict:
    import tempfile

    import torch

    from hand_pose_ros.bench_utils import machine_info
    from hand_pose_ros.estimation.runtime import MeshEstimator

    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for name in args.models:
            est = MeshEstimator(name, backend=args.backend, device=args.device, cache_dir=cache,
                                threads=args.threads)  # fmt: skip
            row = {
                "name": name,
                "backend": args.backend,
                "device": args.device,
                "input_size_px": est.cfg.input_size,
                "batch": 1,
                "weights": "random-init",
            }
            row.update(speed_row(est, args.repeats, args.warmup))
            rows.append(row)
    return {"bench": "estimator", "machine": machine_info(), "rows": rows}
