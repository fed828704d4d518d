"""Train the IK net (23 biomechanical DoF, or the 45-parameter baseline) on CPU."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path

from hand_ik.ik.train_config import IKTrainConfig

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = IKTrainConfig()
    parser.add_argument("--rotation", choices=["bio", "pose45"], default=defaults.rotation,
                        help="23 biomechanical DoF (default) or the 45-parameter baseline")
    parser.add_argument("--hand-model", default="open",
                        help="'open' (default) or a MANO_RIGHT.pkl / model .npz path")
    parser.add_argument("--samples", type=int, default=defaults.num_samples)
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--data-seed", type=int, default=defaults.data_seed,
                        help="seed of the training data (< 1000; evaluation uses >= 1000)")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--out", type=Path, default=None,
                        help="weights file (default: hand_ik/weights/ik_<rotation>_<model>.pt)")
    parser.add_argument("--cache-dir", type=Path, default=Path("runs/ik_data"),
                        help="where generated training data is cached")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: small batches gain little from more, "
                             "and a busy CPU makes extra threads much slower)")


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from hand_ik.hand_model import load_hand_model
    from hand_ik.ik.evaluate import evaluate_ik_net
    from hand_ik.ik.train import make_ik_data, train_ik
    from hand_ik.ik.weights import WEIGHTS_DIR, save_ik_weights

    torch.set_num_threads(max(1, args.threads))
    config = IKTrainConfig(
        rotation=args.rotation, num_samples=args.samples, epochs=args.epochs,
        data_seed=args.data_seed, seed=args.seed,
    )  # fmt: skip
    model = load_hand_model(args.hand_model)
    tag = "bio23" if config.rotation == "bio" else "pose45"
    out = args.out or WEIGHTS_DIR / f"ik_{tag}_{model.name}.pt"
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    cache = args.cache_dir / f"{model.name}_seed{config.data_seed}_n{config.num_samples}.npz"
    if cache.is_file():
        data = dict(np.load(cache))
        log.info("loaded cached training data %s", cache)
    else:
        data = make_ik_data(model, config.num_samples, config.data_seed)
        np.savez_compressed(cache, **data)
    log_path = out.with_suffix(".log.jsonl")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.unlink(missing_ok=True)
    net, history = train_ik(model, config, data, log_path=log_path)
    metrics = evaluate_ik_net(model, net, rotation=config.rotation)
    save_ik_weights(net, out, model, {
        "training_config": dataclasses.asdict(config),
        "training_data": {"generator": "hand_ik.ik.train.make_ik_data", "seed": config.data_seed,
                          "samples": config.num_samples,
                          "gt_fit_keypoint_error_mm_mean":
                              float(1e3 * data["fit_error_m"].mean())},
        "final_epoch": history[-1],
        "metrics_held_out": metrics,
    })  # fmt: skip
    print(json.dumps({"weights": str(out), "metrics_held_out": metrics}, indent=2))
    return 0
