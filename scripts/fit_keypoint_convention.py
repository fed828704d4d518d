#!/usr/bin/env python3
"""Fit a keypoint convention (``hand_ik.conventions``) and write it with its manifest.

``mano``: GRAB motion capture (MANO joints; ../shared/realdata/grab_dev), split by
sequence (a seeded choice of held-out sequences, written to the manifest). The poses of
our model that match the GRAB frames are unknown, so the fit alternates:

1. convert the fit sequences' joints to ours with the current convention;
2. calibrate the subject's shape on them (``calibrate_shape``: GRAB's fit sequences are
   one subject, s1, like an operator's calibration) and solve every frame (IK net +
   post-optimization) with that shape;
3. refit the offsets by least squares between the source joints and the solved model's
   keypoints.

Round 0 starts from the identity. Each round lowers the fit sequences' error; the
held-out sequences are solved only at the end, with and without the convention and with
the calibrated (known) or per-frame (estimated) shape. Their numbers go to the manifest.

``mediapipe``: see ``--help``; fitted on our synthetic renders passed through the
landmark network (never on handgraph_dev or the real video).

Usage: nice -n 19 .venv/bin/python scripts/fit_keypoint_convention.py mano
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from hand_ik.conventions import (
    CONVENTION_DIR,
    KeypointConvention,
    default_anchors,
    fit_model_offsets,
    fit_offsets,
    identity_convention,
    rest_bone_directions,
    save_convention,
)
from hand_ik.hand_model import load_hand_model
from hand_ik.ik.calibration import calibrate_shape
from hand_ik.ik.solver import IKSolver
from hand_ik.metrics import pa_mpjpe
from hand_pose_ros.estimation.detections import CAMERA_POINTS

log = logging.getLogger("fit_keypoint_convention")
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_GRAB = ROOT.parent / "shared" / "realdata" / "grab_dev"


def grab_split(folder: Path, held_out: int, seed: int) -> tuple[list[str], list[str]]:
    """(fit, held-out) sequence names: a seeded permutation, ``held_out`` of them held out."""
    names = sorted(p.stem for p in folder.glob("*.npz"))
    if len(names) <= held_out:
        raise ValueError(f"{folder}: {len(names)} sequences, need more than {held_out}")
    order = np.random.default_rng(seed).permutation(len(names))
    test = sorted(names[i] for i in order[:held_out])
    return [n for n in names if n not in test], test


def load_grab(folder: Path, names: list[str], stride: int) -> np.ndarray:
    """(N, 21, 3) wrist-local aligned joints of the named sequences, every ``stride``-th frame."""
    from hand_pose_ros.io.keypoint_sequences import load_keypoint_sequence

    return np.concatenate([load_keypoint_sequence(folder / f"{n}.npz")[::stride] for n in names])


def solve(solver: IKSolver, convention: KeypointConvention, joints: np.ndarray, betas):
    """IK of source joints under a convention: the HandState."""
    return solver.solve(convention.to_ours(joints), betas=betas, post_opt=True)


def world_rotations(solver: IKSolver, state) -> np.ndarray:
    """(N, 16, 3, 3) posed joint rotations (MANO internal order) of a HandState."""
    import roma

    from hand_ik.lbs import batch_rigid_transform

    dtype = solver.model.v_template.dtype  # the model's buffers
    with torch.no_grad():
        local = solver.kinematics.bio_to_rotmats(torch.as_tensor(state.bio, dtype=dtype))
        root = roma.rotvec_to_rotmat(torch.as_tensor(state.global_orient, dtype=dtype))
        rot = torch.cat([root[:, None], local], dim=1)
        rest = solver.model.rest_joints16(torch.as_tensor(state.betas, dtype=dtype))
        _, transforms = batch_rigid_transform(rot, rest, solver.model._parents_list)
    return transforms[:, :, :3, :3].double().numpy()


def add_model_side(solver, convention, state, source) -> None:
    """Fit the convention's model-side offsets on solved frames (same data)."""
    convention.model_offsets = fit_model_offsets(state.joints, source,
                                                 world_rotations(solver, state))  # fmt: skip


def model_side_error_mm(solver, convention, joints) -> dict:
    """Held-out mean distances to the source joints of both sides of a convention."""
    state = solve(solver, convention, joints, None)
    model_side = convention.from_model(state.joints, world_rotations(solver, state))
    return {
        "source_side_mm": round(float(1e3 * np.linalg.norm(convention.to_ours(joints)
                                                           - state.joints, axis=-1).mean()), 3),
        "model_side_mm": round(float(1e3 * np.linalg.norm(model_side - joints,
                                                          axis=-1).mean()), 3),
    }  # fmt: skip


