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
    parser.add_argument("--sets", nargs="+", default=["clean", "noisy", "mocap", "conventions"],
                        choices=["clean", "noisy", "mocap", "conventions"],
                        help="conventions: rows with and without the mano keypoint convention "
                             "(GRAB held-out sequences, synthetic sets as MANO reports them)")


def _mocap_set(folder: Path, stride: int):
    import numpy as np

    from hand_ik.ik.evaluate import EvalSet
    from hand_pose_ros.io.keypoint_sequences import load_keypoint_sequence

    files = sorted(folder.glob("*.npz"))
    if not files:
        return None
    joints = np.concatenate([load_keypoint_sequence(f)[::stride] for f in files])
    return EvalSet(f"mocap_{folder.name}", joints, joints, None, None)


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
    if not baseline_path.is_file():
        skipped.append({"name": "ik45_baseline", "reason": f"{baseline_path} not trained "
                        "(hand-teleop train ik --rotation pose45)"})  # fmt: skip
    return {"bench": "ik", "machine": machine_info(), "rows": rows, "skipped": skipped}
