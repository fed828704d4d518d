"""``hand-teleop export``: write an estimator, detector or handedness network as ONNX (and
optionally a TensorRT engine). ``--model`` names a registered mesh estimator or hand
detector, ``handedness`` (the crop handedness classifier), or a converted real-image hand
network (``palm_full``, ``palm_lite``, ``landmark_full``, ``landmark_lite``; written with the
Apache-2.0 LICENSE and a change NOTICE beside it)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hand_pose_ros.detection import list_detectors
from hand_pose_ros.estimation.export import export_onnx
from hand_pose_ros.estimation.mesh_estimator import build_network
from hand_pose_ros.handnets import export_network_onnx, list_networks, locate_tflite, write_notice
from hand_pose_ros.runtime.export import export_image_model, model_hash
from hand_pose_ros.runtime.tensorrt_engine import build_engine


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="export an estimator or detector to ONNX (fixed, dynamic batch) / TensorRT"
    )
    parser.add_argument("--model", required=True,
                        help="registered estimator or detector name, 'handedness', or a hand "
                             "network: palm_full, palm_lite, landmark_full, landmark_lite")
    parser.add_argument("--format", choices=("onnx", "tensorrt"), default="onnx")
    parser.add_argument("--weights", default=None,
                        help="state dict (.pt); default: random init. Hand networks: a .tflite "
                             "file; default: the installed mediapipe wheel's")
    parser.add_argument("--allow-sha-mismatch", action="store_true",
                        help="hand networks: accept a --weights .tflite that is not the pinned "
                             "mediapipe 0.10.21 file")
    parser.add_argument("--out", default="runs/export", help="output folder")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 17)")
    parser.add_argument("--num-vertices", type=int, default=None, help="hand model vertex count")
    parser.set_defaults(func=run)


def _write_exports(args: argparse.Namespace, export, stem: str) -> dict[str, str]:
    """``export(path, dynamic_batch)`` to ``args.out/stem.onnx`` (dynamic batch) and
    ``stem_b1.onnx`` (batch 1), plus the TensorRT engine with ``--format tensorrt``."""
    out = Path(args.out)
    written = {"dynamic_batch": str(export(out / f"{stem}.onnx", True)),
               "fixed_batch": str(export(out / f"{stem}_b1.onnx", False))}  # fmt: skip
    if args.format == "tensorrt":
        written["tensorrt"] = str(build_engine(written["dynamic_batch"], out / "tensorrt"))
    return written


def run_handnet(args: argparse.Namespace) -> int:
    """Export a converted hand network (dynamic and fixed batch, optional TensorRT engine)
    with LICENSE and NOTICE beside it."""
    source = locate_tflite(args.model, args.weights, args.allow_sha_mismatch)
    out = Path(args.out)
    written = _write_exports(args, lambda path, dynamic: export_network_onnx(
        source, path, dynamic, args.opset), f"{args.model}_{source.sha256[:16]}")  # fmt: skip
    if "tensorrt" in written:
        write_notice(out / "tensorrt")
    written["licence"] = [str(p) for p in write_notice(out)]
    print(json.dumps({"model": args.model, "source": str(source.path),
                      "source_sha256": source.sha256, **written}))  # fmt: skip
    return 0


def run(args: argparse.Namespace) -> int:
    if args.model in list_networks():
        return run_handnet(args)

    if args.model == "handedness":
        from hand_pose_ros.detection.handedness import (
            METADATA_KEY,
            OUTPUT_NAMES,
            build_handedness_network,
        )

        model = build_handedness_network(args.weights)

        def export(model, path, dynamic_batch, opset):
            return export_image_model(model, path, OUTPUT_NAMES, METADATA_KEY, dynamic_batch,
                                      opset)  # fmt: skip
    elif args.model in list_detectors():
        from hand_pose_ros.detection.runtime import build_detector_network, export_detector_onnx

        model = build_detector_network(args.model, args.weights)
        export = export_detector_onnx
    else:
        export = export_onnx
        overrides = {} if args.num_vertices is None else {"num_vertices": args.num_vertices}
        model = build_network(args.model, args.weights, **overrides)
    written = _write_exports(args, lambda path, dynamic: export(model, path, dynamic, args.opset),
                             f"{args.model}_{model_hash(model)}")  # fmt: skip
    print(json.dumps({"model": args.model, "random_init": args.weights is None, **written}))
    return 0