def evaluate(solver, convention, joints, betas) -> dict:
    """Held-out numbers of one convention: PA-MPJPE in the source's convention, fit error."""
    state = solve(solver, convention, joints, betas)
    predicted = convention.from_ours(state.joints)
    return {
        "pa_mpjpe_mm": round(float(1e3 * pa_mpjpe(predicted, joints).mean()), 3),
        "mpjpe_mm": round(float(1e3 * np.linalg.norm(predicted - joints, axis=-1).mean()), 3),
        "ik_fit_error_mm": round(float(1e3 * state.fit_error.mean()), 3),
        "valid_rate": float(state.valid.mean()),
    }


def alternate(solver, joints: np.ndarray, rest_dirs: np.ndarray, ref_length: float,
              ridge: float, rounds: int) -> tuple[KeypointConvention, list[dict]]:
    """Alternate (IK under the convention) and (least-squares offsets), from the identity."""
    anchors = default_anchors()
    convention = identity_convention()
    history = []
    for r in range(rounds):
        # Per-frame shapes (the IK's own estimate): the offsets then hold for any operator.
        state = solver.solve(convention.to_ours(joints), post_opt=True)
        before = float(1e3 * state.fit_error.mean())
        offsets = fit_offsets(state.joints, joints, rest_dirs, anchors, ref_length, ridge=ridge)
        convention = KeypointConvention("mano", offsets, rest_dirs, ref_length, anchors)
        after = float(1e3 * np.linalg.norm(convention.to_ours(joints) - state.joints,
                                           axis=-1).mean())  # fmt: skip
        history.append({"round": r, "ik_fit_error_mm": round(before, 3),
                        "refit_residual_mm": round(after, 3)})  # fmt: skip
        log.info("ridge %g round %d: IK fit error %.3f mm -> convention residual %.3f mm",
                 ridge, r, before, after)  # fmt: skip
    return convention, history


def fit_mano(args) -> KeypointConvention:
    torch.set_num_threads(1)
    model = load_hand_model("open")
    solver = IKSolver(model)
    with torch.no_grad():
        rest = model(betas=None).joints[0].double().numpy()
    rest_dirs = rest_bone_directions(rest)
    fit_names, test_names = grab_split(args.data, args.held_out, args.seed)
    fit_joints = load_grab(args.data, fit_names, args.stride)
    test_joints = load_grab(args.data, test_names, args.stride)
    ref_length = float(np.linalg.norm(fit_joints[:, 9] - fit_joints[:, 0], axis=-1).mean())
    log.info("fit on %s (%d frames); held out %s (%d frames)", fit_names, len(fit_joints),
             test_names, len(test_joints))  # fmt: skip
    # The ridge is chosen inside the fit sequences: one of them validates (never the held out).
    selection = {}
    if len(args.ridges) > 1:
        inner_fit, inner_val = fit_names[:-1], fit_names[-1:]
        inner_joints = load_grab(args.data, inner_fit, args.stride)
        val_joints = load_grab(args.data, inner_val, args.stride)
        for ridge in args.ridges:
            conv, _ = alternate(solver, inner_joints, rest_dirs, ref_length, ridge, args.rounds)
            selection[str(ridge)] = evaluate(solver, conv, val_joints, None)
            log.info("ridge %g on %s: %s", ridge, inner_val, selection[str(ridge)])
        ridge = min(args.ridges, key=lambda r: selection[str(r)]["pa_mpjpe_mm"])
        selection = {"validation_sequence": inner_val, "by": "pa_mpjpe_mm (estimated shape)",
                     "chosen": ridge, "candidates": selection}  # fmt: skip
    else:
        ridge = args.ridges[0]
    convention, history = alternate(solver, fit_joints, rest_dirs, ref_length, ridge, args.rounds)
    add_model_side(solver, convention, solve(solver, convention, fit_joints, None), fit_joints)
    held_out = {}
    subject_betas = {}
    for conv in (identity_convention(rest), convention):
        # The subject's shape under each convention (the known shape of its held-out rows).
        betas = calibrate_shape(solver, conv.to_ours(fit_joints)).betas
        subject_betas[conv.name] = [round(float(b), 6) for b in betas]
        for known in (False, True):
            key = f"{conv.name}_{'known' if known else 'estimated'}_shape"
            held_out[key] = evaluate(solver, conv, test_joints, betas if known else None)
            log.info("held out %s: %s", key, held_out[key])
    ours = convention.to_ours(test_joints)
    inverse_error = float(1e3 * np.abs(convention.from_ours(ours) - test_joints).max())
    convention.manifest = {
        "name": "mano",
        "what": "MANO joints (GRAB motion capture through MANO forward kinematics) from our "
                "open hand model's keypoints: offsets in bone frames (hand_ik/conventions.py)",
        "source_data": f"../shared/realdata/{args.data.name} (GRAB s1, right hand; "
                       "joints_wristlocal_aligned; non-commercial: data not copied)",
        "split": {"by": "sequence", "seed": args.seed, "fit": fit_names, "held_out": test_names,
                  "stride": args.stride, "fit_frames": len(fit_joints),
                  "held_out_frames": len(test_joints)},
        "procedure": f"{args.rounds} rounds of (IK net + post-opt, per-frame shape, under the "
                     "current convention; least-squares offsets), from the identity; the "
                     "subject's shape for the known-shape rows: calibrate_shape on the fit "
                     "sequences under each convention",
        "ridge": ridge,
        "ridge_selection": selection,
        "rounds": history,
        "subject_betas": subject_betas,
        "held_out_metrics": held_out,
        "held_out_fit_error_mm": model_side_error_mm(solver, convention, test_joints),
        "from_ours_max_error_mm": round(inverse_error, 4),
        **_provenance(),
    }  # fmt: skip
    return convention


