"""Teleop fidelity per robot: open is open, a fist is a fist, a pinch touches, fingers independent.

Human poses: the bio-DoF presets of ``hand_ik.pose_presets.bio_preset`` (flat, relaxed,
fist, point, OK sign, each finger alone curled, thumb-to-each-finger pinch) posed on the
open hand model (``HandRootPoser``, as the teleop graph re-poses the hand), each reached
from ``flat`` over 15 frames and held 10 (warm started, as in teleop), keypoints and the
23 DoF both given to the retargeter; and the GRAB dev frames that match them
(``--data``): the 2 % most open frames, the 2 % most closed, and the frames whose human
thumb and index tip keypoints are within 15 mm (a pinch), the sequences retargeted in
order from the mocap keypoints.

Flexion fraction of a robot finger: the mean over its flexion joints (the config's
``flexion`` field) of ``(q - q_open) / (q_closed - q_open)``, ``q_open`` = 0 clipped to
the URDF limits, ``q_closed`` the limit the joint closes toward; 0 open, 1 closed
(``hand_ik.retarget.fidelity``).

Rows: one summary row per robot (``name``: the config) with
``flat_flex_max`` (largest finger flexion on the flat hand; goal <= 0.05),
``fist_flex_min`` (smallest on the fist over the long fingers; goal >= 0.7) and
``fist_thumb_flex``, ``pinch_<finger>_mm`` (robot thumb-tip to finger-tip link distance
in the ``pinch_<finger>`` pose; goal <= 10 mm where the robot can), ``pinch_reach_<finger>_mm``
(the smallest distance the robot's joint space allows, by optimisation), ``independence_max``
(largest flexion change of any other finger when one finger curls; goal < 0.05), GRAB
rows ``grab_open_flex_mean``, ``grab_closed_flex_mean``, ``grab_pinch_index_mm``; and one
detail row per robot and pose (``name``: ``ROBOT/POSE``) with ``flex_<finger>``. With
dex-retargeting installed (optional, never a dependency), the same rows for its own
teleop vector configs (``dexretargeting_<robot>``) on the same keypoints, rotated into its
input frame (a rotation fitted on the GRAB frames); without it a row says it is absent.
``--camera`` adds the demo seen through the camera, as estimated and with the operator
flexion calibration (rows ``ROBOT/camera``: :mod:`hand_pose_ros.benchmarks.fidelity_camera`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from hand_pose_ros.benchmarks.retarget import add_robot_arguments, robot_names_and_urdf
from hand_pose_ros.benchmarks.utils import machine_info

#: Fractions of GRAB frames taken as "open" and "closed".
GRAB_TAIL = 0.02
#: Human thumb-index tip distance (m) below which a GRAB frame counts as a pinch.
GRAB_PINCH_M = 0.015
LONG = ("index", "middle", "ring", "little")
#: dex-retargeting teleop configs for our (right) robot configs.
DEX_CONFIGS = {
    "allegro": "allegro_hand_right.yml",
    "shadow": "shadow_hand_right.yml",
    "leap": "leap_hand_right.yml",
    "ability": "ability_hand_right.yml",
    "inspire": "inspire_hand_right.yml",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_robot_arguments(parser)
    parser.add_argument(
        "--max-frames", type=int, default=0, help="GRAB frames per sequence (0: all)"
    )
    parser.add_argument(
        "--poses", default="all", help="comma-separated bio presets, or 'all' (default)"
    )
    parser.add_argument("--no-dex", action="store_true", help="skip the dex-retargeting rows")
    parser.add_argument("--camera", action="store_true",
                        help="also the demo through the camera: rendered frames -> estimator "
                             "-> IK -> retargeter, as estimated and with the operator flexion "
                             "calibration (rows ROBOT/camera; benchmarks/fidelity_camera.py)")
    parser.add_argument("--camera-start", type=int, default=864,
                        help="first demo frame scored with --camera (default: the third pass)")
    parser.add_argument("--camera-frames", type=int, default=792,
                        help="demo frames scored with --camera (default: two passes)")
    parser.add_argument("--estimator", default="handtrack",
                        help="image estimator of the --camera rows")


def _pose_names(spec: str) -> list[str]:
    from hand_ik.pose_presets import BIO_PRESET_NAMES

    if spec == "all":
        return list(BIO_PRESET_NAMES)
    names = [n.strip() for n in spec.split(",") if n.strip()]
    unknown = sorted(set(names) - set(BIO_PRESET_NAMES))
    if unknown:
        raise ValueError(f"unknown poses {unknown}; valid: {BIO_PRESET_NAMES}")
    return names


def _grab_frames(files: list[Path], max_frames: int) -> list[dict]:
    """Per sequence: hand_root keypoints, the raw aligned joints and the frame selections."""
    import torch

    from hand_ik.frames import to_hand_root

    seqs = []
    for path in files:
        with np.load(path) as data:
            joints = data["joints_wristlocal_aligned"][: max_frames or None].astype(np.float64)
        kp = to_hand_root(torch.from_numpy(joints)).numpy()
        seqs.append({"keypoints": kp, "joints": joints, "bend": _human_bend(kp)})
    bend = np.concatenate([s["bend"] for s in seqs])
    lo, hi = np.quantile(bend, GRAB_TAIL), np.quantile(bend, 1.0 - GRAB_TAIL)
    for s in seqs:
        s["open"] = s["bend"] <= lo
        s["closed"] = s["bend"] >= hi
        s["pinch"] = np.linalg.norm(s["keypoints"][:, 4] - s["keypoints"][:, 8], axis=1) < (
            GRAB_PINCH_M
        )
    return seqs


def _human_bend(kp: np.ndarray) -> np.ndarray:
    """(N, 21, 3) -> (N,) mean bend angle (rad) between consecutive bones of the long fingers."""
    total = np.zeros(len(kp))
    for f in range(1, 5):
        chain = kp[:, [0, 1 + 4 * f, 2 + 4 * f, 3 + 4 * f, 4 + 4 * f]]
        bones = np.diff(chain, axis=1)
        bones /= np.linalg.norm(bones, axis=-1, keepdims=True).clip(1e-9)  # no zero bones
        cos = (bones[:, 1:] * bones[:, :-1]).sum(-1).clip(-1.0, 1.0)
        total += np.arccos(cos).sum(1)
    return total / 4.0


def _summarise(name: str, flex: dict, pose_mm: dict, reach_mm: dict, grab: dict) -> dict:
    fingers = list(next(iter(flex.values())))
    long_fingers = [f for f in fingers if f != "thumb"]
    row: dict = {"name": name}
    if "flat" in flex:
        row["flat_flex_max"] = max(flex["flat"].values())
    if "fist" in flex:
        row["fist_flex_min"] = min(flex["fist"][f] for f in long_fingers)
        row["fist_thumb_flex"] = flex["fist"].get("thumb")
    for pose, value in pose_mm.items():
        row[f"{pose}_mm"] = value
    for finger, value in reach_mm.items():
        row[f"pinch_reach_{finger}_mm"] = value
    moves = []
    for finger in fingers:
        curl = f"curl_{finger}"
        if curl in flex and "flat" in flex:
            moves += [abs(flex[curl][o] - flex["flat"][o]) for o in fingers if o != finger]
    if moves:
        row["independence_max"] = max(moves)
    row.update(grab)
    return row


def _detail_rows(name: str, flex: dict, pose_mm: dict) -> list[dict]:
    rows = []
    for pose, values in flex.items():
        row = {"name": f"{name}/{pose}", **{f"flex_{f}": v for f, v in values.items()}}
        if pose in pose_mm:
            row["tip_distance_mm"] = pose_mm[pose]
        rows.append(row)
    return rows


def _robot_rows(name: str, urdf: Path | None, poses: list[str], seqs: list[dict]) -> list[dict]:
    from hand_ik.retarget import load_retargeting_config
    from hand_ik.retarget.fidelity import FlexionGauge, evaluate_presets, pinch_reach

    config = load_retargeting_config(name, urdf=urdf)
    retargeter = config.build()
    gauge = FlexionGauge(retargeter.robot, config.flexion)
    start = time.perf_counter()
    result = evaluate_presets(retargeter, poses)
    flex, pose_mm = result.flex, result.tip_mm
    reach_mm = {
        f: pinch_reach(retargeter, f"{f}_tip") * 1e3
        for f in LONG
        if f"{f}_tip" in config.fingertips and f"pinch_{f}" in poses
    }
    grab = _grab_measures(seqs, lambda kp: retargeter.retarget(kp).positions, retargeter, gauge)
    row = _summarise(config.name, flex, pose_mm, reach_mm, grab)
    row["seconds"] = time.perf_counter() - start
    return [row, *_detail_rows(config.name, flex, pose_mm)]


def _grab_measures(seqs: list[dict], step, retargeter, gauge, reset=None, key="keypoints") -> dict:
    """Mean robot flexion on the open / closed GRAB frames, thumb-index distance on pinches."""
    from hand_ik.retarget.fidelity import tip_distance

    if not seqs:
        return {}
    open_flex, closed_flex, pinch = [], [], []
    for s in seqs:
        (reset or retargeter.reset)()
        for i, frame in enumerate(s[key]):
            q = step(frame)
            if s["open"][i]:
                open_flex.append(np.mean(list(gauge(q).values())))
            if s["closed"][i]:
                closed_flex.append(np.mean(list(gauge(q).values())))
            if s["pinch"][i] and "index_tip" in retargeter.config.fingertips:
                pinch.append(tip_distance(retargeter, q, "index_tip") * 1e3)
    out = {
        "grab_frames": int(sum(len(s[key]) for s in seqs)),
        "grab_open_flex_mean": float(np.mean(open_flex)) if open_flex else None,
        "grab_closed_flex_mean": float(np.mean(closed_flex)) if closed_flex else None,
    }
    if pinch:
        out["grab_pinch_index_mm"] = float(np.mean(pinch))
        out["grab_pinch_frames"] = len(pinch)
    return out


# --- dex-retargeting (optional) ----------------------------------------------------------------


def _dex_input_rotation(seqs: list[dict]) -> np.ndarray | None:
    """Rotation taking hand_root vectors to the GRAB aligned frame dex-retargeting is fed.

    Fitted (Kabsch) on wrist-relative keypoints of all loaded GRAB frames.
    """
    if not seqs:
        return None
    a = np.concatenate([s["keypoints"] - s["keypoints"][:, :1] for s in seqs]).reshape(-1, 3)
    b = np.concatenate([s["joints"] - s["joints"][:, :1] for s in seqs]).reshape(-1, 3)
    u, _, vt = np.linalg.svd(a.T @ b)
    d = np.sign(np.linalg.det(u @ vt))
    return (u @ np.diag([1.0, 1.0, d]) @ vt).T  # b ~ rot @ a


def _dex_rows(name: str, urdf_dir: Path, poses: list[str], seqs: list[dict]) -> list[dict]:
    try:
        import dex_retargeting
        from dex_retargeting.retargeting_config import RetargetingConfig as DexConfig
    except ImportError:
        return [{"name": f"dexretargeting_{name}", "skipped": "dex-retargeting is not installed"}]
    from hand_ik.retarget import load_retargeting_config
    from hand_ik.retarget.fidelity import FlexionGauge, evaluate_presets

    if name not in DEX_CONFIGS:
        return []  # left configs: dex-retargeting expects a left-hand input, ours is right form
    rot = _dex_input_rotation(seqs)
    if rot is None:
        return [
            {"name": f"dexretargeting_{name}", "skipped": "needs GRAB frames for its input frame"}
        ]
    ours = load_retargeting_config(name, urdf=urdf_dir).build()
    gauge = FlexionGauge(ours.robot, ours.config.flexion)
    DexConfig.set_default_urdf_dir(str(urdf_dir))
    cfg_file = DEX_CONFIGS[name]
    folder = Path(dex_retargeting.__file__).parent / "configs" / "teleop"
    retargeting = DexConfig.load_from_file(folder / cfg_file).build()
    optimizer = retargeting.optimizer
    origin_idx, task_idx = optimizer.target_link_human_indices
    order = [retargeting.joint_names.index(n) for n in ours.robot.joint_names]

    def step(joints: np.ndarray) -> np.ndarray:
        qpos = retargeting.retarget(joints[task_idx] - joints[origin_idx])
        return np.asarray(qpos, dtype=float)[order]

    start = time.perf_counter()
    result = evaluate_presets(ours, poses, lambda kp, _bio: step(kp @ rot.T), retargeting.reset)
    flex, pose_mm = result.flex, result.tip_mm
    grab = _grab_measures(seqs, step, ours, gauge, reset=retargeting.reset, key="joints")
    row = _summarise(f"dexretargeting_{name}", flex, pose_mm, {}, grab)
    row.update(config=cfg_file, seconds=time.perf_counter() - start)
    return [row, *_detail_rows(f"dexretargeting_{name}", flex, pose_mm)]


def run(args: argparse.Namespace) -> dict:
    names, urdf = robot_names_and_urdf(args)
    poses = _pose_names(args.poses)
    files = sorted(Path(args.data).glob("*.npz")) if Path(args.data).is_dir() else []
    seqs = _grab_frames(files, args.max_frames) if files else []
    from tqdm import tqdm

    rows = []
    for name in tqdm(names, desc="robots", unit="robot", disable=None, leave=False):
        try:
            rows += _robot_rows(name, urdf, poses, seqs)
        except (FileNotFoundError, ValueError) as exc:
            if args.robot != "all":
                raise
            rows.append({"name": name, "skipped": str(exc)})
            continue
        if not args.no_dex and urdf is not None and Path(urdf).is_dir():
            rows += _dex_rows(name, Path(urdf), poses, seqs)
    if not files:
        rows.append({"name": "grab", "skipped": f"no .npz sequences in {args.data}"})
    if args.camera:
        from hand_pose_ros.benchmarks.fidelity_camera import run_camera

        built = [r["name"] for r in rows if "skipped" not in r and "/" not in r["name"]
                 and not r["name"].startswith("dexretargeting_")]  # fmt: skip
        rows += run_camera(built, urdf, args.camera_start, args.camera_frames, args.estimator)
    return {"bench": "fidelity", "machine": machine_info(), "rows": rows}
