"""On-disk format of synthetic datasets (sharded, memory-mappable) and its torch loader.

Layout of a dataset folder (format ``hand_pose_ros.synth/1``)::

    OUT/meta.json               kind, seed, split, count, shard_size, image size, config
    OUT/shard_00000/            samples [0, shard_size); one folder per shard, renamed into place
                                when complete (so an existing folder is a finished shard)
        index.npy               (N,) int64 sample indices
        images.bin + images.idx.npy   JPEG bytes, concatenated; (N + 1,) int64 byte offsets
        masks.bin + masks.idx.npy     PNG bytes (optional): 0 background/occluder, 1..2 hand,
                                      3 forearm or sleeve
        K.npy                   (N, 3, 3) float32 intrinsics of the image (pixels, OpenCV)
        hand_valid.npy          (N, H) bool, H = 1 (crops) or 2 (frames) hand slots
        kp2d.npy                (N, H, 21, 2) float32 pixels = project(K, joints_cam)
        joints_cam.npy          (N, H, 21, 3) float32 metres, camera optical frame, FreiHAND order
        verts_cam.npy           (N, H, V, 3) float32 metres, camera frame
        betas.npy               (N, H, 10) float32 shape
        pose.npy                (N, H, 45) float32 axis-angle relative to the flat template,
                                right-hand canonical form
        bio.npy                 (N, H, 23) float32 radians (hand_ik.bio_dofs order): the sampled
                                23-DoF pose that ``pose`` was made from (pose adds small
                                off-axis twists, hand_ik.pose_sampler.sample_pose45)
        global_orient.npy       (N, H, 3) float32 rotvec, canonical model frame -> camera frame
        transl.npy              (N, H, 3) float32 metres: p_cam = R p_model + transl for right
                                hands; left hands are the x -> -x mirror of that (MIRROR_X).
                                (The model's own ``transl`` argument rotates about the wrist
                                joint J0: it equals transl + R J0 - J0.)
        handedness.npy          (N, H) int8: 0 right, 1 left, -1 empty slot
        box_xyxy.npy            (N, H, 4) float32 tight box of the projected vertices (amodal)
        visibility.npy          (N, H, 21) bool: in the image and not hidden (depth test,
                                occluders)
        view.npy                (N, H, 3) float32 azimuth, elevation, roll around the hand (radians)

Empty hand slots (frames with fewer than 2 hands) hold zeros and ``handedness == -1``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np

FORMAT = "hand_pose_ros.synth/1"

#: Per-hand label arrays: name -> (trailing shape with V for the vertex count, dtype).
HAND_FIELDS: dict[str, tuple[tuple, str]] = {
    "kp2d": ((21, 2), "float32"),
    "joints_cam": ((21, 3), "float32"),
    "verts_cam": (("V", 3), "float32"),
    "betas": ((10,), "float32"),
    "pose": ((45,), "float32"),
    "bio": ((23,), "float32"),
    "global_orient": ((3,), "float32"),
    "transl": ((3,), "float32"),
    "handedness": ((), "int8"),
    "box_xyxy": ((4,), "float32"),
    "visibility": ((21,), "bool"),
    "view": ((3,), "float32"),
}


def shard_name(index: int) -> str:
    return f"shard_{index:05d}"


def write_shard(
    path: Path,
    indices: list[int],
    samples: list[dict],
    hand_slots: int,
    num_verts: int,
    jpeg_quality: int = 92,
    masks: bool = True,
) -> None:
    """Write one shard atomically (a temporary folder renamed to ``path``).

    Args:
        path: final shard folder.
        indices: sample indices. samples: generator outputs (same order).
        hand_slots: H, hand slots per sample. num_verts: V.
        jpeg_quality: JPEG quality of the stored images.
        masks: also store the label masks (PNG).
    """
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    n = len(samples)
    arrays = {}
    for name, (shape, dtype) in HAND_FIELDS.items():
        shape = tuple(num_verts if s == "V" else s for s in shape)
        arrays[name] = np.zeros((n, hand_slots, *shape), dtype)
    arrays["handedness"][:] = -1
    valid = np.zeros((n, hand_slots), bool)
    K = np.zeros((n, 3, 3), np.float32)
    blobs: dict[str, list[bytes]] = {"images": [], "masks": []}
    for i, s in enumerate(samples):
        K[i] = s["K"]
        if len(s["hands"]) > hand_slots:
            raise ValueError(
                f"sample {indices[i]} has {len(s['hands'])} hands > {hand_slots} slots"
            )
        for h, hand in enumerate(s["hands"]):
            valid[i, h] = True
            for name in HAND_FIELDS:
                arrays[name][i, h] = hand[name]
        _encode_sample(s, indices[i], jpeg_quality, masks, blobs)
    _write_blobs(tmp, blobs)
    np.save(tmp / "index.npy", np.asarray(indices, np.int64))
    np.save(tmp / "K.npy", K)
    np.save(tmp / "hand_valid.npy", valid)
    for name, arr in arrays.items():
        np.save(tmp / f"{name}.npy", arr)
    os.replace(tmp, path)


def _encode_sample(sample: dict, index: int, jpeg_quality: int, masks: bool,
                   blobs: dict[str, list[bytes]]) -> None:  # fmt: skip
    """Append the sample's JPEG image (and PNG label mask with ``masks``) to ``blobs``."""
    ok, buf = cv2.imencode(
        ".jpg", sample["image"][..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]
    )
    if not ok:
        raise RuntimeError(f"JPEG encoding failed for sample {index}")
    blobs["images"].append(buf.tobytes())
    if masks:
        ok, buf = cv2.imencode(".png", sample["mask"])
        blobs["masks"].append(buf.tobytes())


