"""Train the landmark mesh head on cached landmark-network features (backbone frozen).

```bash
python -m hand_pose_ros.research.estimation.landmark_mesh_data --data data/lmhead/crops_train \
    --out data/lmhead/cache_train --rois-per-image 2
python -m hand_pose_ros.research.estimation.landmark_mesh_data --data data/lmhead/crops_test \
    --out data/lmhead/cache_test --rois-per-image 1 --no-jitter
python -m hand_pose_ros.research.estimation.train_landmark_mesh --train data/lmhead/cache_train \
    --val data/lmhead/cache_test --out data/lmhead/run/landmark_mesh_head_full.pt --resume
```

Resumable: a checkpoint ``OUT.ckpt`` (weights, Adam, step) is written atomically every
``--checkpoint-minutes`` and on SIGTERM; the batch order is a permutation per epoch seeded
by ``(seed, epoch)``, so a resumed run sees the batches an uninterrupted one would. Log:
``OUT.log.jsonl``. At the end: ``OUT`` (fp16 state dict) and the manifest beside it
(``OUT`` with suffix ``.json``).
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

from hand_pose_ros.estimation.landmark_mesh_head import (
    LandmarkMeshHead,
    LandmarkMeshHeadConfig,
    MeshHeadOutput,
    lift_to_camera,
    pixels_to_lixel,
    to_crop_frame,
)

#: Loss weights: lixel L1 (bins), metric L1 (cm), |log scale error|.
LOSS_WEIGHTS = {"lixel_xy": 1.0, "lixel_z": 1.0, "metric": 1.0, "scale": 5.0}


def mesh_head_loss(out: MeshHeadOutput, batch: dict[str, torch.Tensor],
                   cfg: LandmarkMeshHeadConfig) -> dict[str, torch.Tensor]:  # fmt: skip
    """Loss terms of a batch (``batch``: uv, z, points, scale, crop_to_frame, K tensors as
    cached by :mod:`landmark_mesh_data`) and their weighted ``total``."""
    lx = (pixels_to_lixel(out.uv, cfg) - pixels_to_lixel(batch["uv"], cfg)).abs().mean()
    z_bin = 2.0 * cfg.depth_range / cfg.bins
    lz = ((out.z - batch["z"]).abs() / z_bin).mean()
    cam = lift_to_camera(out.uv, out.z, out.scale, batch["crop_to_frame"], batch["K"])
    metric = 100.0 * (to_crop_frame(cam, batch["crop_to_frame"]) - batch["points"]).abs().mean()
    scale = (torch.log(out.scale) - torch.log(batch["scale"])).abs().mean()
    terms = {"lixel_xy": lx, "lixel_z": lz, "metric": metric, "scale": scale}
    terms["total"] = sum(LOSS_WEIGHTS[k] * v for k, v in terms.items())
    return terms


FEATURES = ("f28", "f14", "f7", "landmarks", "world")
TARGETS = ("uv", "z", "points", "scale", "crop_to_frame", "K")


def load_cache(folder: str | Path) -> dict[str, np.ndarray]:
    """A cache folder read into memory (features stay float16), with the landmark
    network's ``landmarks`` / ``world`` outputs recomputed from the pooled 7x7 map."""
    from hand_pose_ros.research.estimation.landmark_mesh_data import open_cache, pooled_outputs

    cache = {k: np.ascontiguousarray(v) for k, v in open_cache(folder).items()}
    cache["landmarks"], cache["world"] = pooled_outputs(cache["f7"])
    return cache


def to_batch(cache: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, torch.Tensor]:
    """Rows ``idx`` as float32 tensors."""
    return {k: torch.from_numpy(cache[k][idx].astype(np.float32)) for k in FEATURES + TARGETS}


