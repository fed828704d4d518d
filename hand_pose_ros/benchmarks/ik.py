"""IK accuracy and speed (seed 002 Table 4 rows) on synthetic and motion-capture joints."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from hand_pose_ros.benchmarks.utils import machine_info

log = logging.getLogger(__name__)

DEFAULT_GRAB = Path(__file__).resolve().parents[3] / "shared" / "realdata" / "grab_dev"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hand-model", default="open", help="'open' or a MANO/npz model path")
    parser.add_argument("--samples", type=int, default=500,
                        help="held-out synthetic hands per synthetic set (default 500)")
    parser.add_argument("--data", type=Path, default=DEFAULT_GRAB,
                        help="folder of motion-capture .npz files with 'joints_wristlocal_aligned' "
                             "(N, 21, 3) (default: ../shared/realdata/grab_dev)")  # fmt: skip
    parser.add_argument("--mocap-stride", type=int, default=10,
                        help="use every k-th motion-capture frame (default 10: 12 Hz of 120 Hz)")
    parser.add_argument("--timing-frames", type=int, default=50)
    parser.add_argument("--sets", nargs="+",
                        default=["clean", "noisy", "mocap", "conventions", "stage"],
                        choices=["clean", "noisy", "mocap", "conventions", "stage"],
                        help="conventions: rows with and without the mano keypoint convention "
                             "(GRAB held-out sequences, synthetic sets as MANO reports them); "
                             "stage: ms per frame of the IK node's whole solve (IKStage: "
                             "plausibility gate, keypoint convention, IK net, post-opt, no mesh)")


def _mocap_set(folder: Path, stride: int):
    import numpy as np

    from hand_ik.ik.evaluate import EvalSet
    from hand_pose_ros.io.keypoint_sequences import load_keypoint_sequence

    files = sorted(folder.glob("*.npz"))
    if not files:
        return None
    joints = np.concatenate([load_keypoint_sequence(f)[::stride] for f in files])
    return EvalSet(f"mocap_{folder.name}", joints, joints, None, None)


#: Frames timed per ``stage`` row (at least; ``--timing-frames`` raises it).
STAGE_TIMING_FRAMES = 200
#: Camera depth (m) of the stage rows' synthetic hands (the plausibility gate's range).
STAGE_DEPTH_M = 0.5


def ik_stage_rows(model, hand_model: str, frames: int) -> list[dict]:
    """Median ms per frame of ``IKStage.solve`` as the IK node runs it (one hand, batch 1,
    warm-started track, no mesh), for our keypoints and the landmark network's convention,
    on held-out synthetic hands 0.5 m in front of the camera; the parts of the solve too."""
    import time

    import numpy as np

    from hand_ik.conventions import load_convention
    from hand_ik.ik.evaluate import EVAL_SEED_CLEAN, synthetic_eval_set
    from hand_pose_ros.pipeline.stages import IKStage, IKStageConfig

    joints = synthetic_eval_set(model, frames, EVAL_SEED_CLEAN).inputs
    joints = joints - joints[:, :1] + np.array([0.0, 0.0, STAGE_DEPTH_M])
    rows = []
    for name in ("ours", "mediapipe"):
        inputs = load_convention(name).from_ours(joints)
        stage = IKStage(IKStageConfig(hand_model=hand_model, keypoint_convention=name))
        for keypoints in inputs[:20]:  # warm-up
            stage.solve(keypoints, track_id=0, with_vertices=False)
        times, parts, valid = [], {}, 0
        for keypoints in inputs:
            timings: dict[str, float] = {}
            start = time.perf_counter()
            state = stage.solve(keypoints, track_id=0, with_vertices=False, timings=timings)
            times.append((time.perf_counter() - start) * 1e3)
            valid += int(state.valid[0])
            for part, ms in timings.items():
                parts.setdefault(part, []).append(ms)
        rows.append({"name": "ik_stage", "keypoint_convention": name, "frames": len(inputs),
                     "valid_rate": valid / len(inputs),
                     "ms_per_frame_median": float(np.median(times)),
                     "ms_per_frame_p90": float(np.percentile(times, 90)),
                     **{f"{part[:-3]}_ms_median": float(np.median(v))
                        for part, v in parts.items()}})  # fmt: skip
    return rows


def run(args: argparse.Namespace) -> dict:
    import torch

    from hand_ik.hand_model import load_hand_model
    from hand_ik.ik.evaluate import (
        EVAL_SEED_CLEAN,
        EVAL_SEED_NOISY,
        baseline45_rows,
        evaluate_solver_rows,
        ik_parts_row,
        input_noise_row,
        synthetic_eval_set,
    )
    from hand_ik.ik.post_opt import PostOptConfig
    from hand_ik.ik.weights import WEIGHTS_DIR

    # Per-frame IK is small: one thread (two threads on a busy 2-core CPU stall for ~30 ms).
    torch.set_num_threads(1)
    model = load_hand_model(args.hand_model)
    configs = {
        "bio_ik23": dict(post_opt=False),
        "bio_ik23_known_shape": dict(post_opt=False, known_shape=True),
        "bio_ik23_post_opt": dict(post_opt=True),
        "bio_ik23_post_opt_known_shape": dict(post_opt=True, known_shape=True),
        "bio_ik23_post_opt_20_first_order": dict(
            post_opt=True, post_opt_config=PostOptConfig(iterations=20, method="adam")),
    }  # fmt: skip
    sets = []
    if "clean" in args.sets:
        sets.append(synthetic_eval_set(model, args.samples, EVAL_SEED_CLEAN))
    if "noisy" in args.sets:
        sets.append(synthetic_eval_set(model, args.samples, EVAL_SEED_NOISY, noise_m=0.005))
    rows: list[dict] = []
    skipped = []
    if "mocap" in args.sets:
        mocap = _mocap_set(args.data, args.mocap_stride) if args.data.is_dir() else None
        if mocap is None:
            skipped.append({"name": "mocap", "reason": f"no motion-capture .npz in {args.data}"})
        else:
            sets.append(mocap)
    baseline_path = WEIGHTS_DIR / f"ik_pose45_{model.name}.pt"
    for eval_set in sets:
        log.info("IK bench on %s (%d frames)", eval_set.name, len(eval_set.inputs))
        if eval_set.name.startswith("synthetic_noise"):
            rows.append(input_noise_row(eval_set))
        if baseline_path.is_file():
            rows += baseline45_rows(model, baseline_path, eval_set, args.timing_frames)
        rows += evaluate_solver_rows(model, eval_set, configs, args.timing_frames)
        rows.append(ik_parts_row(model, eval_set, args.timing_frames))
    if "conventions" in args.sets:
        from hand_pose_ros.benchmarks.ik_conventions import conventions_rows

        synthetic = [s for s in sets if s.name.startswith("synthetic")]
        more, why = conventions_rows(model, synthetic, args.data, args.mocap_stride,
                                     args.timing_frames)  # fmt: skip
        rows, skipped = rows + more, skipped + why
    if "stage" in args.sets:
        rows += ik_stage_rows(model, args.hand_model,
                              max(args.timing_frames, STAGE_TIMING_FRAMES))  # fmt: skip
    if not baseline_path.is_file():
        skipped.append({"name": "ik45_baseline", "reason": f"{baseline_path} not trained "
                        "(hand-teleop train ik --rotation pose45)"})  # fmt: skip
    return {"bench": "ik", "machine": machine_info(), "rows": rows, "skipped": skipped}
