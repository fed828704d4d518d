"""Evaluation of the IK (seed 002 Table 4 protocol) on synthetic and motion-capture joints."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from hand_ik.biomech import bio_kinematics_for
from hand_ik.ik.features import bone_features
from hand_ik.ik.post_opt import PostOptConfig
from hand_ik.ik.solver import IKSolver
from hand_ik.ik.train import canonical_inputs, make_ik_data
from hand_ik.metrics import f_score, pa_mpjpe

#: Held-out evaluation seeds (training data uses seeds < 1000).
EVAL_SEED_CLEAN = 1001
EVAL_SEED_NOISY = 1002


@dataclass
class EvalSet:
    """Joints to solve and what to compare with (numpy, metres)."""

    name: str
    inputs: np.ndarray  # (N, 21, 3) what the IK sees
    gt_joints: np.ndarray  # (N, 21, 3) clean ground truth
    gt_vertices: np.ndarray | None  # (N, V, 3) or None
    gt_betas: np.ndarray | None  # (N, 10) or None (shape unknown)


def synthetic_eval_set(model, n: int, seed: int, noise_m: float = 0.0) -> EvalSet:
    """Held-out synthetic hands (random global pose), optionally with joint noise."""
    data = make_ik_data(model, n, seed)
    dtype = model.v_template.dtype
    rng = np.random.default_rng(seed + 31)
    import roma

    orient = roma.random_rotvec(n, dtype=dtype, generator=torch.Generator().manual_seed(seed))
    transl = torch.as_tensor(rng.normal(0, 0.2, size=(n, 3)) + np.array([0, 0, 0.6]), dtype=dtype)
    with torch.no_grad():
        out = model(betas=torch.as_tensor(data["betas"], dtype=dtype),
                    pose=torch.as_tensor(data["pose45"], dtype=dtype),
                    global_orient=orient, transl=transl)  # fmt: skip
    joints = out.joints.double().numpy()
    noisy = joints + rng.normal(0, noise_m, size=joints.shape) if noise_m > 0 else joints
    name = "synthetic_clean" if noise_m == 0 else f"synthetic_noise{noise_m * 1e3:g}mm"
    return EvalSet(name, noisy, joints, out.vertices.double().numpy(), data["betas"])


def evaluate_ik_net(model, net, rotation: str = "bio", n: int = 1000) -> dict:
    """Quick held-out check of a freshly trained net (no post-optimization): PA-MPJPE (mm)."""
    import roma

    from hand_ik.ik.keypoint_layer import KeypointLayer

    kin = bio_kinematics_for(model)
    layer = KeypointLayer(model)
    result = {}
    for noise in (0.0, 0.005):
        es = synthetic_eval_set(model, n, EVAL_SEED_CLEAN if noise == 0 else EVAL_SEED_NOISY,
                                noise)  # fmt: skip
        joints = torch.as_tensor(es.inputs, dtype=model.v_template.dtype)
        with torch.no_grad():
            betas, rot = net(bone_features(canonical_inputs(model, joints)))
            rot_j = (kin.bio_to_rotmats(kin.clamp(rot)) if rotation == "bio"
                     else roma.rotvec_to_rotmat(rot.unflatten(-1, (15, 3))))  # fmt: skip
            eye = torch.eye(3, dtype=joints.dtype).expand(len(joints), 1, 3, 3)
            pred = layer(betas, torch.cat([eye, rot_j], dim=1)).double().numpy()
        result[f"{es.name}_pa_mpjpe_mm"] = float(1e3 * pa_mpjpe(pred, es.gt_joints).mean())
    return result


def _time_batch1(fn, inputs: list, repeats: int = 50) -> float:
    """Median milliseconds of ``fn(*args)`` over single-frame argument tuples (after warm-up)."""
    for args in inputs[:3]:
        fn(*args)
    times = []
    for args in inputs[:repeats]:
        start = time.perf_counter()
        fn(*args)
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times))


def evaluate_solver_rows(model, eval_set: EvalSet, configs: dict[str, dict],
                         timing_frames: int = 50) -> list[dict]:  # fmt: skip
    """One Table-4 row per configuration on one evaluation set.

    ``configs`` maps a row name to ``dict(weights=..., post_opt=bool, known_shape=bool,
    post_opt_config=PostOptConfig | None)``.
    """
    rows = []
    for name, cfg in configs.items():
        solver = IKSolver(model, weights=cfg.get("weights", "default"),
                          post_opt=cfg.get("post_opt_config") or PostOptConfig())  # fmt: skip
        known = cfg.get("known_shape", False) and eval_set.gt_betas is not None
        if cfg.get("known_shape", False) and eval_set.gt_betas is None:
            continue
        betas = eval_set.gt_betas if known else None
        state = solver.solve(eval_set.inputs, betas=betas, post_opt=cfg.get("post_opt", False))
        row = {"name": name, "data": eval_set.name, "frames": len(eval_set.inputs),
               "dof": 23, "known_shape": bool(known), "post_opt": cfg.get("post_opt", False),
               "pa_mpjpe_mm": float(1e3 * pa_mpjpe(state.joints, eval_set.gt_joints).mean()),
               "valid_rate": float(state.valid.mean())}  # fmt: skip
        if eval_set.gt_vertices is not None:
            from hand_ik.metrics import procrustes_align

            aligned = procrustes_align(state.vertices, eval_set.gt_vertices)
            row["pa_mpvpe_mm"] = float(1e3 * np.linalg.norm(
                aligned - eval_set.gt_vertices, axis=-1).mean())  # fmt: skip
            row["f_5mm"] = float(f_score(aligned, eval_set.gt_vertices, 0.005).mean())
            row["f_15mm"] = float(f_score(aligned, eval_set.gt_vertices, 0.015).mean())
        count = min(timing_frames, len(eval_set.inputs))
        frames = [(eval_set.inputs[i : i + 1], None if betas is None else betas[i : i + 1])
                  for i in range(count)]  # fmt: skip
        post_opt = cfg.get("post_opt", False)
        row["ms_per_frame_median"] = _time_batch1(
            lambda x, b, _s=solver, _p=post_opt: _s.solve(x, betas=b, post_opt=_p), frames)
        # Without re-posing the mesh (for consumers that need no markers).
        row["ms_per_frame_median_no_mesh"] = _time_batch1(
            lambda x, b, _s=solver, _p=post_opt: _s.solve(x, betas=b, post_opt=_p,
                                                          with_vertices=False), frames)
        rows.append(row)
    return rows


def ik_parts_row(model, eval_set: EvalSet, timing_frames: int = 50,
                 post_opt_config: PostOptConfig | None = None) -> dict:  # fmt: skip
    """Median milliseconds of each part of the per-frame IK (batch 1, post-opt, with mesh)."""
    solver = IKSolver(model, post_opt=post_opt_config or PostOptConfig())
    parts: dict[str, list[float]] = {}
    frames = [eval_set.inputs[i : i + 1] for i in range(min(timing_frames, len(eval_set.inputs)))]
    for i, joints in enumerate(frames[:3] + frames):
        timings: dict[str, float] = {}
        solver.solve(joints, post_opt=True, timings=timings)
        if i >= 3:  # after warm-up
            for name, ms in timings.items():
                parts.setdefault(name, []).append(ms)
    row = {"name": "bio_ik23_post_opt_parts", "data": eval_set.name, "frames": len(frames)}
    row.update({f"{name[:-3]}_ms_median": float(np.median(v)) for name, v in parts.items()})
    return row


def input_noise_row(eval_set: EvalSet) -> dict:
    """The error of the noisy input itself: what the IK has to beat to remove noise."""
    return {"name": "input_joints", "data": eval_set.name, "frames": len(eval_set.inputs),
            "pa_mpjpe_mm": float(1e3 * pa_mpjpe(eval_set.inputs, eval_set.gt_joints).mean())}


def baseline45_rows(model, weights_path, eval_set: EvalSet, timing_frames: int = 50) -> list[dict]:
    """The paper's baseline: the same net regressing 45 axis-angle parameters (no post-opt)."""
    import roma

    from hand_ik.ik.keypoint_layer import KeypointLayer
    from hand_ik.ik.solver import PALM_RIGID_KEYPOINTS
    from hand_ik.ik.weights import load_ik_weights

    net = load_ik_weights(weights_path, model)
    layer = KeypointLayer(model)
    dtype = model.v_template.dtype
    palm = list(PALM_RIGID_KEYPOINTS)

    def solve(joints_np, betas_np):
        joints = torch.as_tensor(joints_np, dtype=dtype)
        with torch.no_grad():
            betas, rot = net(bone_features(canonical_inputs(model, joints)))
            if betas_np is not None:
                betas = torch.as_tensor(betas_np, dtype=dtype)
            rot_j = roma.rotvec_to_rotmat(rot.unflatten(-1, (15, 3)))
            eye = torch.eye(3, dtype=dtype).expand(len(joints), 1, 3, 3)
            local = layer(betas, torch.cat([eye, rot_j], dim=1))
            from hand_ik.ik.alignment import rigid_align

            r, t = rigid_align(local[:, palm], joints[:, palm])
            return (local @ r.transpose(1, 2) + t[:, None]).double().numpy()

    rows = []
    for known in (False, True):
        if known and eval_set.gt_betas is None:
            continue
        betas = eval_set.gt_betas if known else None
        pred = solve(eval_set.inputs, betas)
        frames = [(eval_set.inputs[i : i + 1],) for i in range(min(timing_frames, len(pred)))]
        row = {"name": "ik45_baseline" + ("_known_shape" if known else ""), "data": eval_set.name,
               "frames": len(pred), "dof": 45, "known_shape": known, "post_opt": False,
               "pa_mpjpe_mm": float(1e3 * pa_mpjpe(pred, eval_set.gt_joints).mean()),
               "ms_per_frame_median": _time_batch1(
                   lambda x, _b=betas: solve(x, None if _b is None else _b[:1]), frames)}
        rows.append(row)
    return rows