def head_points_crop(model: LandmarkMeshHead, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """(B, P, 3) predicted wrist-relative points in the crop's axes, metres."""
    out = model(*(batch[k] for k in FEATURES))
    cam = lift_to_camera(out.uv, out.z, out.scale, batch["crop_to_frame"], batch["K"])
    return to_crop_frame(cam, batch["crop_to_frame"])


def validate(model: LandmarkMeshHead, cache: dict[str, np.ndarray], batch_size: int = 64) -> dict:
    """PA-MPJPE / PA-MPVPE / root-relative MPJPE (mm) and 2D joint error (crop px) on a cache."""
    from hand_ik import metrics

    model.eval()
    nj = model.cfg.num_joints
    preds, uvs = [], []
    with torch.no_grad():
        for lo in range(0, len(cache["uv"]), batch_size):
            b = to_batch(cache, np.arange(lo, min(lo + batch_size, len(cache["uv"]))))
            out = model(*(b[k] for k in FEATURES))
            cam = lift_to_camera(out.uv, out.z, out.scale, b["crop_to_frame"], b["K"])
            preds.append(to_crop_frame(cam, b["crop_to_frame"]).numpy())
            uvs.append(out.uv[:, :nj].numpy())
    model.train()
    pred, gt = np.concatenate(preds).astype(np.float64), cache["points"].astype(np.float64)
    uv, gt_uv = np.concatenate(uvs), cache["uv"][:, :nj]
    return {"count": len(pred),
            "pa_mpjpe_mm": float(1e3 * metrics.pa_mpjpe(pred[:, :nj], gt[:, :nj]).mean()),
            "pa_mpvpe_mm": float(1e3 * metrics.pa_mpjpe(pred[:, nj:], gt[:, nj:]).mean()),
            "mpjpe_mm": float(1e3 * metrics.root_relative_mpjpe(pred[:, :nj], gt[:, :nj]).mean()),
            "uv_err_px": float(np.linalg.norm(uv - gt_uv, axis=-1).mean())}  # fmt: skip


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _save_atomic(obj, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def train(args: argparse.Namespace) -> dict:
    from tqdm import tqdm

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    ckpt_path, log_path = Path(f"{out}.ckpt"), Path(f"{out}.log.jsonl")
    cfg = LandmarkMeshHeadConfig(channels=args.channels, bins=args.bins, z_source=args.z_source,
                                 landmark_inputs=args.landmark_inputs)
    model = LandmarkMeshHead(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    step, seconds = 0, 0.0
    if args.resume and ckpt_path.is_file():
        ck = torch.load(ckpt_path, weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, seconds = ck["step"], ck["seconds"]
    data = load_cache(args.train)
    val = load_cache(args.val) if args.val else None
    n = len(data["uv"])
    per_epoch = n // args.batch_size

    def lr_at(s: int) -> float:  # linear warm-up, cosine decay to 2 % of the peak
        if s < args.warmup:
            return args.lr * (s + 1) / args.warmup
        t = (s - args.warmup) / max(1, args.steps - args.warmup)
        return args.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))

    stop = {"flag": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(flag=True))

    def checkpoint() -> None:
        _save_atomic({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                      "seconds": seconds, "config": cfg.to_dict()}, ckpt_path)  # fmt: skip

    model.train()
    bar = tqdm(total=args.steps, initial=step, desc="mesh head", unit="step")
    last_ck, t0 = time.monotonic(), time.monotonic()
    with log_path.open("a") as log:
        while step < args.steps and not stop["flag"]:
            epoch, k = divmod(step, per_epoch)
            perm = np.random.default_rng([args.seed, epoch]).permutation(n)
            idx = np.sort(perm[k * args.batch_size:(k + 1) * args.batch_size])
            batch = to_batch(data, idx)
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            terms = mesh_head_loss(model(*(batch[k] for k in FEATURES)), batch, cfg)
            opt.zero_grad(set_to_none=True)
            terms["total"].backward()
            opt.step()
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{terms['total'].item():.3f}",
                            metric_cm=f"{terms['metric'].item():.3f}")  # fmt: skip
            if step % args.log_every == 0 or step == args.steps:
                rec = {"step": step, "lr": lr_at(step - 1),
                       **{k: round(v.item(), 5) for k, v in terms.items()}}  # fmt: skip
                if val is not None and (step % args.val_every == 0 or step == args.steps):
                    rec["val"] = validate(model, val)
                    bar.write(json.dumps(rec))
                log.write(json.dumps(rec) + "\n")
                log.flush()
            now = time.monotonic()
            if now - last_ck > 60 * args.checkpoint_minutes:
                seconds += now - t0
                t0 = last_ck = now
                checkpoint()
    seconds += time.monotonic() - t0
    checkpoint()
    bar.close()
    if step < args.steps:
        return {"stopped_at": step}
    return export(model, cfg, args, data, val, step, seconds)


def export(model: LandmarkMeshHead, cfg: LandmarkMeshHeadConfig, args: argparse.Namespace,
           data: dict, val: dict | None, step: int, seconds: float) -> dict:  # fmt: skip
    """Write ``OUT`` (fp16 state dict) and its manifest (suffix ``.json``)."""
    import datetime

    out = Path(args.out)
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    torch.save(state, out)
    train_meta = json.loads((Path(args.train) / "progress.json").read_text())
    manifest = {
        "format": "hand_pose_ros.landmark_mesh_head/1",
        "model": out.stem,
        "config": cfg.to_dict(),
        "backbone_note": "reads features of the landmark network converted at first use "
                         "(hand_pose_ros.handnets, Apache-2.0 source); no backbone weights "
                         "in this file",
        "training": {"cache": str(args.train), "data": train_meta["data"],
                     "data_seed": train_meta["data_meta"].get("seed"),
                     "images": len(np.unique(data["source_index"])), "crops": len(data["uv"]),
                     "rois_per_image": train_meta["rois_per_image"], "seed": args.seed,
                     "steps": step, "batch_size": args.batch_size, "lr": args.lr,
                     "weight_decay": args.weight_decay, "loss_weights": LOSS_WEIGHTS,
                     "seconds": round(seconds, 1), "threads": args.threads},
        "params": sum(p.numel() for p in model.parameters()),
        "metrics": {"val_cache": str(args.val), **validate(model, val)} if val else {},
        "git_commit": _git_commit(),
        "created": datetime.date.today().isoformat(),
    }
    out.with_suffix(".json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train", required=True, help="feature cache folder (training seeds)")
    p.add_argument("--val", default=None, help="feature cache folder (test seeds)")
    p.add_argument("--out", required=True, help="weights path (.pt)")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--channels", type=int, default=96)
    p.add_argument("--bins", type=int, default=56)
    p.add_argument("--z-source", choices=("pooled", "spatial"), default="pooled",
                   help="z / scale branch input (LandmarkMeshHeadConfig.z_source)")
    p.add_argument("--landmark-inputs", action="store_true",
                   help="the head also reads the landmark network's outputs "
                        "(LandmarkMeshHeadConfig.landmark_inputs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--val-every", type=int, default=500)
    p.add_argument("--checkpoint-minutes", type=float, default=2.0)
    p.add_argument("--resume", action="store_true")
    print(json.dumps(train(p.parse_args(argv)).get("metrics", {}), indent=1))


if __name__ == "__main__":
    main()
