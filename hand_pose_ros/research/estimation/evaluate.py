"""Accuracy of hand estimators on labelled crops (seed 002 Tables 2-3 style metrics).

Evaluation sets (:func:`open_eval_set`):

- a synthetic crops folder (``hand-teleop synth --kind crops``; left hands flagged);
- ``freihand:PATH`` (its ``evaluation`` split when present, else ``training``);
- a folder in the layout of ``handgraph_dev`` (``labels.npz`` with ``joints_cam_cm``,
  ``K_crop256``, ``image_path``; images under the folder). It has no handedness label:
  the hand side is read from the chirality of the labelled joints
  (:func:`chirality_is_left`).

Metrics (:func:`accuracy_metrics`, via :mod:`hand_ik.metrics`): PA-MPJPE and
root-relative MPJPE (mm), PA-MPVPE and F@5/F@15 mm on the Procrustes-aligned mesh
where a mesh label exists, 2D PCK at fractions of the crop side, AUC of PCK on
[0, 0.12], the share of crops with a valid prediction; accuracy is over valid crops.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hand_ik import metrics
from hand_pose_ros.crop import estimate_right_canonical
from hand_pose_ros.estimation.prepost import postprocess, preprocess
from hand_pose_ros.research.estimation.train_data import project
from hand_pose_ros.research.synth.freihand import FreiHANDDataset
from hand_pose_ros.research.synth.shards import SynthDataset
from hand_pose_ros.viz.overlay import draw_hand_keypoints, put_label

#: PCK thresholds, fractions of the crop side.
PCK_THRESHOLDS: tuple[float, ...] = (0.04, 0.06, 0.08, 0.10, 0.12)


@dataclass
class EvalItem:
    """One labelled crop (camera frame of the crop, metres)."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    K: np.ndarray  # (3, 3)
    joints_cam: np.ndarray  # (21, 3)
    verts_cam: np.ndarray | None  # (V, 3) or None
    left: bool


@dataclass
class Prediction:
    """An estimator's answer for one crop, in the crop's own (unmirrored) frame."""

    joints_cam: np.ndarray  # (21, 3) metres
    uv: np.ndarray  # (21, 2) crop pixels
    verts_cam: np.ndarray | None = None  # (V, 3) metres


class EvalSet:
    """A list-like set of :class:`EvalItem` (loaded lazily)."""

    def __init__(self, name: str, kind: str, count: int,
                 get: Callable[[int], EvalItem]) -> None:  # fmt: skip
        self.name, self.kind, self.count, self._get = name, kind, count, get

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> EvalItem:
        return self._get(i)

    def __iter__(self) -> Iterator[EvalItem]:
        return (self._get(i) for i in range(self.count))


def chirality_is_left(joints: np.ndarray) -> np.ndarray:
    """(N, 21, 3) joints -> (N,) bool: True for a left hand.

    The palm frame (index MCP - little MCP) x (middle MCP - wrist) points to the side the
    fingers curl towards for one chirality and away for the other; on our synthetic
    crops the sign matches the handedness label for ~90% of poses (flat hands are ambiguous),
    so use it for a whole set (majority), not per crop.
    """
    j = np.asarray(joints, np.float64)
    z = np.cross(j[:, 5] - j[:, 17], j[:, 9] - j[:, 0])
    curl = (j[:, [8, 12, 16, 20]] - j[:, [5, 9, 13, 17]]).mean(1)
    return (z * curl).sum(-1) < 0


def _from_item(item: dict) -> EvalItem:
    verts = np.asarray(item["verts_cam"], np.float64)
    return EvalItem(item["image"], np.asarray(item["K"], np.float64),
                    np.asarray(item["joints_cam"], np.float64),
                    verts if np.isfinite(verts).all() else None,
                    int(item.get("handedness", 0)) == 1)  # fmt: skip