def mediapipe_pairs(count: int, seed: int, camera_points: str = "translated"
                    ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(landmarks, truth) (M, 21, 3) of ``count`` synthetic crops, right-hand form.

    Each crop (our renderer, dataset seed ``seed``) goes through handtrack's landmark
    network (the real-trained MediaPipe one) in its tracking ROI (``rect_from_landmarks``
    of the rendered 2D keypoints: the ROI a tracked hand gets from its previous frame);
    the world landmarks are similarity-aligned onto the rendered hand's keypoints (their
    scale and placement are not the convention's business). Crops the network calls
    empty (presence < 0.5) or of the other side are skipped. ``camera_points``
    ``image_rays``: the points the handtrack graph gives with that option (the world
    landmarks moved onto the 2D landmarks' rays at their depths) instead.
    """
    from tqdm import tqdm

    from hand_ik.metrics import procrustes_align
    from hand_pose_ros.estimation.detections import world_to_camera
    from hand_pose_ros.handtrack import create_hand_tracker
    from hand_pose_ros.handtrack.rois import rect_from_landmarks
    from hand_pose_ros.research.synth.generator import SynthConfig, SynthGenerator

    generator = SynthGenerator(SynthConfig(kind="crops"), seed)
    tracker = create_hand_tracker()
    cfg = tracker.cfg
    found, truth = [], []
    for index in tqdm(range(count), desc=f"crops (seed {seed})", unit="crop"):
        sample = generator.sample(index)
        hand = sample["hands"][0]
        rect = rect_from_landmarks(np.asarray(hand["kp2d"], np.float64),
                                   cfg.landmark_roi_scale, cfg.landmark_roi_shift)  # fmt: skip
        result = tracker._landmarks(sample["image"], [rect])[0]
        left = int(hand["handedness"]) == 1
        # Skip empty crops and hands the network sees as the other side (mirrored answers).
        if result.presence < 0.5 or (result.p_right >= 0.5) == left:
            continue
        mirror = np.array([-1.0 if left else 1.0, 1.0, 1.0])
        points = result.world
        if camera_points != "translated":  # the translation goes in the alignment anyway
            K = np.asarray(sample["K"], np.float64)
            points = world_to_camera(points, result.uv, K, camera_points)
        found.append(points * mirror)
        truth.append(np.asarray(hand["joints_cam"], np.float64) * mirror)
    found, truth = np.array(found), np.array(truth)
    return procrustes_align(found, truth), truth


def fit_mediapipe(args) -> KeypointConvention:
    torch.set_num_threads(1)
    model = load_hand_model("open")
    with torch.no_grad():
        rest = model(betas=None).joints[0].double().numpy()
    rest_dirs = rest_bone_directions(rest)
    anchors = default_anchors()
    train_seed, test_seed = 4242 + args.seed, 1_004_242 + args.seed  # synth train / test
    src_fit, gt_fit = mediapipe_pairs(args.count, train_seed, args.camera_points)
    src_test, gt_test = mediapipe_pairs(args.test_count, test_seed, args.camera_points)
    # Fit on the crops the network got roughly right: a gross miss (a finger on the wrong
    # side) is no convention; the held-out numbers use every crop.
    error = np.linalg.norm(src_fit - gt_fit, axis=-1).mean(-1)
    keep = error < args.max_error_mm * 1e-3
    src_fit, gt_fit = src_fit[keep], gt_fit[keep]
    ref_length = float(np.linalg.norm(src_fit[:, 9] - src_fit[:, 0], axis=-1).mean())
    offsets = fit_offsets(gt_fit, src_fit, rest_dirs, anchors, ref_length,
                          ridge=args.ridges[0])  # fmt: skip
    convention = KeypointConvention("mediapipe", offsets, rest_dirs, ref_length, anchors)
    solver = IKSolver(model)
    # Model side: the rendered hands' poses, recovered by the IK from their clean keypoints.
    add_model_side(solver, convention, solver.solve(gt_fit, post_opt=True), src_fit)
    held_out = {}
    for conv in (identity_convention(rest), convention):
        ours = conv.to_ours(src_test)
        state = solver.solve(ours, post_opt=True)
        held_out[conv.name] = {
            "keypoint_error_mm": round(float(1e3 * np.linalg.norm(ours - gt_test,
                                                                  axis=-1).mean()), 3),
            "ik_pa_mpjpe_mm": round(float(1e3 * pa_mpjpe(state.joints, gt_test).mean()), 3),
        }  # fmt: skip
        log.info("held out %s: %s", conv.name, held_out[conv.name])
    convention.manifest = {
        "name": "mediapipe",
        "what": "the landmark networks' 21 points (handtrack / mediapipe estimators) from our "
                "open hand model's keypoints: offsets in bone frames (hand_ik/conventions.py)",
        "source_data": "our synthetic crops (hand_pose_ros/research/synth, kind crops, open "
                       "hand) through handtrack's real-trained MediaPipe networks; "
                       "never handgraph_dev or the real video",
        "split": {"by": "synthetic dataset seed", "fit_seed": train_seed,
                  "held_out_seed": test_seed, "fit_crops": args.count,
                  "fit_used": int(keep.sum()), "fit_detected": len(keep),
                  "fit_max_error_mm": args.max_error_mm, "held_out_crops": args.test_count,
                  "held_out_detected": len(src_test)},
        "procedure": "detections similarity-aligned onto the rendered keypoints (right-hand "
                     "form); least-squares offsets (known pose: no alternation)",
        "camera_points": args.camera_points,
        "ridge": args.ridges[0],
        "held_out_metrics": held_out,
        "held_out_fit_error_mm": _mediapipe_side_errors(solver, convention, src_test, gt_test),
        **_provenance(),
    }  # fmt: skip
    return convention


def _mediapipe_side_errors(solver, convention, source, truth) -> dict:
    """Held-out: how far each side of the convention puts the known hands' keypoints."""
    state = solver.solve(truth, post_opt=True)
    model_side = convention.from_model(state.joints, world_rotations(solver, state))
    return {
        "identity_mm": round(float(1e3 * np.linalg.norm(source - truth, axis=-1).mean()), 3),
        "source_side_mm": round(float(1e3 * np.linalg.norm(convention.to_ours(source) - truth,
                                                           axis=-1).mean()), 3),
        "model_side_mm": round(float(1e3 * np.linalg.norm(model_side - source,
                                                          axis=-1).mean()), 3),
    }  # fmt: skip


def _provenance() -> dict:
    """The manifest fields every fit records: hand model, code commit, time, command."""
    return {"hand_model": "open", "git_commit": _git_commit(),
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "command": " ".join(sys.argv)}  # fmt: skip


def _git_commit() -> str:
    """HEAD of the checkout, or $GIT_COMMIT (a ``git archive`` snapshot has no .git)."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return os.environ.get("GIT_COMMIT", "unknown")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", choices=["mano", "mediapipe"])
    parser.add_argument("--count", type=int, default=600, help="mediapipe: fit crops")
    parser.add_argument("--test-count", type=int, default=200, help="mediapipe: held-out crops")
    parser.add_argument("--camera-points", choices=CAMERA_POINTS,
                        default="translated",
                        help="mediapipe: handtrack's 3D points as fitted (HandTrackConfig)")
    parser.add_argument("--max-error-mm", type=float, default=30.0,
                        help="mediapipe: fit on crops the network got within this (PA mean)")
    parser.add_argument("--data", type=Path, default=DEFAULT_GRAB)
    parser.add_argument("--held-out", type=int, default=3, help="sequences held out (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sequence split")
    parser.add_argument("--stride", type=int, default=10, help="every k-th frame (120 Hz data)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ridges", type=float, nargs="+", default=[0.03, 0.1, 0.3],
                        help="offset ridge candidates (fit_offsets), chosen on a fit sequence "
                             "(mano); mediapipe uses the first")
    parser.add_argument("--out", type=Path, default=CONVENTION_DIR)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if not args.data.is_dir():
        parser.error(f"{args.data} not found")
    if args.source == "mediapipe":
        convention = fit_mediapipe(args)
        path = save_convention(convention, args.out)
        print(json.dumps({"written": str(path), **convention.manifest["held_out_metrics"]},
                         indent=1))  # fmt: skip
        return 0
    if len(args.ridges) > 1 and len(grab_split(args.data, args.held_out, args.seed)[0]) < 2:
        parser.error("choosing a ridge needs at least 2 fit sequences")
    convention = fit_mano(args)
    path = save_convention(convention, args.out)
    print(json.dumps({"written": str(path), **convention.manifest["held_out_metrics"]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
