"""Retargeting speed, vector residual and jitter per robot on real motion capture (GRAB).

Rows (one per robot config): ms per frame of the retargeter alone (mean,
median, p95), mean wrist->fingertip vector residual against the retargeter's own
targets in robot space (mm; also divided by the config's scale: human-space mm),
the tip motion residual (``tip_motion_residual_mm``: against the human's palm->tip
vectors times the config's one ``scale``, each tip's constant offset removed, so it
compares mappings whose targets differ), joint jitter (mean
|q_t - q_t-1| over the non-locked movable joints, rad per frame; it grows with the
motion itself), its high-frequency part (``jitter_hf_rad_per_frame``: mean
|q_t - (q_t-1 + q_t+1) / 2|, the departure from the straight line through the two
neighbouring frames, which smooth motion hardly has), and the lag and jitter after
the default ``CommandFilter`` (120 Hz) on the same output, and how often the retargeter
restarted a frame from the open pose (``restarts_tried`` / ``restarts_taken``).

Human input: the GRAB joints (``joints_wristlocal_aligned``) go straight to
the retargeter in the hand_root frame (``input: mocap_keypoints``); an IK
stage slots into ``human_input`` once it exists, timed separately.
"""

from __future__ import annotations

import argparse
import functools
import time
from pathlib import Path

import numpy as np

from hand_pose_ros.benchmarks.utils import machine_info, timing_row

_REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA = _REPO.parent / "shared" / "realdata" / "grab_dev"
DEFAULT_ROBOTS = _REPO.parent / "shared" / "realdata" / "robots"
FRAME_RATE_HZ = 120.0


def add_robot_arguments(parser: argparse.ArgumentParser, data: bool = True) -> None:
    """``--robot NAME|all``, ``--urdf`` and (with ``data``) ``--data``: the robot benches'
    and ``calibrate-robot``'s shared options."""
    parser.add_argument(
        "--robot", default="all", help="robot config name or YAML path, or 'all' (default)"
    )
    parser.add_argument(
        "--urdf",
        type=Path,
        default=None,
        help=f"URDF file, or a dex-urdf robots folder (default {DEFAULT_ROBOTS} when present)",
    )
    if data:
        parser.add_argument(
            "--data", type=Path, default=DEFAULT_DATA, help="folder of GRAB-style .npz files"
        )


def robot_names_and_urdf(args: argparse.Namespace) -> tuple[list[str], Path | None]:
    """The robot config names ``--robot`` selects and the URDF (folder) to use."""
    from hand_ik.retarget import available_robot_configs

    names = available_robot_configs() if args.robot == "all" else [args.robot]
    urdf = args.urdf if args.urdf is not None else (
        DEFAULT_ROBOTS if DEFAULT_ROBOTS.is_dir() else None)  # fmt: skip
    return names, urdf


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_robot_arguments(parser)
    parser.add_argument("--max-frames", type=int, default=0, help="frames per sequence (0: all)")
    parser.add_argument(
        "--input",
        choices=["ik", "mocap"],
        default="ik",
        help="ik (default): the joints go through the IK (net + post-optimization) and the "
        "robot follows the re-posed hand model and its 23 DoF; mocap: the joints directly",
    )


@functools.lru_cache(maxsize=64)
def human_input(
    path: Path, max_frames: int = 0, mode: str = "mocap"
) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """One sequence -> keypoints (N, 21, 3) in hand_root, bio (N, 23) or None, and row fields.

    ``mode="ik"``: every frame goes through the IK (net + post-optimization, warm start
    from the previous frame, shape estimated per frame); the keypoints are then the
    re-posed hand model's, as in the teleop graph, and the IK time is reported
    separately (``ik_ms_per_frame_*``). Cached: every robot reuses the same IK run.
    """
    import torch

    from hand_ik.frames import to_hand_root

    with np.load(path) as data:
        joints = data["joints_wristlocal_aligned"].astype(np.float64)
    if max_frames > 0:
        joints = joints[:max_frames]
    if mode == "mocap":
        keypoints = to_hand_root(torch.from_numpy(joints)).numpy()
        return keypoints, None, {"input": "mocap_keypoints"}
    from hand_ik.plausibility import PlausibilityConfig
    from hand_pose_ros.pipeline.stages import IKStage, IKStageConfig

    torch.set_num_threads(1)
    # Mocap joints are wrist-local, not in front of a camera: no depth rule.
    ik = IKStage(IKStageConfig(plausibility=PlausibilityConfig(check_depth=False)))
    poser = _hand_poser()
    keypoints = np.empty_like(joints)
    bio = np.empty((len(joints), 23))
    times = []
    for i, frame in enumerate(joints):
        start = time.perf_counter()
        state = ik.solve(frame)
        times.append((time.perf_counter() - start) * 1e3)
        bio[i] = state.bio[0]
        keypoints[i] = poser(state.betas[0], state.bio[0])
    fields = {"input": "mocap_keypoints_through_ik", "_ik_times_ms": np.asarray(times)}
    return keypoints, bio, fields


