"""The landmark network with the mesh head attached: one forward per hand crop gives the
network's own outputs and the head's metric mesh (issue 21).

The backbone is converted from the installed wheel at first use
(:func:`hand_pose_ros.handnets.converter.build_torch_network`; never shipped); the head's
weights are ours (``hand_pose_ros/weights/landmark_mesh_head_full.pt`` + ``.json``).
:class:`LandmarkMeshEstimator` runs palm detection -> ROI -> this network on a frame and
returns camera-frame joints and mesh per hand.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hand_pose_ros.estimation.landmark_mesh_head import (
    CROP_SIZE,
    FEATURE_TAPS,
    LandmarkMeshHead,
    LandmarkMeshHeadConfig,
    lift_to_camera,
)

#: The shipped head (fp16 state dict) and its manifest beside it (``.json``).
DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "landmark_mesh_head_full.pt"

#: Output names of :class:`LandmarkMeshNet`, in order.
OUTPUT_NAMES = ("landmarks", "presence", "handedness", "world_landmarks", "mesh_uv", "mesh_z",
                "mesh_scale", "mesh_confidence")  # fmt: skip


def load_mesh_head(path: str | Path = DEFAULT_WEIGHTS) -> LandmarkMeshHead:
    """The head from ``path`` (fp16 or fp32 state dict) and its ``.json`` manifest's config,
    fp32, eval mode."""
    path = Path(path)
    manifest = path.with_suffix(".json")
    if not path.is_file() or not manifest.is_file():
        raise FileNotFoundError(f"mesh head weights {path} or manifest {manifest} missing")
    cfg = LandmarkMeshHeadConfig.from_dict(json.loads(manifest.read_text())["config"])
    head = LandmarkMeshHead(cfg)
    state = torch.load(path, map_location="cpu", weights_only=True)
    head.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return head.eval()


class LandmarkMeshNet(nn.Module):
    """(B, 3, 224, 224) RGB in [0, 1] -> the landmark outputs + the head's outputs, in
    :data:`OUTPUT_NAMES` order, from one backbone pass.

    Args:
        backbone: the converted landmark network (``TfliteNet``).
        head: the mesh head (its ``cfg.backbone`` names the taps).
    """

    def __init__(self, backbone: nn.Module, head: LandmarkMeshHead) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head
        taps = FEATURE_TAPS[head.cfg.backbone]
        self.tap_names = [taps[k][0] for k in ("f28", "f14", "f7")]

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outs, feats = self.backbone.forward_with_features(image, self.tap_names)
        f28, f14, f7 = (feats[n] for n in self.tap_names)
        mesh = self.head(f28, f14, f7.mean((2, 3)), outs[0], outs[3])
        return (*outs[:4], mesh.uv, mesh.z, mesh.scale, mesh.confidence)


def build_landmark_mesh_net(weights: str | Path = DEFAULT_WEIGHTS) -> LandmarkMeshNet:
    """Backbone converted from the installed wheel + the head from ``weights`` (eval)."""
    from hand_pose_ros.handnets.converter import build_torch_network

    head = load_mesh_head(weights)
    net = LandmarkMeshNet(build_torch_network(head.cfg.backbone), head).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


#: Backends of :class:`LandmarkMeshRunner` (TensorRT: an FP16 engine of the combined graph).
RUNNER_BACKENDS = ("onnx", "torch", "tensorrt")


class LandmarkMeshRunner:
    """The combined network on one backend: ``runner(batch)`` -> the :data:`OUTPUT_NAMES`
    arrays (numpy), one backbone pass. A drop-in landmark network for
    :class:`~hand_pose_ros.handtrack.graph.HandTrackGraph` (its first four outputs are the
    landmark network's).

    Args:
        weights: the head's weights (manifest beside them).
        backend: ``"onnx"`` (ONNX Runtime; the graph of :func:`cached_landmark_mesh_onnx`),
            ``"torch"`` (the module) or ``"tensorrt"`` (FP16 engine of that graph, built and
            cached at first use; CUDA only, untested here: no GPU on the development machine).
        device: ``"cpu"`` or ``"cuda[:i]"`` (ONNX Runtime's CUDA provider, torch).
        threads: intra-op threads (ONNX Runtime); torch: the process-wide count.
        cache_dir: cache root (default :func:`hand_pose_ros.runtime.weights.default_cache_dir`).
    """

    input_size = CROP_SIZE

    def __init__(self, weights: str | Path = DEFAULT_WEIGHTS, backend: str = "onnx",
                 device: str = "cpu", threads: int | None = 1,
                 cache_dir: str | Path | None = None) -> None:  # fmt: skip
        if backend not in RUNNER_BACKENDS:
            raise ValueError(f"backend: one of {', '.join(RUNNER_BACKENDS)}, got {backend!r}")
        self.backend = backend
        if backend == "torch":
            if threads:
                torch.set_num_threads(threads)
            net = build_landmark_mesh_net(weights).to(device)

            def run(x: np.ndarray) -> tuple[np.ndarray, ...]:
                with torch.inference_mode():
                    out = net(torch.from_numpy(x).to(device))
                return tuple(t.float().cpu().numpy() for t in out)

            self._run = run
            return
        from hand_pose_ros.runtime.backends import exported_runner
        from hand_pose_ros.runtime.weights import default_cache_dir

        path = cached_landmark_mesh_onnx(weights, cache_dir)
        cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._run = exported_runner(backend, path, device, threads, cache / "tensorrt",
                                    output_names=OUTPUT_NAMES,
                                    read_config=_read_onnx_config)  # fmt: skip

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, ...]:
        """(B, 3, 224, 224) float32 RGB in [0, 1] -> :data:`OUTPUT_NAMES` arrays."""
        if batch.ndim != 4 or batch.shape[1:] != (3, CROP_SIZE, CROP_SIZE):
            raise ValueError(f"batch must be (B, 3, {CROP_SIZE}, {CROP_SIZE}), got {batch.shape}")
        return tuple(self._run(np.ascontiguousarray(batch, np.float32)))


def _read_onnx_config(metadata: dict[str, str], where: str) -> dict:
    """The combined graph's ``landmark_mesh_config`` record; refuses another graph."""
    if ONNX_METADATA_KEY not in metadata:
        raise ValueError(f"{where}: no {ONNX_METADATA_KEY} metadata (not a landmark mesh graph)")
    record = json.loads(metadata[ONNX_METADATA_KEY])
    if tuple(record.get("output_names", ())) != OUTPUT_NAMES:
        raise ValueError(f"{where}: outputs {record.get('output_names')}, expected "
                         f"{OUTPUT_NAMES}; delete it to rebuild")  # fmt: skip
    return record


@dataclass
class MeshHand:
    """One hand found by :class:`LandmarkMeshEstimator` (camera frame of the image, metres).

    ``joints_cam`` / ``verts_cam``: the head's points lifted with the crop geometry and K
    (wrist depth from the head's scale). ``uv``: the landmark network's 21 keypoints, frame
    pixels. ``world_cam``: the landmark network's world landmarks, turned into camera axes
    and placed by ``uv`` and K (the baseline the head is compared with).
    """

    joints_cam: np.ndarray
    verts_cam: np.ndarray
    uv: np.ndarray
    head_uv: np.ndarray
    world_cam: np.ndarray
    presence: float
    p_right: float
    score: float


class LandmarkMeshEstimator:
    """Frame -> :class:`MeshHand` per palm found (static: the palm detector on every call;
    ROIs whose hand presence is below the graph's ``min_presence`` are dropped, as there).

    Args:
        weights: the head's weights (manifest beside them).
        palm_model: palm detector name (:mod:`hand_pose_ros.handnets`).
        backend: ``"onnx"`` (ONNX Runtime, CPU: the combined graph of
            :func:`cached_landmark_mesh_onnx`) or ``"torch"``, for both networks.
        threads: torch / ORT threads.
        max_hands: hands returned, best palm first.
    """

    def __init__(self, weights: str | Path = DEFAULT_WEIGHTS, palm_model: str = "palm_full",
                 backend: str = "onnx", threads: int = 1, max_hands: int = 1) -> None:  # fmt: skip
        from hand_pose_ros.handnets import network_runner
        from hand_pose_ros.handtrack import HandTrackConfig
        from hand_pose_ros.handtrack.graph import HandTrackGraph

        if max_hands < 1:
            raise ValueError(f"max_hands: at least 1, got {max_hands}")
        if backend not in ("onnx", "torch"):
            raise ValueError(f"backend: 'onnx' or 'torch', got {backend!r}")
        torch.set_num_threads(threads)
        head_cfg = load_mesh_head(weights).cfg
        self.run, self.backend = LandmarkMeshRunner(weights, backend, threads=threads), backend
        palm = network_runner(palm_model, backend=backend, threads=threads)
        cfg = HandTrackConfig(max_hands=max_hands, palm_model=palm_model)
        self.graph = HandTrackGraph(palm, lambda x: None, cfg, palm.input_size, CROP_SIZE)
        self.max_hands = max_hands
        self.num_joints = head_cfg.num_joints

    def __call__(self, rgb: np.ndarray, K: np.ndarray) -> list[MeshHand]:
        from hand_pose_ros.estimation.detections import place_in_camera
        from hand_pose_ros.handtrack.rois import crop_rect, crop_to_frame, rect_from_palm

        K = np.asarray(K, np.float64)
        cfg = self.graph.cfg
        palms = self.graph.detect_palms(rgb)[: self.max_hands]
        rects = [rect_from_palm(p, cfg.palm_roi_scale, cfg.palm_roi_shift) for p in palms]
        keep = [i for i, r in enumerate(rects) if r.is_valid()]
        if not keep:
            return []
        crops, mats = zip(*(crop_rect(rgb, rects[i], CROP_SIZE) for i in keep), strict=True)
        x = np.ascontiguousarray(np.stack(crops).transpose(0, 3, 1, 2), np.float32) / 255.0
        inv = np.stack([np.linalg.inv(np.vstack([m, [0.0, 0.0, 1.0]]))[:2] for m in mats])
        lm, presence, handed, world, uv, z, scale, _conf = (torch.from_numpy(np.asarray(o))
                                                             for o in self.run(x))  # fmt: skip
        cam = lift_to_camera(uv.double(), z.double(), scale.double(), torch.from_numpy(inv),
                             torch.from_numpy(np.repeat(K[None], len(keep), 0)))  # fmt: skip
        out = []
        nj = self.num_joints
        for b, i in enumerate(keep):
            if float(presence[b]) < cfg.min_presence:  # as the graph: no hand in this ROI
                continue
            frame_uv = crop_to_frame(lm[b, :, :2].numpy(), mats[b])
            rot = rects[i].rotation
            c, s = np.cos(rot), np.sin(rot)
            w = world[b].numpy().astype(np.float64)
            w[:, :2] = w[:, :2] @ np.array([[c, s], [-s, c]])  # crop axes -> camera axes
            pts = cam[b].numpy().astype(np.float64)
            out.append(MeshHand(pts[:nj], pts[nj:], frame_uv,
                                crop_to_frame(uv[b, :nj].numpy(), mats[b]),
                                place_in_camera(w, frame_uv, K), float(presence[b]),
                                float(handed[b]), palms[i].score))  # fmt: skip
        return out


#: ONNX metadata key of the combined graph's config.
ONNX_METADATA_KEY = "landmark_mesh_config"


@dataclass
class _ExportConfig:
    """What :func:`export_image_model` needs of a model: input size and a config record."""

    input_size: int
    record: dict

    def to_dict(self) -> dict:
        return self.record


def export_landmark_mesh_onnx(path: str | Path, weights: str | Path = DEFAULT_WEIGHTS,
                              dynamic_batch: bool = True) -> Path:  # fmt: skip
    """One ONNX graph: image (B, 3, 224, 224) RGB in [0, 1] -> the landmark outputs and the
    mesh head's outputs (:data:`OUTPUT_NAMES`), one backbone pass. The metadata
    (``landmark_mesh_config``) records the head config, the weights' manifest and the
    backbone's source sha256. Converted from the installed wheel: keep the Apache-2.0
    ``LICENSE`` / ``NOTICE`` beside the file when redistributing it
    (:func:`hand_pose_ros.handnets.write_notice`)."""
    from hand_pose_ros.runtime.export import export_image_model

    net = build_landmark_mesh_net(weights)
    manifest = json.loads(Path(weights).with_suffix(".json").read_text())
    net.cfg = _ExportConfig(CROP_SIZE, {
        "head": net.head.cfg.to_dict(), "weights": Path(weights).name,
        "head_git_commit": manifest.get("git_commit"),
        "backbone": net.head.cfg.backbone, "backbone_sha256": net.backbone.cfg.source_sha256,
        "output_names": list(OUTPUT_NAMES)})  # fmt: skip
    return export_image_model(net, path, OUTPUT_NAMES, ONNX_METADATA_KEY, dynamic_batch)


def cached_landmark_mesh_onnx(weights: str | Path = DEFAULT_WEIGHTS,
                              cache_dir: str | Path | None = None) -> Path:  # fmt: skip
    """The combined graph for ``weights``, exported at first use to
    ``<cache>/handnets/landmark_mesh_<head sha256[:16]>_<backbone sha256[:16]>.onnx`` (with
    the Apache-2.0 ``LICENSE`` / ``NOTICE`` beside it); later calls reuse the file."""
    import hashlib
    import os
    import uuid

    from hand_pose_ros.handnets import locate_tflite, write_notice
    from hand_pose_ros.runtime.weights import default_cache_dir

    head_sha = hashlib.sha256(Path(weights).read_bytes()).hexdigest()
    backbone = load_mesh_head(weights).cfg.backbone
    folder = Path(cache_dir or default_cache_dir()) / "handnets"
    path = folder / f"landmark_mesh_{head_sha[:16]}_{locate_tflite(backbone).sha256[:16]}.onnx"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            export_landmark_mesh_onnx(tmp, weights)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        write_notice(folder)
    return path
