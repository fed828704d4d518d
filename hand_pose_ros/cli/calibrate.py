"""``hand-teleop calibrate``: estimate an operator's hand shape and save a profile (YAML)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "calibrate", help="estimate an operator's hand shape (beta) from keypoint frames"
    )
    parser.add_argument("--keypoints", type=Path, required=True,
                        help=".npz/.npy with (N, 21, 3) keypoints in metres (any frame)")
    parser.add_argument("--out", type=Path, required=True, help="operator profile YAML to write")
    parser.add_argument("--name", default="operator", help="operator name stored in the profile")
    parser.add_argument("--handedness", choices=["right", "left"], default="right")
    parser.add_argument("--frames", type=int, default=60,
                        help="frames used, evenly spread over the file (default 60)")
    parser.add_argument("--hand-model", default="open")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from hand_ik.hand_model import load_hand_model
    from hand_ik.ik.calibration import calibrate_shape, save_operator_profile
    from hand_ik.ik.solver import IKSolver
    from hand_pose_ros.io.keypoint_sequences import load_keypoint_sequence

    if args.frames < 5:
        raise ValueError(f"--frames must be >= 5, got {args.frames}")
    joints = load_keypoint_sequence(args.keypoints)
    pick = np.unique(np.linspace(0, len(joints) - 1, min(args.frames, len(joints))).astype(int))
    model = load_hand_model(args.hand_model)
    result = calibrate_shape(IKSolver(model), joints[pick], handedness=args.handedness)
    save_operator_profile(args.out, result, model, args.name)
    print(json.dumps({"profile": str(args.out), "betas": result.betas.round(4).tolist(),
                      "frames_used": result.frames_used,
                      "fit_error_mm": round(result.fit_error_mm, 3)}))  # fmt: skip
    return 0
