"""Synthetic data generator throughput: images/s and CPU ms per image, per sample kind.

One process, one llvmpipe thread: ``cpu_ms_per_image`` is the cost on one core
(render + augment + JPEG encode), so ``cores * 1000 / cpu_ms_per_image`` bounds
what ``hand-teleop synth --workers cores`` reaches on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import time

from hand_pose_ros.benchmarks.utils import machine_info


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--count", type=int, default=100, help="samples per kind (after warm-up)")
    parser.add_argument("--kinds", nargs="+", default=["crops", "frames"], help="sample kinds")
    parser.add_argument("--hand-source", default="auto", help="auto | open | standin")
    parser.add_argument(
        "--warmup", type=int, default=None,
        help="samples before timing (default: 3 x the skin textures, which are painted lazily)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> dict:
    os.environ.setdefault("LP_NUM_THREADS", "1")
    import cv2
    import torch

    from hand_pose_ros.research.synth.generator import SynthConfig, SynthGenerator

    torch.set_num_threads(1)
    rows = []
    for kind in args.kinds:
        t0 = time.perf_counter()
        gen = SynthGenerator(SynthConfig(kind=kind, hand_source=args.hand_source), seed=0)
        # Warm up: paint the lazily made skin textures and backgrounds first.
        warmup = 3 * gen.config.num_skin_textures if args.warmup is None else args.warmup
        for i in range(warmup):
            gen.sample(i)
        startup = time.perf_counter() - t0
        start = 10_000
        c0, w0 = time.process_time(), time.perf_counter()
        for i in range(start, start + args.count):
            s = gen.sample(i)
            cv2.imencode(".jpg", s["image"][..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        rows.append(
            {
                "name": f"{kind}_{gen.config.image_size[0]}x{gen.config.image_size[1]}",
                "hand_source": gen.hand.name,
                "count": args.count,
                "startup_and_warmup_s": round(startup, 2),
                "images_per_s_one_process": round(args.count / wall, 2),
                "cpu_ms_per_image": round(1000 * cpu / args.count, 2),
                "images_per_s_2_idle_cores_bound": round(2 * args.count / cpu, 1),
                "load_avg_1min": round(os.getloadavg()[0], 2),
            }
        )
    return {"bench": "synth", "machine": machine_info(), "rows": rows}
