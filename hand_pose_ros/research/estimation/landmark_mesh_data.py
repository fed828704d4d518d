"""Training data of the landmark mesh head: synthetic crops re-cropped in the tracking
graph's ROI convention, and the frozen landmark network's features cached to disk.

Per rendered 256 px crop (``hand-teleop synth --kind crops``) and per ROI draw: the ROI is
the graph's tracking ROI from the labelled 2D joints (:func:`rect_from_landmarks`: 2.0 x
the palm's landmark box, shifted 0.1 toward the fingers, upright), jittered in scale,
centre and rotation so that palm-detector ROIs are covered too; the 224 px crop is
:func:`crop_rect` of it (black outside the image). Targets (P = 21 joints + 778 vertices):
crop pixels, wrist-relative camera depth (m), wrist-relative points in the crop's axes (m)
and the scale (m per crop pixel at the wrist's depth).

The cache (a git-ignored folder) holds ``.npy`` memmaps, filled in order and resumable:
``progress.json`` records how many rows are complete.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hand_pose_ros.estimation.landmark_mesh_head import CROP_SIZE, FEATURE_TAPS
from hand_pose_ros.handtrack.rois import RotatedRect, crop_rect, rect_from_landmarks


@dataclass
class RoiJitter:
    """Random ROI perturbation around the tracking ROI (fractions of the ROI side)."""

    log_scale_std: float = 0.12
    """Std of log(ROI size factor) (palm-detector ROIs are ~10-25 % larger)."""
    shift_std: float = 0.05
    """Std of the centre shift along each crop axis, fraction of the ROI side."""
    rotation_std_deg: float = 10.0
    """Std of the extra in-plane rotation, degrees."""

    def __post_init__(self) -> None:
        for name in ("log_scale_std", "shift_std", "rotation_std_deg"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: non-negative, got {getattr(self, name)}")


def sample_roi(kp2d: np.ndarray, rng: np.random.Generator | None, jitter: RoiJitter) -> RotatedRect:
    """The graph's tracking ROI of (21, 2) labelled keypoints, jittered with ``rng`` (None:
    no jitter)."""
    rect = rect_from_landmarks(kp2d)
    if rng is None:
        return rect
    side = rect.width * math.exp(rng.normal(0.0, jitter.log_scale_std))
    c, s = math.cos(rect.rotation), math.sin(rect.rotation)
    dx, dy = rng.normal(0.0, jitter.shift_std, 2) * rect.width
    return RotatedRect(rect.cx + c * dx - s * dy, rect.cy + s * dx + c * dy, side, side,
                       rect.rotation + math.radians(rng.normal(0.0, jitter.rotation_std_deg)))


def crop_targets(image: np.ndarray, K: np.ndarray, joints: np.ndarray, verts: np.ndarray,
                 rect: RotatedRect) -> dict[str, np.ndarray]:  # fmt: skip
    """The 224 px crop of ``rect`` and its targets.

    Args:
        image: (H, W, 3) uint8 RGB. K: (3, 3). joints: (21, 3), verts: (V, 3) camera metres.

    Returns:
        ``crop`` (224, 224, 3) uint8, ``crop_to_frame`` (2, 3), ``uv`` (P, 2) crop px,
        ``z`` (P,) wrist-relative depth m, ``points`` (P, 3) wrist-relative crop-axes m,
        ``scale`` () m per crop px at the wrist's depth.
    """
    crop, m = crop_rect(image, rect, CROP_SIZE)
    pts = np.concatenate([joints, verts]).astype(np.float64)
    proj = pts @ np.asarray(K, np.float64).T
    frame_uv = proj[:, :2] / proj[:, 2:3]
    uv = frame_uv @ m[:, :2].T + m[:, 2]
    k = math.sqrt(abs(np.linalg.det(m[:, :2])))  # crop px per frame px
    rot = m[:, :2] / k  # frame axes -> crop axes
    rel = pts - pts[0]
    points = np.concatenate([rel[:, :2] @ rot.T, rel[:, 2:]], 1)
    inv = np.linalg.inv(np.vstack([m, [0.0, 0.0, 1.0]]))[:2]
    f = 0.5 * (K[0, 0] + K[1, 1])
    return {"crop": crop, "crop_to_frame": inv.astype(np.float32), "uv": uv.astype(np.float32),
            "z": rel[:, 2].astype(np.float32), "points": points.astype(np.float32),
            "scale": np.float32(pts[0, 2] / (f * k))}  # fmt: skip


#: Arrays of a cache row besides the features: name -> (per-row shape, dtype).
def _target_specs(points: int) -> dict[str, tuple[tuple[int, ...], str]]:
    return {"uv": ((points, 2), "float32"), "z": ((points,), "float32"),
            "points": ((points, 3), "float32"), "scale": ((), "float32"),
            "crop_to_frame": ((2, 3), "float32"), "K": ((3, 3), "float32"),
            "left": ((), "bool"), "source_index": ((), "int64")}  # fmt: skip


def _feature_specs(backbone: str) -> dict[str, tuple[tuple[int, ...], str]]:
    taps = FEATURE_TAPS[backbone]
    return {"f28": (taps["f28"][1], "float16"), "f14": (taps["f14"][1], "float16"),
            "f7": ((taps["f7"][1][0],), "float16")}  # f7 cached pooled  # fmt: skip


def pooled_outputs(pooled: np.ndarray, backbone: str = "landmark_full",
                   batch: int = 1024) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The landmark network's ``landmarks`` (N, 21, 3) crop px and ``world_landmarks``
    (N, 21, 3) m from cached pooled 7x7 maps (N, 1152): both are one fully connected layer
    on that vector, so they need no second backbone pass."""
    import torch

    from hand_pose_ros.handnets.converter import build_torch_network

    net = build_torch_network(backbone)
    # The output layers: the ops producing the network's outputs (registry order:
    # landmarks, presence, handedness, world landmarks).
    producer = {out: op for op, out in zip(net.ops, net._op_outputs, strict=True)}
    fc_lm, fc_world = producer[net._outputs[0]], producer[net._outputs[3]]
    lms, worlds = [], []
    with torch.no_grad():
        for lo in range(0, len(pooled), batch):
            x = torch.from_numpy(np.asarray(pooled[lo:lo + batch], np.float32))
            lms.append(fc_lm(x).reshape(-1, 21, 3).numpy())
            worlds.append(fc_world(x).reshape(-1, 21, 3).numpy())
    return np.concatenate(lms), np.concatenate(worlds)


