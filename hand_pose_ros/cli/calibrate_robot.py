"""``hand-teleop calibrate-robot``: fit a robot config on our pose presets, write its YAML."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hand_pose_ros.benchmarks.retarget import DEFAULT_ROBOTS, robot_names_and_urdf


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "calibrate-robot",
        help="calibrate a robot config (scale, offsets, weights) on the pose presets",
    )
    parser.add_argument(
        "--robot", required=True, help="robot config name or YAML path, or 'all' (shipped configs)"
    )
    parser.add_argument(
        "--urdf",
        type=Path,
        default=None,
        help=f"URDF file, or a dex-urdf robots folder (default {DEFAULT_ROBOTS} when present)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the calibration, leave the YAML unchanged"
    )
    parser.set_defaults(func=run)


def _yaml_path(name: str) -> Path:
    from hand_ik.retarget.config import ROBOT_CONFIG_DIR

    path = Path(name)
    return path if path.suffix in (".yaml", ".yml") else ROBOT_CONFIG_DIR / f"{name}.yaml"


def run(args: argparse.Namespace) -> int:
    from hand_ik.retarget import load_retargeting_config
    from hand_ik.retarget.calibrate import calibrate, write_calibration

    names, urdf = robot_names_and_urdf(args)
    rows = []
    for name in names:
        config = load_retargeting_config(name, urdf=urdf)
        calibration = calibrate(config)
        if not args.dry_run:
            write_calibration(_yaml_path(name), calibration, config.name)
        rows.append(
            {
                "name": config.name,
                "written": None if args.dry_run else str(_yaml_path(name)),
                "scale": round(calibration.scale, 4),
                "closed_power": calibration.closed_power,
                "intermediate_weight": calibration.intermediate_weight,
                "map_weight": calibration.map_weight,
                "pinch_weight": calibration.pinch_weight,
                "palm_length_m": calibration.palm_length_m,
                "open_pose_rad": {k: round(v, 4) for k, v in calibration.open_pose.items()},
                "pinch_mm": {k: round(v, 1) for k, v in calibration.pinch_mm.items()},
                "pinch_reach_mm": {k: round(v, 1) for k, v in calibration.reach_mm.items()},
            }
        )
    print(json.dumps({"calibrate_robot": rows}, indent=2))
    return 0