def open_eval_set(spec: str | Path) -> EvalSet:
    """Evaluation set from a spec (see the module docstring)."""
    spec = str(spec)
    if spec.startswith("freihand:"):
        root = Path(spec.split(":", 1)[1])
        split = "evaluation" if (root / "evaluation_xyz.json").exists() else "training"
        ds = FreiHANDDataset(root, split=split)
        return EvalSet(f"freihand:{split}", "freihand", len(ds),
                       lambda i: _from_item(ds.numpy_item(i)))  # fmt: skip
    root = Path(spec)
    if (root / "labels.npz").is_file():
        import cv2

        lab = np.load(root / "labels.npz")
        joints = lab["joints_cam_cm"].astype(np.float64) / 100.0
        kc = lab["K_crop256"].astype(np.float64)
        left = bool(chirality_is_left(joints).mean() > 0.5)

        def get(i: int) -> EvalItem:
            path = root / str(lab["image_path"][i])
            img = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if img is None:
                raise FileNotFoundError(f"cannot read {path}")
            K = np.array([[kc[i, 0], 0.0, kc[i, 2]], [0.0, kc[i, 1], kc[i, 3]], [0.0, 0.0, 1.0]])
            return EvalItem(np.ascontiguousarray(img[..., ::-1]), K, joints[i], None, left)

        return EvalSet(root.name, "real_crops", len(joints), get)

    ds = SynthDataset(root)
    return EvalSet(root.name, f"synth_{ds.meta.get('split', '?')}", len(ds),
                   lambda i: _from_item(ds.numpy_item(i)))  # fmt: skip


def estimator_predictor(estimate: Callable, root_depth: str = "gt") -> Callable:
    """Wrap ``estimate(crop, K, root_depth) -> HandObservation`` (right-hand canonical) into
    ``predict(item) -> Prediction``: left hands are mirrored in and out.

    Args:
        root_depth: ``"gt"`` gives the labelled wrist depth (root-relative metrics then
            measure the network alone), ``"estimate"`` lets the estimator guess it.
    """
    if root_depth not in ("gt", "estimate"):
        raise ValueError(f"root_depth: 'gt' or 'estimate', got {root_depth!r}")

    def predict(item: EvalItem) -> Prediction | None:
        depth = float(item.joints_cam[0, 2]) if root_depth == "gt" else None
        obs = estimate_right_canonical(lambda crop, K: estimate(crop, K, depth),
                                       item.image, item.K, item.left)  # fmt: skip
        joints, verts, uv = obs.joints_cam, obs.verts_cam, obs.uv
        if not (np.isfinite(joints).all() and np.isfinite(uv).all()):
            return None
        return Prediction(joints, uv, verts)

    return predict


def network_estimate(model) -> Callable:
    """``estimate(crop, K, root_depth)`` of a torch network (eval mode, no runtime wrapper)."""
    import torch

    cfg = model.cfg
    device = next(model.parameters()).device

    def estimate(crop, K, root_depth):
        x = torch.from_numpy(preprocess([crop], cfg.input_size)).to(device)
        with torch.no_grad():
            out = model(x)
        return postprocess(out.joints[0].cpu().numpy(), out.vertices[0].cpu().numpy(),
                           out.joint_confidence[0].cpu().numpy(), crop.shape[:2], K, cfg,
                           root_depth)  # fmt: skip

    return estimate


def _model_mesh(pred: Prediction, model) -> np.ndarray | None:
    """The prediction's mesh if it has the hand model's vertex count (else None: another
    topology cannot be fitted)."""
    verts = pred.verts_cam
    return verts if verts is not None and verts.shape[0] == model.num_vertices else None