def _write_blobs(folder: Path, blobs: dict[str, list[bytes]]) -> None:
    """Each non-empty blob list as ``KEY.bin`` (concatenated) and ``KEY.idx.npy`` (offsets)."""
    for key, items in blobs.items():
        if not items:
            continue
        offsets = np.zeros(len(items) + 1, np.int64)
        offsets[1:] = np.cumsum([len(b) for b in items])
        (folder / f"{key}.bin").write_bytes(b"".join(items))
        np.save(folder / f"{key}.idx.npy", offsets)


def read_meta(root: str | Path) -> dict:
    """The ``meta.json`` of a dataset folder (raises FileNotFoundError naming the path)."""
    path = Path(root) / "meta.json"
    if not path.exists():
        raise FileNotFoundError(f"not a synthetic dataset (no meta.json): {root}")
    meta = json.loads(path.read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    return meta


class _Shard:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.index = np.load(path / "index.npy")
        self._arrays: dict[str, np.ndarray] | None = None

    def arrays(self) -> dict[str, np.ndarray]:
        if self._arrays is None:  # opened lazily (and per DataLoader worker)
            a = {
                name: np.load(self.path / f"{name}.npy", mmap_mode="r")
                for name in (*HAND_FIELDS, "K", "hand_valid")
            }
            for key in ("images", "masks"):
                if (self.path / f"{key}.bin").exists():
                    a[key] = np.memmap(self.path / f"{key}.bin", dtype=np.uint8, mode="r")
                    a[f"{key}.idx"] = np.load(self.path / f"{key}.idx.npy")
            self._arrays = a
        return self._arrays


def decode_blob(arrays: dict, key: str, i: int, flags: int) -> np.ndarray:
    off = arrays[f"{key}.idx"]
    buf = np.asarray(arrays[key][off[i] : off[i + 1]])
    img = cv2.imdecode(buf, flags)
    if img is None:
        raise ValueError(f"corrupt {key} entry {i}")
    return img


class PartIndex:
    """Global sample index over consecutive parts (shards, folders) of known lengths."""

    def __init__(self, lengths: list[int]) -> None:
        self.offsets = np.cumsum([0, *lengths])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def locate(self, i: int) -> tuple[int, int]:
        """Sample ``i`` -> (part, index within the part); IndexError outside [0, len)."""
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} samples")
        part = int(np.searchsorted(self.offsets, i, side="right") - 1)
        return part, i - int(self.offsets[part])


