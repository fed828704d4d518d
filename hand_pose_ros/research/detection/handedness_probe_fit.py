"""``hand-teleop train handedness-probe``: fit the mirror-antisymmetric handedness probe
(:mod:`hand_pose_ros.detection.handedness_probe`) on synthetic crops.

``w`` (one weight per feature, no bias) by L2-regularised logistic regression on features
scaled to unit RMS; the L2 weight with the best accuracy on a held-out share is kept. The
weights and a manifest (estimator SHA-256, training data, metrics) go to the weights folder.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from hand_pose_ros.detection.handedness_probe import (
    DEFAULT_PROBE,
    PROBE_FORMAT,
    HandednessProbeConfig,
    create_handedness_probe,
    file_sha256,
)
from hand_pose_ros.detection.postprocess import to_batch
from hand_pose_ros.estimation.mesh_estimator import SHIPPED_ESTIMATOR
from hand_pose_ros.research.detection.handedness_train import (
    HandednessTrainSet,
    add_crops_data_arguments,
    evaluate_handedness,
)
from hand_pose_ros.runtime.weights import WEIGHTS_DIR

#: L2 weights tried when fitting (on features scaled to unit RMS).
DEFAULT_L2 = (1e-1, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4)


# -- fitting ---------------------------------------------------------------------------------


def mirror_differences(probe, crops: list[np.ndarray], batch_size: int = 64,
                       quiet: bool = False) -> np.ndarray:  # fmt: skip
    """(N, D) unscaled ``d`` of (S, S, 3) uint8 RGB crops of the probe's input size."""
    import torch
    from tqdm import tqdm

    out = []
    with torch.no_grad():
        for i in tqdm(range(0, len(crops), batch_size), disable=quiet, unit="batch",
                      desc="features"):  # fmt: skip
            batch = torch.from_numpy(to_batch(crops[i:i + batch_size]))
            out.append(probe.mirror_difference(batch).double().numpy())
    return np.concatenate(out) if out else np.zeros((0, probe.cfg.features))


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float, max_iter: int = 300) -> np.ndarray:
    """Weights ``w`` (no bias) minimising mean BCE(sigmoid(x @ w), y) + l2 * |w|^2 (L-BFGS)."""
    import torch
    import torch.nn.functional as F

    xt = torch.from_numpy(np.asarray(x, np.float64))
    yt = torch.from_numpy(np.asarray(y, np.float64))
    w = torch.zeros(xt.shape[1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(xt @ w, yt) + l2 * (w**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy()


def fit_probe(d: np.ndarray, left: np.ndarray, l2_values=DEFAULT_L2, val_fraction: float = 0.2,
              seed: int = 0) -> dict:  # fmt: skip
    """Fit the probe on mirror differences ``d`` (N, D) and labels ``left`` (N,) (1 = left).

    Features are scaled to unit RMS; the L2 weight with the best accuracy on a random
    ``val_fraction`` of the samples is kept and the probe refitted on all of them.
    Returns ``weight``, ``scale``, ``l2``, ``val_accuracy`` and ``train_accuracy``.
    """
    d, left = np.asarray(d, np.float64), np.asarray(left, np.float64)
    if d.ndim != 2 or len(d) != len(left) or len(d) < 10:
        raise ValueError(f"need (N, D) features and N labels, N >= 10; got {d.shape}, "
                         f"{left.shape}")  # fmt: skip
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction: in (0, 1), got {val_fraction}")
    scale = np.sqrt((d**2).mean(0)) + 1e-8
    x = d / scale
    perm = np.random.default_rng(seed).permutation(len(left))
    n_val = max(1, round(val_fraction * len(left)))
    val, train = perm[:n_val], perm[n_val:]
    best = None
    for l2 in l2_values:
        w = fit_logistic(x[train], left[train], l2)
        acc = float(((x[val] @ w > 0) == (left[val] > 0.5)).mean())
        if best is None or acc > best[0]:
            best = (acc, l2)
    w = fit_logistic(x, left, best[1])
    return {"weight": w, "scale": scale, "l2": best[1], "val_accuracy": best[0],
            "train_accuracy": float(((x @ w > 0) == (left > 0.5)).mean())}  # fmt: skip


# -- hand-teleop train handedness-probe --------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_crops_data_arguments(parser)
    parser.add_argument("--estimator", default=SHIPPED_ESTIMATOR,
                        help="mesh estimator variant (its shipped weights are read)")
    parser.add_argument("--out", default=None,
                        help=f"weights path (default: the weights folder's {DEFAULT_PROBE}.pt)")
    parser.add_argument("--val-fraction", type=float, default=0.2,
                        help="share of the training crops that picks the L2 weight")
    parser.add_argument("--seed", type=int, default=0, help="validation split seed")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import torch

    from hand_pose_ros.detection.handedness import HandednessClassifier  # cv2
    from hand_pose_ros.research.synth.shards import synth_data_info  # cv2


    torch.set_num_threads(args.threads)
    start = time.time()
    cfg = HandednessProbeConfig(name=f"handedness_probe_{args.estimator}",
                                estimator=args.estimator)  # fmt: skip
    probe = create_handedness_probe(cfg)
    data = HandednessTrainSet(args.data, probe.cfg.input_size, augment=False)
    crops, left = [], []
    for i in range(len(data)):
        image, label, _ = data.numpy_item(i)
        crops.append(image)
        left.append(label)
    fit = fit_probe(mirror_differences(probe, crops, quiet=args.quiet), np.array(left),
                    val_fraction=args.val_fraction, seed=args.seed)  # fmt: skip
    probe.weight.copy_(torch.from_numpy(fit["weight"]).float())
    probe.scale.copy_(torch.from_numpy(fit["scale"]).float())
    classifier = HandednessClassifier.from_model(probe)
    metrics = {str(spec): evaluate_handedness(classifier.left_probability, spec)
               for spec in args.test_data or []}  # fmt: skip
    out = Path(args.out) if args.out else WEIGHTS_DIR / f"{cfg.name}.pt"
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"weight": probe.weight.clone(), "scale": probe.scale.clone()}, out)
    manifest = {
        "format": PROBE_FORMAT,
        "model": cfg.name,
        "config": probe.cfg.to_dict(),
        "estimator_sha256": file_sha256(WEIGHTS_DIR / f"{cfg.estimator}.pt"),
        "training": {"data": synth_data_info(args.data), "samples": len(left),
                     "left_share": float(np.mean(left)),
                     "val_fraction": args.val_fraction, "seed": args.seed, "l2": fit["l2"],
                     "val_accuracy": round(fit["val_accuracy"], 4),
                     "train_accuracy": round(fit["train_accuracy"], 4),
                     "seconds": round(time.time() - start, 1)},
        "metrics": metrics,
        "created": time.strftime("%Y-%m-%d"),
    }  # fmt: skip
    out.with_suffix(".json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps({"weights": str(out), **manifest["training"], "metrics": metrics}))
    return 0