@functools.lru_cache(maxsize=1)
def _hand_poser():
    """The open hand model's hand-root poser (what the teleop robot stage uses)."""
    from hand_ik.hand_model import load_hand_model
    from hand_ik.ik.keypoint_layer import HandRootPoser

    return HandRootPoser(load_hand_model("open"))


def _replay(retargeter, keypoints: np.ndarray, bio: np.ndarray | None, times: list,
            residuals: list, scaled_errors: list) -> tuple[np.ndarray, int]:  # fmt: skip
    """Retarget one sequence from a reset; appends ms and fingertip residuals (m) per frame,
    and the (tips, 3) robot palm->tip vectors minus ``scale`` x the human's (palm axes, m).

    Returns the (T, joints) commands and the frames whose optimizer stalled.
    """
    robot, config = retargeter.robot, retargeter.config
    retargeter.reset()
    out = np.empty((len(keypoints), len(robot.joint_names)))
    stalled = 0
    tips = slice(0, retargeter.num_fingertip_vectors)
    pairs = retargeter._human_pairs[tips]
    to_palm = config.scale * np.asarray(config.hand_root_to_palm, dtype=float)
    for i, frame in enumerate(keypoints):
        start = time.perf_counter()
        command = retargeter.retarget(frame, None if bio is None else bio[i])
        times.append((time.perf_counter() - start) * 1e3)
        out[i] = command.positions
        stalled += command.solve is not None and command.solve.reason == "stalled"
        vecs, _ = retargeter.optimizer.vectors_at(robot.free_joint_values(command.positions))
        error = vecs[tips] - retargeter.targets(frame)[tips]
        residuals.append(np.linalg.norm(error, axis=1).mean())
        scaled_errors.append(vecs[tips] - (frame[pairs[:, 1]] - frame[pairs[:, 0]]) @ to_palm.T)
    return out, stalled


def tip_motion_residual_mm(scaled_errors: np.ndarray) -> float:
    """Mean fingertip distance (mm) from the human's tip motion scaled by one number.

    ``scaled_errors``: (T, tips, 3) robot palm->tip vectors minus ``scale`` x the human's;
    each tip's mean over the frames (a constant offset: where the robot's fingers sit,
    e.g. the open pose against the flat hand) is removed first. Independent of the targets'
    offsets, so comparable between mappings that differ in them.
    """
    centred = scaled_errors - scaled_errors.mean(axis=0)
    return float(np.linalg.norm(centred, axis=2).mean() * 1e3)


