"""Estimator speed per variant and backend: ms per frame at batch 1 on this machine.

Each row times :meth:`MeshEstimator.estimate` end to end (resize + normalise, network,
decoding to camera metres with a given root depth) on a fixed random crop after a
warm-up. Weights are a seeded random init (``weights: "random-init"`` in the row):
speed does not depend on them. A row is keyed by ``name`` + ``backend``.

With ``--data SPEC`` (a synthetic crops folder, ``freihand:PATH`` or a folder in the
``handgraph_dev`` layout) the rows are accuracy rows instead
(:mod:`hand_pose_ros.research.estimation.evaluate`): one per ``--weights`` file (its model
from the ``.json`` manifest beside it, else ``--models``), plus MediaPipe Hands on the
same crops when ``mediapipe`` imports (``--no-mediapipe`` skips it), and our handtrack
estimator (the real-trained palm + landmark networks on ``--backend``; ``--no-handtrack``
skips it). Both full-frame estimators see each crop as a new image (no tracking).
``--mesh-head [WEIGHTS]`` adds the mesh head on the landmark network (issue 21): its joints
and vertices (camera metres) with the landmark network's 2D keypoints from the same pass.
"""

from __future__ import annotations

import argparse

from hand_pose_ros.benchmarks.utils import machine_info, time_calls, timing_row
from hand_pose_ros.estimation.detections import CAMERA_POINTS
from hand_pose_ros.estimation.mediapipe_hands import MediaPipeHands
from hand_pose_ros.estimation.mesh_estimator import MeshEstimator

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
    parser.add_argument("--data", default=None,
                        help="accuracy on this set: synthetic crops folder, freihand:PATH or "
                             "a handgraph_dev-style folder")
    parser.add_argument("--weights", nargs="+", default=None,
                        help="trained weights (a .json manifest beside each names its model)")
    parser.add_argument("--limit", type=int, default=None, help="evaluate the first N crops")
    parser.add_argument("--root-depth", choices=("gt", "estimate"), default="gt",
                        help="wrist depth given from the label (gt) or estimated by the model")
    parser.add_argument("--no-mediapipe", action="store_true",
                        help="skip the MediaPipe Hands comparison row")
    parser.add_argument("--no-handtrack", action="store_true",
                        help="skip the handtrack estimator row (accuracy with --data)")
    parser.add_argument("--landmark-model", choices=("landmark_full", "landmark_lite"),
                        default="landmark_full", help="handtrack's landmark network")
    parser.add_argument("--camera-points", choices=CAMERA_POINTS, default="translated",
                        help="handtrack's 3D in the camera (HandTrackConfig.camera_points)")
    parser.add_argument("--roi-refinements", type=int, default=0,
                        help="handtrack: extra landmark passes on each crop's hand, each on "
                             "the ROI from the last pass's landmarks (HandTrackConfig)")
    parser.add_argument("--mirror-average", action="store_true",
                        help="handtrack: also run each ROI mirrored and average (HandTrackConfig)")
    parser.add_argument("--ik", action="store_true",
                        help="also each predictor + IK net + post-optimization (seed 002 "
                             "Table 5 last row; hand model 'open')")
    parser.add_argument("--mesh-head", nargs="?", const="default", default=None,
                        metavar="WEIGHTS",
                        help="also the mesh head on the landmark network (issue 21; the "
                             "shipped weights, or WEIGHTS): its joints and mesh, 2D from the "
                             "landmark network in the same pass")
    parser.add_argument("--sheet", default=None,
                        help="also write a PNG of labels and predictions on a few crops")


def speed_row(estimator, repeats: int, warmup: int) -> dict:
    """Timing row of one estimator on a fixed 256x256 random crop (root depth given)."""
    import os

    import numpy as np

    crop = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    k = np.array([[400.0, 0.0, 127.5], [0.0, 400.0, 127.5], [0.0, 0.0, 1.0]])
    load_before = os.getloadavg()[0]
    times = time_calls(lambda: estimator.estimate(crop, k, root_depth=0.5), repeats=repeats,
                       warmup=warmup)  # fmt: skip
    # This machine's cores are shared: the 1-minute load average tells how busy it was.
    return {**timing_row(times), "load_avg_1min_before": load_before,
            "load_avg_1min_after": os.getloadavg()[0]}  # fmt: skip


