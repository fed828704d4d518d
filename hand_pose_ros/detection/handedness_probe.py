"""Handedness from the mesh estimator's own features: a mirror-antisymmetric linear probe.

The shipped mesh estimator is a right-hand expert (left hands reach it mirrored), so its
features respond differently to a hand and to the mirror image of that hand. The probe reads
``d(x) = phi(x) - phi(mirror x)``, where ``phi`` concatenates the global-average-pooled
features of its pose backbone, its mesh backbone and its early (stride 4) stage, and its 21
per-joint confidences; then ``P(left) = sigmoid(w . (d / scale))``, no bias. Since
``d(mirror x) = -d(x)``, ``P(left | mirror x) = 1 - P(left | x)`` holds exactly: mirroring a
crop always flips the answer, as it flips the side of the hand.

The estimator stays frozen; only ``w`` (one weight per feature) is fitted, by L2-regularised
logistic regression on our synthetic crops (``hand-teleop train handedness-probe``), with the
L2 weight picked on a held-out part of the training crops. A single left-vs-right logit
trained end to end stayed at chance in our CPU runs (see
:mod:`hand_pose_ros.detection.handedness`); these frozen features carry the side.

The probe is tied to the exact estimator weights it was fitted on: the manifest records their
SHA-256 and loading refuses other weights.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from hand_pose_ros.detection.config import config_from_dict
from hand_pose_ros.estimation.mesh_estimator import SHIPPED_ESTIMATOR, build_network
from hand_pose_ros.runtime.weights import WEIGHTS_DIR

#: Shipped probe weights (``{name}.pt`` and its ``{name}.json`` manifest in the weights folder).
DEFAULT_PROBE = f"handedness_probe_{SHIPPED_ESTIMATOR}"
#: ``format`` of a probe manifest.
PROBE_FORMAT = "hand_pose_ros.handedness_probe/1"
#: L2 weights tried when fitting (on features scaled to unit RMS).
DEFAULT_L2 = (1e-1, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4)


@dataclass
class HandednessProbeConfig:
    """A probe: which mesh estimator it reads, its input side and feature count."""

    name: str = DEFAULT_PROBE
    estimator: str = SHIPPED_ESTIMATOR
    """Registered mesh estimator variant whose frozen features the probe reads."""
    input_size: int = 128
    """Square crop side, pixels (the estimator's input size)."""
    features: int = 0
    """Length of ``phi`` (set from the estimator when built)."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> HandednessProbeConfig:
        return config_from_dict(cls, data, "handedness probe")


def create_handedness_probe(cfg: HandednessProbeConfig | None = None, net=None):
    """A probe around ``net`` (default: the mesh estimator ``cfg.estimator`` with its shipped
    weights), with zero weights (P(left) = 0.5) until fitted or loaded."""
    from hand_pose_ros.detection.handedness_model import HandednessProbe

    cfg = cfg or HandednessProbeConfig()
    if net is None:
        net = build_network(cfg.estimator, WEIGHTS_DIR / f"{cfg.estimator}.pt")
    return HandednessProbe(cfg, net)


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def default_probe_weights() -> Path:
    return WEIGHTS_DIR / f"{DEFAULT_PROBE}.pt"


def build_handedness_probe(weights: str | Path):
    """The probe of ``weights`` (``{"weight", "scale"}``) and the manifest beside it, around
    the estimator weights the manifest names; ValueError if those are not the ones it was
    fitted on."""
    import torch

    weights = Path(weights)
    manifest_path = weights.with_suffix(".json")
    if not weights.is_file() or not manifest_path.is_file():
        raise FileNotFoundError(f"handedness probe weights or manifest not found: {weights} "
                                "(hand-teleop train handedness-probe)")  # fmt: skip
    manifest = json.loads(manifest_path.read_text())
    cfg = HandednessProbeConfig.from_dict(manifest["config"])
    estimator_path = WEIGHTS_DIR / f"{cfg.estimator}.pt"
    if file_sha256(estimator_path) != manifest["estimator_sha256"]:
        raise ValueError(f"{weights}: fitted on other {cfg.estimator} weights than "
                         f"{estimator_path}; refit it (hand-teleop train handedness-probe)")
    probe = create_handedness_probe(cfg)
    state = torch.load(weights, map_location="cpu", weights_only=True)
    probe.weight.copy_(state["weight"].float())
    probe.scale.copy_(state["scale"].float())
    return probe.eval()


# -- fitting ---------------------------------------------------------------------------------


def mirror_differences(probe, crops: list[np.ndarray], batch_size: int = 64,
                       quiet: bool = False) -> np.ndarray:  # fmt: skip
    """(N, D) unscaled ``d`` of (S, S, 3) uint8 RGB crops of the probe's input size."""
    import torch
    from tqdm import tqdm

    from hand_pose_ros.detection.postprocess import to_batch

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
    from hand_pose_ros.detection.handedness_train import add_crops_data_arguments

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

    from hand_pose_ros.detection.handedness import HandednessClassifier
    from hand_pose_ros.detection.handedness_train import HandednessTrainSet, evaluate_handedness
    from hand_pose_ros.synth.shards import synth_data_info

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