class SynthDataset:
    """A synthetic dataset folder as a ``torch.utils.data.Dataset`` of dicts of tensors.

    Each item: ``image`` (3, H, W) float32 in [0, 1] (RGB), ``K`` (3, 3), ``index`` (),
    the per-hand fields of :data:`HAND_FIELDS` (crops: without the hand axis;
    frames: with a leading axis of 2 plus ``hand_valid`` (2,)), and ``mask`` (H, W)
    uint8 when stored and ``with_masks``.

    Args:
        root: dataset folder written by
            :func:`hand_pose_ros.research.synth.dataset.generate_dataset`.
        with_masks: also decode the masks.
    """

    def __init__(self, root: str | Path, with_masks: bool = False) -> None:
        self.root = Path(root)
        self.meta = read_meta(self.root)
        self.shards = [_Shard(p) for p in sorted(self.root.glob("shard_?????")) if p.is_dir()]
        if not self.shards:
            raise FileNotFoundError(f"no finished shards in {self.root}")
        self.parts = PartIndex([len(s.index) for s in self.shards])
        self.with_masks = with_masks
        self.squeeze = self.meta["kind"] == "crops"

    def __len__(self) -> int:
        return len(self.parts)

    def numpy_item(self, i: int) -> dict[str, np.ndarray]:
        """Item ``i`` as numpy arrays (image (H, W, 3) uint8 RGB)."""
        s, j = self.parts.locate(i)
        shard = self.shards[s]
        a = shard.arrays()
        out = {
            "image": decode_blob(a, "images", j, cv2.IMREAD_COLOR)[..., ::-1].copy(),
            "K": np.array(a["K"][j]),
            "index": np.int64(shard.index[j]),
        }
        for name in HAND_FIELDS:
            v = np.array(a[name][j])
            out[name] = v[0] if self.squeeze else v
        if not self.squeeze:
            out["hand_valid"] = np.array(a["hand_valid"][j])
        if self.with_masks and "masks" in a:
            out["mask"] = decode_blob(a, "masks", j, cv2.IMREAD_UNCHANGED)
        return out

    def __getitem__(self, i: int) -> dict:
        return item_to_tensors(self.numpy_item(i))


def synth_data_info(specs: list[str | Path]) -> list[dict]:
    """Manifest records of synthetic training sets: ``spec``, ``kind``, ``seed``, ``split``
    and ``count`` (finished shards: a stopped run keeps those)."""
    info = []
    for spec in specs:
        ds = SynthDataset(spec)
        info.append({"spec": str(spec), "kind": ds.meta.get("kind"), "seed": ds.meta.get("seed"),
                     "split": ds.meta.get("split"), "count": len(ds)})  # fmt: skip
    return info


class ConcatSynthDataset:
    """Synthetic dataset folders read as one, in the order given (``numpy_item`` only).

    Args:
        roots: dataset folders.
        kind: the ``kind`` every folder must hold (``"crops"`` or ``"frames"``), or None.
    """

    def __init__(self, roots: list[str | Path], kind: str | None = None) -> None:
        if not roots:
            raise ValueError("roots: at least one dataset folder")
        self.datasets = [SynthDataset(r) for r in roots]
        for root, ds in zip(roots, self.datasets, strict=True):
            if kind is not None and ds.meta.get("kind") != kind:
                raise ValueError(f"{root}: a synthetic {kind} folder expected "
                                 f"(kind {ds.meta.get('kind')!r})")  # fmt: skip
        self.parts = PartIndex([len(d) for d in self.datasets])

    def __len__(self) -> int:
        return len(self.parts)

    def numpy_item(self, i: int) -> dict[str, np.ndarray]:
        """Item ``i`` of the concatenation (see :meth:`SynthDataset.numpy_item`)."""
        d, j = self.parts.locate(i)
        return self.datasets[d].numpy_item(j)


def item_to_tensors(item: dict) -> dict:
    """A numpy sample -> torch tensors; the (H, W, 3) uint8 image becomes (3, H, W) in [0, 1]."""
    import torch

    image = np.ascontiguousarray(item["image"].transpose(2, 0, 1))
    out = {"image": torch.from_numpy(image).float() / 255.0}
    for key, value in item.items():
        if key != "image":
            out[key] = torch.as_tensor(np.asarray(value))
    return out