def _model_of(weights: str, fallback: list[str]) -> str:
    import json
    from pathlib import Path

    manifest = Path(weights).with_suffix(".json")
    if manifest.is_file():
        return json.loads(manifest.read_text())["model"]
    if len(fallback) != 1:
        raise ValueError(f"{weights}: no manifest beside it; name its model with one --models")
    return fallback[0]


def accuracy_rows(args: argparse.Namespace) -> list[dict]:
    """Accuracy rows on ``args.data``: each weights file, then MediaPipe Hands."""
    import logging

    from hand_pose_ros.research.estimation import evaluate as ev

    data = ev.open_eval_set(args.data)
    rows, predictors, closers, pairs = [], {}, [], []
    for weights in args.weights or []:
        name = _model_of(weights, args.models)
        est = MeshEstimator(name, backend=args.backend, weights=weights, device=args.device,
                            threads=args.threads)  # fmt: skip
        row = {"name": name, "backend": args.backend, "device": args.device,
               "input_size_px": est.cfg.input_size, "weights": str(weights),
               "root_depth": args.root_depth}  # fmt: skip
        predict = ev.estimator_predictor(est.estimate, args.root_depth)
        row.update(ev.evaluate(predict, data, args.limit, desc=name))
        rows.append(row)
        predictors[name] = predict
        pairs.append((row, predict))
    if not args.no_handtrack:
        row, predict = handtrack_row(args)
        row.update(ev.evaluate(predict, data, args.limit, desc=row["name"]))
        rows.append(row)
        predictors["handtrack"] = predict
        pairs.append((row, predict))
    if args.mesh_head:
        row, predict = mesh_head_row(args)
        row.update(ev.evaluate(predict, data, args.limit, desc=row["name"]))
        rows.append(row)
        predictors["mesh_head"] = predict
        pairs.append((row, predict))
    if not args.no_mediapipe:
        try:
            hands = MediaPipeHands(max_hands=1, static_image_mode=True)
        except ImportError as exc:
            logging.getLogger(__name__).warning("MediaPipe row skipped: %s", exc)
        else:
            import mediapipe

            row = {"name": "mediapipe_hands", "version": mediapipe.__version__,
                   "backend": "mediapipe", "device": "cpu"}  # fmt: skip
            predict = ev.mediapipe_predictor(hands)
            row.update(ev.evaluate(predict, data, args.limit, desc=row["name"]))
            rows.append(row)
            predictors["mediapipe"] = predict
            pairs.append((row, predict))
            closers.append(hands.close)
    if args.ik:
        rows += ik_rows(pairs, data, args.limit)
    if args.sheet:
        import cv2

        sheet = ev.prediction_sheet(data, predictors)
        cv2.imwrite(str(args.sheet), sheet[..., ::-1])
    for close in closers:
        close()
    return rows


def handtrack_row(args: argparse.Namespace):
    """(row head, predictor) of the handtrack graph on ``args.backend`` / ``args.device``."""
    from hand_pose_ros.handtrack import HandTrackConfig, create_hand_tracker
    from hand_pose_ros.research.estimation import evaluate as ev

    cfg = HandTrackConfig(max_hands=1, landmark_model=args.landmark_model,
                          camera_points=args.camera_points,
                          roi_refinements=args.roi_refinements,
                          mirror_average=args.mirror_average)  # fmt: skip
    graph = create_hand_tracker(cfg, backend=args.backend, device=args.device,
                                threads=args.threads or 1)  # fmt: skip
    row = {"name": "handtrack", "palm_model": cfg.palm_model,
           "landmark_model": cfg.landmark_model, "camera_points": cfg.camera_points,
           "roi_refinements": cfg.roi_refinements, "mirror_average": cfg.mirror_average,
           "backend": args.backend,
           "device": args.device}  # fmt: skip
    return row, ev.mediapipe_predictor(graph, reset=graph.reset)