def open_cache(folder: str | Path, mode: str = "r") -> dict[str, np.ndarray]:
    """Memmaps of a finished (or partly filled) cache, cut to its completed rows."""
    folder = Path(folder)
    meta = json.loads((folder / "progress.json").read_text())
    done = meta["done"]
    return {p.stem: np.load(p, mmap_mode=mode)[:done] for p in sorted(folder.glob("*.npy"))}


def build_cache(data: str | Path, out: str | Path, rois_per_image: int = 2, seed: int = 0,
                batch_size: int = 16, jitter: RoiJitter | None = None, limit: int | None = None,
                backbone: str = "landmark_full") -> dict:  # fmt: skip
    """Crop every rendered image ``rois_per_image`` times and cache backbone features and
    targets under ``out`` (resumable). The first ROI of an image is unjittered when
    ``jitter`` is None. Returns the progress record."""
    import torch
    from tqdm import tqdm

    from hand_pose_ros.handnets.converter import build_torch_network
    from hand_pose_ros.research.synth.shards import SynthDataset

    ds = SynthDataset(data)
    n_img = len(ds) if limit is None else min(limit, len(ds))
    rows = n_img * rois_per_image
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    progress_path = out / "progress.json"
    record = {"data": str(data), "data_meta": ds.meta, "rois_per_image": rois_per_image,
              "seed": seed, "rows": rows, "backbone": backbone,
              "jitter": None if jitter is None else vars(jitter), "done": 0}  # fmt: skip
    if progress_path.is_file():
        old = json.loads(progress_path.read_text())
        if {k: v for k, v in old.items() if k != "done"} != {k: v for k, v in record.items()
                                                              if k != "done"}:  # fmt: skip
            raise ValueError(f"{out}: a cache with other settings exists; use a new folder")
        record["done"] = old["done"]
    item0 = ds.numpy_item(0)
    points = 21 + len(item0["verts_cam"])
    specs = {**_feature_specs(backbone), **_target_specs(points)}
    arrays = {}
    for name, (shape, dtype) in specs.items():
        path = out / f"{name}.npy"
        mode = "r+" if path.is_file() else "w+"
        arrays[name] = np.lib.format.open_memmap(path, mode=mode, dtype=dtype,
                                                 shape=(rows, *shape))  # fmt: skip
    net = build_torch_network(backbone).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    taps = FEATURE_TAPS[backbone]
    names = [taps[k][0] for k in ("f28", "f14", "f7")]
    bar = tqdm(total=rows, initial=record["done"], desc="landmark features", unit="crop")
    start = record["done"]
    for lo in range(start - start % batch_size, rows, batch_size):
        hi = min(rows, lo + batch_size)
        if hi <= record["done"]:
            continue
        crops = []
        for r in range(lo, hi):
            i, j = divmod(r, rois_per_image)
            item = ds.numpy_item(i)
            rng = np.random.default_rng([seed, i, j])
            jit = jitter if jitter is not None else (RoiJitter() if j else None)
            rect = sample_roi(item["kp2d"], rng if jit is not None else None, jit or RoiJitter())
            t = crop_targets(item["image"], item["K"], item["joints_cam"], item["verts_cam"], rect)
            crops.append(t["crop"])
            for name in ("uv", "z", "points", "scale", "crop_to_frame"):
                arrays[name][r] = t[name]
            arrays["K"][r] = item["K"]
            arrays["left"][r] = int(item.get("handedness", 0)) == 1
            arrays["source_index"][r] = i
        x = torch.from_numpy(np.stack(crops).transpose(0, 3, 1, 2).astype(np.float32) / 255.0)
        with torch.no_grad():
            feats = net.features(x, names)
        arrays["f28"][lo:hi] = feats[names[0]].numpy().astype(np.float16)
        arrays["f14"][lo:hi] = feats[names[1]].numpy().astype(np.float16)
        arrays["f7"][lo:hi] = feats[names[2]].mean((2, 3)).numpy().astype(np.float16)
        for a in arrays.values():
            a.flush()
        record["done"] = hi
        tmp = progress_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=1))
        tmp.replace(progress_path)
        bar.update(hi - max(lo, bar.n))
    bar.close()
    return record


def main(argv: list[str] | None = None) -> None:
    import argparse

    import torch

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="synthetic crops folder")
    p.add_argument("--out", required=True, help="cache folder (git-ignored, e.g. data/...)")
    p.add_argument("--rois-per-image", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--limit", type=int, default=None, help="first N images only")
    p.add_argument("--no-jitter", action="store_true", help="tracking ROIs as they are (test)")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    rec = build_cache(a.data, a.out, a.rois_per_image, a.seed, a.batch_size,
                      RoiJitter(0.0, 0.0, 0.0) if a.no_jitter else None, a.limit)  # fmt: skip
    print(json.dumps({k: rec[k] for k in ("rows", "done", "rois_per_image")}))


if __name__ == "__main__":
    main()
