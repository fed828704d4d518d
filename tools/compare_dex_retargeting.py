"""Run dex-retargeting 0.5.0 (its own teleop vector configs) on GRAB-style sequences.

For comparison only, not a project dependency: install it beside the project, e.g.
``pip install --target /tmp/dexpkgs --no-deps dex-retargeting==0.5.0 nlopt anytree
pytransform3d trimesh lxml six`` and run ``PYTHONPATH=/tmp/dexpkgs python
tools/compare_dex_retargeting.py --robots DIR --data DIR``. Prints one JSON object with rows
like ``hand-teleop bench retarget``: ms per ``SeqRetargeting.retarget`` call, the mean
wrist->fingertip vector residual in robot space (mm, with dex-retargeting's own scaling
factor) and in human space (divided by the scaling), and joint jitter (rad per frame) of
the raw optimizer output and of its low-pass filtered output.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

ROBOTS = {
    "allegro": "allegro_hand_right.yml",
    "shadow": "shadow_hand_right.yml",
    "leap": "leap_hand_right.yml",
    "ability": "ability_hand_right.yml",
    "inspire": "inspire_hand_right.yml",
}
TIPS = (4, 8, 12, 16, 20)


def _row(name: str, config_file: Path, files: list[Path], max_frames: int) -> dict:
    from dex_retargeting.retargeting_config import RetargetingConfig

    retargeting = RetargetingConfig.load_from_file(config_file).build()
    optimizer = retargeting.optimizer
    origin_idx, task_idx = optimizer.target_link_human_indices
    robot = optimizer.robot
    origin_links = [robot.get_link_index(n) for n in optimizer.origin_link_names]
    task_links = [robot.get_link_index(n) for n in optimizer.task_link_names]
    tips = [k for k, t in enumerate(task_idx) if t in TIPS]
    times, residuals, raw_jitter, filtered_jitter = [], [], [], []
    for path in files:
        with np.load(path) as data:
            joints = data["joints_wristlocal_aligned"][: max_frames or None].astype(np.float64)
        retargeting.reset()
        raw, filtered = [], []
        for frame in joints:
            ref = frame[task_idx] - frame[origin_idx]
            start = time.perf_counter()
            qpos = retargeting.retarget(ref)
            times.append((time.perf_counter() - start) * 1e3)
            filtered.append(qpos)
            q_raw = retargeting.get_qpos()  # before its low-pass filter; mimic joints unset
            if optimizer.adaptor is not None:
                q_raw = optimizer.adaptor.forward_qpos(q_raw)
            raw.append(q_raw)
            robot.compute_forward_kinematics(q_raw)
            origin = np.stack([robot.get_link_pose(i)[:3, 3] for i in origin_links])
            task = np.stack([robot.get_link_pose(i)[:3, 3] for i in task_links])
            err = np.linalg.norm((task - origin) - optimizer.scaling * ref, axis=1)[tips]
            residuals.append(err.mean())
        raw_jitter.append(np.abs(np.diff(np.array(raw), axis=0)).mean(axis=1))
        filtered_jitter.append(np.abs(np.diff(np.array(filtered), axis=0)).mean(axis=1))
    times = np.asarray(times)
    return {
        "name": f"dexretargeting_{name}",
        "config": config_file.name,
        "frames": len(times),
        "ms_per_frame_mean": float(times.mean()),
        "ms_per_frame_median": float(np.median(times)),
        "ms_per_frame_p95": float(np.percentile(times, 95)),
        "vector_residual_mm": float(np.mean(residuals) * 1e3),
        "vector_residual_human_mm": float(np.mean(residuals) * 1e3 / optimizer.scaling),
        "jitter_rad_per_frame": float(np.mean(np.concatenate(raw_jitter))),
        "filtered_jitter_rad_per_frame": float(np.mean(np.concatenate(filtered_jitter))),
        "scale": float(optimizer.scaling),
    }


def main() -> None:
    import dex_retargeting
    from dex_retargeting.retargeting_config import RetargetingConfig

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--robots", type=Path, required=True, help="dex-urdf robots/hands folder")
    parser.add_argument("--data", type=Path, required=True, help="folder of GRAB-style .npz files")
    parser.add_argument("--max-frames", type=int, default=0, help="frames per sequence (0: all)")
    parser.add_argument("--robot", action="append", choices=sorted(ROBOTS), help="default: all")
    args = parser.parse_args()
    RetargetingConfig.set_default_urdf_dir(str(args.robots))
    configs = Path(dex_retargeting.__file__).parent / "configs" / "teleop"
    files = sorted(args.data.glob("*.npz"))
    rows = [_row(n, configs / ROBOTS[n], files, args.max_frames) for n in args.robot or ROBOTS]
    print(json.dumps({"bench": "retarget_dex_retargeting", "rows": rows}))


if __name__ == "__main__":
    main()