def mesh_head_row(args: argparse.Namespace):
    """(row head, predictor) of the landmark network + mesh head (palm detector on each
    crop, as the handtrack row): the head's joints and mesh, the landmark network's 2D."""
    from hand_pose_ros.estimation.landmark_mesh import DEFAULT_WEIGHTS, LandmarkMeshEstimator
    from hand_pose_ros.research.estimation import evaluate as ev

    weights = DEFAULT_WEIGHTS if args.mesh_head == "default" else args.mesh_head
    backend = "torch" if args.backend == "torch" else "onnx"  # no TensorRT path yet
    est = LandmarkMeshEstimator(weights, backend=backend, threads=args.threads or 1)
    row = {"name": "landmark_mesh_head", "weights": str(weights), "backbone": "landmark_full",
           "backend": est.backend, "device": "cpu"}  # fmt: skip

    def predict(item):
        found = est(item.image, item.K)
        if not found:
            return None
        best = max(found, key=lambda h: h.score)
        return ev.Prediction(best.joints_cam, best.uv, best.verts_cam)

    return row, predict


#: The keypoint convention of each accuracy row's estimator (hand_ik/conventions.py), for
#: its ``+ik_stage`` row: the landmark networks' points, or our model's own joints.
ROW_CONVENTIONS = {"handtrack": "mediapipe", "mediapipe_hands": "mediapipe",
                   "landmark_mesh_head": "ours"}  # fmt: skip


def ik_rows(pairs: list[tuple[dict, object]], data, limit: int | None) -> list[dict]:
    """Three rows per predictor, hand model ``open``:

    - ``+ik_postopt_3d`` / ``+ik_postopt``: its joints (and mesh) straight into the IK net
      and the post-optimization, taken as our model's joints (no keypoint convention map),
      as seed 002 Table 5's last row, fitting the 3D keypoints only / also the estimator's
      2D keypoints with the crop's K (the default ``reprojection_weight``);
    - ``+ik_stage``: the IK node's own path (``IKStage``: the estimator's convention ->
      ours for the 3D keypoints, the 2D as given, IK net, post-optimization), scored on
      the fitted hand's own keypoints (our model's: what drives the robot).
    """
    import torch

    from hand_ik import load_hand_model
    from hand_ik.ik.post_opt import PostOptConfig
    from hand_ik.ik.solver import IKSolver
    from hand_pose_ros.pipeline.stages import IKStage, IKStageConfig
    from hand_pose_ros.research.estimation import evaluate as ev

    torch.set_num_threads(1)  # per-hand solves: one thread is faster on a busy CPU
    model = load_hand_model("open")
    solvers = {"+ik_postopt_3d": (IKSolver(model, post_opt=PostOptConfig(reprojection_weight=0.0)),
                                  False),
               "+ik_postopt": (IKSolver(model), True)}  # fmt: skip
    out = []
    for row, predict in pairs:
        head = {k: row[k] for k in ("name", "backend", "device") if k in row}
        for suffix, (solver, image) in solvers.items():
            weight = solver.post_optimizer.config.reprojection_weight if image else 0.0
            ik_row = {**head, "name": f"{row['name']}{suffix}", "stage": "estimator+ik+post_opt",
                      "keypoint_convention": "none", "reprojection_weight": weight}  # fmt: skip
            ik_row.update(ev.evaluate(ev.ik_predictor(predict, solver, image=image), data,
                                      limit, desc=ik_row["name"]))  # fmt: skip
            out.append(ik_row)
        convention = ROW_CONVENTIONS.get(row["name"], "ours")
        stage = IKStage(IKStageConfig(hand_model="open", keypoint_convention=convention))
        ik_row = {**head, "name": f"{row['name']}+ik_stage", "stage": "estimator+IKStage",
                  "keypoint_convention": convention,
                  "reprojection_weight": stage.config.post_opt.reprojection_weight}  # fmt: skip
        ik_row.update(ev.evaluate(ev.ik_stage_predictor(predict, stage), data, limit,
                                  desc=ik_row["name"]))  # fmt: skip
        out.append(ik_row)
    return out


def run(args: argparse.Namespace) -> dict:
    import tempfile

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.data:
        return {"bench": "estimator", "data": args.data, "machine": machine_info(),
                "rows": accuracy_rows(args)}  # fmt: skip
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