def ik_predictor(predict: Callable, solver, post_opt: bool = True,
                 image: bool = True) -> Callable:  # fmt: skip
    """Seed 002 Table 5's last row: the estimator's joints (and mesh) through the IK net and
    the post-optimization; the prediction becomes the fitted hand model's joints and mesh.
    ``image``: the post-optimization also fits the estimator's 2D keypoints (with the
    crop's K; its weight: the solver's ``reprojection_weight``)."""
    def predict_ik(item: EvalItem) -> Prediction | None:
        pred = predict(item)
        if pred is None:
            return None
        verts = _model_mesh(pred, solver.model)
        state = solver.solve(pred.joints_cam[None], None if verts is None else verts[None],
                             post_opt=post_opt,
                             handedness="left" if item.left else "right",
                             image_points=pred.uv if image else None,
                             K=item.K if image else None)  # fmt: skip
        if not bool(np.asarray(state.valid)[0]):
            return None
        joints = np.asarray(state.joints[0], np.float64)
        fitted = None
        if verts is not None and state.vertices is not None:
            fitted = np.asarray(state.vertices[0], np.float64)
        return Prediction(joints, project(joints, item.K), fitted)

    return predict_ik


def ik_stage_predictor(predict: Callable, stage) -> Callable:
    """The IK node's path: the estimator's keypoints through ``stage``
    (:class:`~hand_pose_ros.pipeline.stages.IKStage`: its keypoint convention -> our
    model's for the 3D keypoints, the 2D ones as given, IK net, post-optimization with the
    crop's K, as the node runs it on each new hand; the estimator's mesh when the stage
    fits it). The prediction is the fitted hand's own keypoints (our model's: the hand
    that drives the robot), their projection, and the fitted mesh."""

    def predict_stage(item: EvalItem) -> Prediction | None:
        pred = predict(item)
        if pred is None:
            return None
        side = "left" if item.left else "right"
        stage.reset()  # every crop is a new hand: no warm start
        verts = _model_mesh(pred, stage.model)
        state = stage.solve(pred.joints_cam, side, image_points=pred.uv, K=item.K,
                            vertices=verts)  # fmt: skip
        if not bool(np.asarray(state.valid)[0]):
            return None
        joints = np.asarray(state.joints[0], np.float64)
        fitted = None if state.vertices is None else np.asarray(state.vertices[0], np.float64)
        return Prediction(joints, project(joints, item.K), fitted)

    return predict_stage


def mediapipe_predictor(hands, reset: Callable[[], None] | None = None) -> Callable:
    """``predict(item)`` for a full-frame estimator such as
    :class:`~hand_pose_ros.estimation.mediapipe_hands.MediaPipeHands` or the handtrack graph
    (run on the unmirrored crop with its K; the most confident hand; None if none found).
    ``reset`` is called before each item, so a tracking estimator sees every crop as a new
    image."""

    def predict(item: EvalItem) -> Prediction | None:
        if reset is not None:
            reset()
        found = hands(item.image, item.K)
        if not found:
            return None
        best = max(found, key=lambda d: d.score)
        return Prediction(np.asarray(best.camera_points, np.float64),
                          np.asarray(best.image_points, np.float64))  # fmt: skip

    return predict


def accuracy_metrics(pred_j: np.ndarray, gt_j: np.ndarray, pred_uv: np.ndarray,
                     gt_uv: np.ndarray, crop_size: np.ndarray,
                     pred_v: np.ndarray | None = None,
                     gt_v: np.ndarray | None = None) -> dict:  # fmt: skip
    """Metrics of N valid predictions.

    Args:
        pred_j, gt_j: (N, 21, 3) joints, metres. pred_uv, gt_uv: (N, 21, 2) pixels.
        crop_size: (N,) crop side in pixels (PCK thresholds are fractions of it).
        pred_v, gt_v: optional (N, V, 3) vertices, metres (same topology for PA-MPVPE).
    """
    out: dict = {
        "pa_mpjpe_mm": float(1e3 * metrics.pa_mpjpe(pred_j, gt_j).mean()),
        "mpjpe_mm": float(1e3 * metrics.root_relative_mpjpe(pred_j, gt_j).mean()),
    }
    if pred_v is not None and gt_v is not None:
        aligned = metrics.procrustes_align(pred_v, gt_v)
        out["pa_mpvpe_mm"] = float(1e3 * metrics.mpjpe(aligned, gt_v).mean())
        out["f_5mm"] = float(metrics.f_score(aligned, gt_v, 0.005).mean())
        out["f_15mm"] = float(metrics.f_score(aligned, gt_v, 0.015).mean())
    for t, v in metrics.pck(pred_uv, gt_uv, PCK_THRESHOLDS, crop_size).items():
        out[f"pck_{t:.2f}"] = v
    out["auc"] = metrics.auc(pred_uv, gt_uv, crop_size, max_threshold=0.12)
    return out


