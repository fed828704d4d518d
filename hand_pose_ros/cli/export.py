"""``hand-teleop export``: write an estimator, detector or handedness network as ONNX (and
optionally a TensorRT engine). ``--model`` names a registered mesh estimator or hand
detector, or ``handedness`` (the crop handedness classifier)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="export an estimator or detector to ONNX (fixed, dynamic batch) / TensorRT"
    )
    parser.add_argument("--model", required=True,
                        help="registered estimator or detector name, or 'handedness'")
    parser.add_argument("--format", choices=("onnx", "tensorrt"), default="onnx")
    parser.add_argument("--weights", default=None, help="state dict (.pt); default: random init")
    parser.add_argument("--out", default="runs/export", help="output folder")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 17)")
    parser.add_argument("--num-vertices", type=int, default=None, help="hand model vertex count")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hand_pose_ros.detection import list_detectors
    from hand_pose_ros.estimation.runtime.export import model_hash

    if args.model == "handedness":
        from hand_pose_ros.detection.handedness import (
            METADATA_KEY,
            OUTPUT_NAMES,
            build_handedness_network,
        )
        from hand_pose_ros.estimation.runtime.export import export_image_model

        model = build_handedness_network(args.weights)

        def export(model, path, dynamic_batch, opset):
            return export_image_model(model, path, OUTPUT_NAMES, METADATA_KEY, dynamic_batch,
                                      opset)  # fmt: skip
    elif args.model in list_detectors():
        from hand_pose_ros.detection.runtime import build_detector_network, export_detector_onnx

        model = build_detector_network(args.model, args.weights)
        export = export_detector_onnx
    else:
        from hand_pose_ros.estimation.runtime.estimator import build_network
        from hand_pose_ros.estimation.runtime.export import export_onnx as export

        overrides = {} if args.num_vertices is None else {"num_vertices": args.num_vertices}
        model = build_network(args.model, args.weights, **overrides)
    out = Path(args.out)
    stem = f"{args.model}_{model_hash(model)}"
    written = {
        "dynamic_batch": str(export(model, out / f"{stem}.onnx", True, args.opset)),
        "fixed_batch": str(export(model, out / f"{stem}_b1.onnx", False, args.opset)),
    }
    if args.format == "tensorrt":
        from hand_pose_ros.estimation.runtime.tensorrt_engine import build_engine

        written["tensorrt"] = str(build_engine(written["dynamic_batch"], out / "tensorrt"))
    print(json.dumps({"model": args.model, "random_init": args.weights is None, **written}))
    return 0
