"""``hand-teleop train NAME``: training runs (CPU-friendly defaults, logs, progress bars).

Each trainer module defines ``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib

from hand_pose_ros.cli._registry import add_registry_parsers

#: Trainer name -> module implementing it.
TRAINERS: dict[str, str] = {
    "ik": "hand_pose_ros.cli.train_ik",
    "meshnet": "hand_pose_ros.research.estimation.train",
    "detector": "hand_pose_ros.research.detection.train",
    "handedness": "hand_pose_ros.research.detection.handedness_train",
    "handedness-probe": "hand_pose_ros.research.detection.handedness_probe_fit",
}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train the networks (IK, estimator, detector, handedness)"
    )
    add_registry_parsers(parser, TRAINERS, "train_name", run)


def run(args: argparse.Namespace) -> int:
    return int(importlib.import_module(args.module).run(args) or 0)