def _robot_row(
    name: str, urdf: Path | None, files: list[Path], max_frames: int, mode: str = "mocap"
) -> dict:
    from hand_ik.command_filter import CommandFilter, lag_frames
    from hand_ik.retarget import load_retargeting_config

    config = load_retargeting_config(name, urdf=urdf)
    retargeter = config.build()
    robot = retargeter.robot
    moving = np.array([n not in robot.locked_joints for n in robot.joint_names])
    times, residuals, jitters, filtered_jitters, lags, hf = [], [], [], [], [], []
    scaled_errors: list[np.ndarray] = []
    fields: dict = {}
    ik_times = []
    stalled = 0  # frames where the optimizer accepted no step (its result, not silence)
    for path in files:
        keypoints, bio, fields = human_input(path, max_frames, mode)
        if "_ik_times_ms" in fields:
            ik_times.append(fields["_ik_times_ms"])
        out, sequence_stalled = _replay(
            retargeter, keypoints, bio, times, residuals, scaled_errors
        )
        stalled += sequence_stalled
        jitters.append(np.abs(np.diff(out[:, moving], axis=0)).mean(axis=1))
        hf.append(np.abs(out[1:-1, moving] - 0.5 * (out[:-2, moving] + out[2:, moving])).mean(1))
        filt = CommandFilter(
            robot.lower,
            robot.upper,
            robot.velocity,
            retargeter.neutral_command().positions,
        )
        filtered = np.stack([filt.update(i / FRAME_RATE_HZ, q) for i, q in enumerate(out)])
        lags.append(lag_frames(out[:, moving], filtered[:, moving]))
        filtered_jitters.append(np.abs(np.diff(filtered[:, moving], axis=0)).mean(axis=1))
    fields = {k: v for k, v in fields.items() if not k.startswith("_")}
    if ik_times:
        fields.update(timing_row(np.concatenate(ik_times), "ik_ms_per_frame"))
    return {
        "name": config.name,
        **fields,
        "side": config.side,
        "frames": len(times),
        "sequences": len(files),
        **timing_row(np.asarray(times)),
        "stalled_frames": int(stalled),
        # Frames solved again from the open pose (a fingertip stuck optimizer.restart_miss_m
        # or more from its target), and of those where that was kept.
        "restarts_tried": retargeter.restarts_tried,
        "restarts_taken": retargeter.restarts_taken,
        "vector_residual_mm": float(np.mean(residuals) * 1e3),
        "vector_residual_human_mm": float(np.mean(residuals) * 1e3 / config.scale),
        "tip_motion_residual_mm": tip_motion_residual_mm(np.stack(scaled_errors)),
        "jitter_rad_per_frame": float(np.mean(np.concatenate(jitters))),
        "jitter_hf_rad_per_frame": float(np.mean(np.concatenate(hf))),
        "filtered_jitter_rad_per_frame": float(np.mean(np.concatenate(filtered_jitters))),
        "filter_lag_ms": float(np.mean(lags) * 1e3 / FRAME_RATE_HZ),
        "scale": config.scale,
        "free_joints": robot.num_free,
        "urdf": str(config.urdf),
    }


def _dex_reference_row(files: list[Path], max_frames: int) -> dict | None:
    """Jitter of the dex-retargeting Shadow output stored with the sequences (no timing)."""
    jitters, hf = [], []
    for path in files:
        with np.load(path) as data:
            if "shadow_qpos_dexretargeting" not in data:
                return None
            qpos = data["shadow_qpos_dexretargeting"][: max_frames or None]
        jitters.append(np.abs(np.diff(qpos, axis=0)).mean(axis=1))
        hf.append(np.abs(qpos[1:-1] - 0.5 * (qpos[:-2] + qpos[2:])).mean(axis=1))
    return {
        "name": "dexretargeting_shadow_stored",
        "input": "stored_output",
        "jitter_rad_per_frame": float(np.mean(np.concatenate(jitters))),
        "jitter_hf_rad_per_frame": float(np.mean(np.concatenate(hf))),
    }


def run(args: argparse.Namespace) -> dict:
    names, urdf = robot_names_and_urdf(args)
    files = sorted(Path(args.data).glob("*.npz")) if Path(args.data).is_dir() else []
    rows = []
    if not files:
        rows = [{"name": n, "skipped": f"no .npz sequences in {args.data}"} for n in names]
    else:
        from tqdm import tqdm

        for name in tqdm(names, desc="robots", unit="robot", disable=None, leave=False):
            try:
                rows.append(_robot_row(name, urdf, files, args.max_frames, args.input))
            except (FileNotFoundError, ValueError) as exc:
                if args.robot != "all":
                    raise
                rows.append({"name": name, "skipped": str(exc)})
        reference = _dex_reference_row(files, args.max_frames)
        if reference is not None:
            rows.append(reference)
    return {"bench": "retarget", "machine": machine_info(), "rows": rows}
