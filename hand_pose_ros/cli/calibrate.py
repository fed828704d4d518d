"""``hand-teleop calibrate``: an operator profile (YAML): the operator's hand shape (beta)
from keypoint frames, or the operator's open hand and fist as the camera sees them."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "calibrate",
        help="an operator profile: hand shape (beta) from keypoint frames (--keypoints), or "
             "the open hand and fist seen by the camera (--source)",
        description="Write (or update) an operator profile YAML. --keypoints FILE: fit the "
                    "operator's hand shape to (N, 21, 3) keypoint frames (motion capture, "
                    "gloves); the IK node uses it. --source SOURCE: show an open hand (fingers "
                    "straight, palm to the camera), then a fist; both are estimated through "
                    "the image estimator and the IK, and the retarget node then maps them onto "
                    "the robot's open hand and fist (docs/fidelity.md). A profile already at "
                    "--out keeps its other part.",
    )  # fmt: skip
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--keypoints", type=Path,
                      help=".npz/.npy with (N, 21, 3) keypoints in metres (any frame): the shape")
    what.add_argument("--source", help="demo | video:PATH | webcam:N: the open hand and fist")
    parser.add_argument("--out", type=Path, required=True, help="operator profile YAML to write")
    parser.add_argument("--name", default="operator", help="operator name stored in the profile")
    parser.add_argument("--handedness", choices=["right", "left"], default="right",
                        help="--keypoints: the hand the keypoints are of")
    parser.add_argument("--frames", type=int, default=60,
                        help="--keypoints: frames used, evenly spread over the file (default 60)")
    parser.add_argument("--hand-model", default="open")
    parser.add_argument("--open-frames", default=None, metavar="START:STOP",
                        help="--source: frames of the open hand (demo: its first open-hand "
                             "hold; webcam: 30:90; a video file: required)")
    parser.add_argument("--fist-frames", default=None, metavar="START:STOP",
                        help="--source: frames of the fist (demo: its first fist hold; "
                             "webcam: 150:210; a video file: required)")
    parser.add_argument("--estimator", default="handtrack",
                        help="--source: image estimator, as in `run` (handtrack, "
                             "handtrack_mesh, mediapipe, ours)")
    parser.add_argument("--hand-side", default="auto", choices=["auto", "right", "left"],
                        help="--source: the operator's hand (as `run --hand-side`)")
    parser.add_argument("--mirrored-input", action="store_true",
                        help="--source: the images are mirrored (selfie view)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.source is not None:
        return run_flexion(args)
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


def run_flexion(args: argparse.Namespace) -> int:
    """``--source``: capture the open hand and the fist, fit, write ``flexion:``."""
    import numpy as np

    from hand_ik.bio_dofs import BIO_DOF_NAMES
    from hand_ik.ik.calibration import save_flexion_calibration
    from hand_ik.ik.flexion_calibration import fit_flexion_calibration
    from hand_pose_ros.graph_plan import parse_source
    from hand_pose_ros.pipeline.flexion_capture import (
        WEBCAM_RANGES,
        capture_poses,
        demo_ranges,
        operator_prompts,
        parse_frame_range,
    )

    kind, _ = parse_source(args.source)
    defaults = {"demo": demo_ranges(), "webcam": WEBCAM_RANGES}.get(kind, {})
    ranges = {}
    for pose, given in (("open", args.open_frames), ("fist", args.fist_frames)):
        if given is None and pose not in defaults:
            raise ValueError(f"--{pose}-frames START:STOP is required for {args.source}")
        ranges[pose] = parse_frame_range(given) if given is not None else defaults[pose]
    (a, b), (c, d) = ranges["open"], ranges["fist"]
    if a < d and c < b:
        raise ValueError(f"--open-frames {a}:{b} and --fist-frames {c}:{d} overlap")
    prompts = operator_prompts(ranges)

    def prompt(i: int) -> None:
        if kind == "webcam" and i in prompts:
            print(f"hand-teleop calibrate: {prompts[i]}", file=sys.stderr, flush=True)

    poses = capture_poses(args.source, ranges, estimator=args.estimator,
                          hand_side=args.hand_side, mirrored_input=args.mirrored_input,
                          on_frame=prompt)  # fmt: skip
    calibration = fit_flexion_calibration(poses.open, poses.fist)
    used = {pose: int(np.isfinite(rows).all(axis=1).sum())
            for pose, rows in (("open", poses.open), ("fist", poses.fist))}  # fmt: skip
    info = {"source": args.source, "estimator": args.estimator,
            "frames": {pose: f"{s}:{e}" for pose, (s, e) in ranges.items()},
            "frames_used": used}  # fmt: skip
    save_flexion_calibration(args.out, calibration, args.name, info)
    calibrated = [n for n, c in zip(BIO_DOF_NAMES, calibration.calibrated, strict=True) if c]
    report = {"profile": str(args.out), "frames_used": used, "calibrated_dofs": calibrated}
    for key, values in (("open_hand_deg", calibration.open), ("fist_deg", calibration.fist)):
        report[key] = {n: round(float(np.degrees(v)), 1)
                       for n, v in zip(BIO_DOF_NAMES, values, strict=True) if n in calibrated}
    print(json.dumps(report))
    return 0