def evaluate(predict: Callable[[EvalItem], Prediction | None], data: EvalSet,
             limit: int | None = None, desc: str | None = None) -> dict:  # fmt: skip
    """Run ``predict`` on (the first ``limit``) items of ``data``; metrics + timing.

    A progress bar (``desc``: its label, default the set's name) goes to stderr when that
    is a terminal.
    """
    from tqdm import tqdm

    n = len(data) if limit is None else min(limit, len(data))
    pj, gj, pu, gu, size, pv, gv, times = [], [], [], [], [], [], [], []
    has_mesh = True
    for i in tqdm(range(n), desc=desc or data.name, unit="crop", disable=None, leave=False):
        item = data[i]
        t0 = time.perf_counter()
        pred = predict(item)
        times.append(1e3 * (time.perf_counter() - t0))
        if pred is None:
            continue
        pj.append(pred.joints_cam)
        gj.append(item.joints_cam)
        pu.append(pred.uv)
        gu.append(project(item.joints_cam, item.K))
        size.append(float(max(item.image.shape[:2])))
        if pred.verts_cam is not None and item.verts_cam is not None:
            pv.append(pred.verts_cam)
            gv.append(item.verts_cam)
        else:
            has_mesh = False
    row: dict = {"data": data.name, "data_kind": data.kind, "count": n,
                 "valid_rate": len(pj) / max(n, 1)}  # fmt: skip
    if pj:
        row.update(accuracy_metrics(np.stack(pj), np.stack(gj), np.stack(pu), np.stack(gu),
                                    np.asarray(size),
                                    np.stack(pv) if has_mesh and pv else None,
                                    np.stack(gv) if has_mesh and gv else None))  # fmt: skip
    row["ms_per_frame_median"] = float(np.median(times)) if times else float("nan")
    return row


def evaluate_network(model, data: EvalSet, limit: int | None = None,
                     root_depth: str = "gt") -> dict:  # fmt: skip
    """:func:`evaluate` of a torch network (eval mode) with the labelled root depth."""
    return evaluate(estimator_predictor(network_estimate(model), root_depth), data, limit)


def prediction_sheet(data: EvalSet, predictors: dict[str, Callable],
                     count: int = 8) -> np.ndarray:  # fmt: skip
    """Contact sheet: for ``count`` crops spread over ``data``, the labelled keypoints and
    each predictor's: one row of tiles per predictor, its name and PA-MPJPE on each tile.

    Returns:
        (H, W, 3) uint8 RGB image.
    """
    picks = np.linspace(0, len(data) - 1, min(count, len(data))).round().astype(int)
    rows = []
    for name, predict in {"label": None, **predictors}.items():
        tiles = []
        for i in picks:
            item = data[int(i)]
            tile = item.image.copy()
            side = "left" if item.left else "right"
            if predict is None:
                draw_hand_keypoints(tile, project(item.joints_cam, item.K), handedness=side)
                text = f"{data.name} #{i}: label"
            else:
                pred = predict(item)
                if pred is None:
                    text = f"{name}: no hand"
                else:
                    draw_hand_keypoints(tile, pred.uv, handedness=side)
                    err = 1e3 * metrics.pa_mpjpe(pred.joints_cam[None], item.joints_cam[None])[0]
                    text = f"{name}: PA {err:.1f} mm"
            put_label(tile, text)
            tiles.append(tile)
        rows.append(tiles)
    h, w = rows[0][0].shape[:2]
    rows = [[t if t.shape[:2] == (h, w) else cv2_resize(t, (w, h)) for t in r] for r in rows]
    return np.concatenate([np.concatenate(r, axis=1) for r in rows], axis=0)


def cv2_resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)
