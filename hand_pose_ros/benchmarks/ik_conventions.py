"""``bench ik`` rows with and without a keypoint convention (``hand_ik.conventions``).

The IK converts its input to our model's keypoints (``to_ours``) and its answer is
compared in the source's convention (``from_ours`` of the re-posed keypoints), so the
rows of both conventions measure the same thing: PA-MPJPE against the source's joints.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from hand_ik.conventions import KeypointConvention, identity_convention, load_convention
from hand_ik.ik.evaluate import EvalSet
from hand_ik.ik.solver import IKSolver
from hand_ik.metrics import pa_mpjpe


def _median_ms(fn, inputs: list) -> float:
    """Median milliseconds of ``fn(*args)`` over single-frame argument tuples (after warm-up)."""
    for args in inputs[:3]:
        fn(*args)
    times = []
    for args in inputs:
        start = time.perf_counter()
        fn(*args)
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times))


def mano_heldout_set(folder: Path, stride: int) -> tuple[EvalSet, dict] | None:
    """The GRAB sequences the mano convention was not fitted on, and its manifest."""
    from hand_pose_ros.io.keypoint_sequences import load_keypoint_sequence

    manifest = load_convention("mano").manifest
    names = manifest["split"]["held_out"]
    paths = [folder / f"{n}.npz" for n in names]
    if not all(p.is_file() for p in paths):
        return None
    joints = np.concatenate([load_keypoint_sequence(p)[::stride] for p in paths])
    return EvalSet(f"mocap_{folder.name}_heldout", joints, joints, None, None), manifest


def synthetic_in_convention(eval_set: EvalSet, convention: KeypointConvention) -> EvalSet:
    """A synthetic set (our model's hands) as ``convention``'s source would report it."""
    clean = convention.from_ours(eval_set.gt_joints)
    noise = eval_set.inputs - eval_set.gt_joints
    return EvalSet(f"{eval_set.name}_as_{convention.name}", clean + noise, clean, None,
                   eval_set.gt_betas)  # fmt: skip


def convention_rows(model, eval_set: EvalSet, conventions: dict[str, KeypointConvention],
                    known_betas: dict[str, np.ndarray | None],
                    timing_frames: int = 50) -> list[dict]:  # fmt: skip
    """IK net + post-opt rows per (row name -> convention), estimated and known shape.

    ``known_betas`` maps a convention name to its known shape ((10,) or (N, 10)), or None
    (no known-shape row).
    """
    solver = IKSolver(model)
    rows = []
    for name, convention in conventions.items():
        known_shape = known_betas.get(convention.name)
        for betas in [None] + ([] if known_shape is None else [known_shape]):
            known = betas is not None
            state = solver.solve(convention.to_ours(eval_set.inputs), betas=betas,
                                 post_opt=True)  # fmt: skip
            predicted = convention.from_ours(state.joints)
            count = min(timing_frames, len(eval_set.inputs))
            b = None if betas is None else np.asarray(betas).reshape(-1, 10)
            frames = [(eval_set.inputs[i : i + 1], None if b is None else b[min(i, len(b) - 1)])
                      for i in range(count)]  # fmt: skip

            def solve_one(x, beta, _c=convention):
                return solver.solve(_c.to_ours(x), betas=beta, post_opt=True)

            rows.append({
                "name": name + ("_known_shape" if known else ""), "data": eval_set.name,
                "frames": len(eval_set.inputs), "dof": 23, "known_shape": known,
                "post_opt": True, "keypoint_convention": convention.name,
                "pa_mpjpe_mm": float(1e3 * pa_mpjpe(predicted, eval_set.gt_joints).mean()),
                "valid_rate": float(state.valid.mean()),
                "ms_per_frame_median": _median_ms(solve_one, frames),
            })  # fmt: skip
    return rows


def conventions_rows(model, synthetic_sets: list[EvalSet], grab_folder: Path, stride: int,
                     timing_frames: int = 50) -> tuple[list[dict], list[dict]]:  # fmt: skip
    """All convention rows of ``bench ik`` and what was skipped (reason)."""
    rows, skipped = [], []
    ours = identity_convention()
    try:
        mano = load_convention("mano")
    except FileNotFoundError as error:
        return rows, [{"name": "keypoint_conventions", "reason": str(error)}]
    for eval_set in synthetic_sets:
        as_mano = synthetic_in_convention(eval_set, mano)
        betas = {"ours": as_mano.gt_betas, "mano": as_mano.gt_betas}
        rows += convention_rows(model, as_mano, {"bio_ik23_post_opt": ours,
                                                 "bio_ik23_post_opt_mano": mano},
                                betas, timing_frames)  # fmt: skip
    heldout = mano_heldout_set(grab_folder, stride) if grab_folder.is_dir() else None
    if heldout is None:
        skipped.append({"name": "mocap_heldout", "reason": f"GRAB held-out sequences of the "
                        f"mano convention not in {grab_folder}"})  # fmt: skip
    else:
        eval_set, manifest = heldout
        # Known shape: the subject's shape, calibrated on the fit sequences under each
        # convention (like an operator profile); GRAB's own MANO shape means nothing to ours.
        betas = {k: np.asarray(v) for k, v in manifest["subject_betas"].items()}
        rows += convention_rows(model, eval_set, {"bio_ik23_post_opt": ours,
                                                  "bio_ik23_post_opt_mano": mano},
                                betas, timing_frames)  # fmt: skip
    return rows, skipped
