"""``hand-teleop train NAME``: training runs (CPU-friendly defaults, logs, progress bars).

Each trainer module defines ``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib

#: Trainer name -> module implementing it.
TRAINERS: dict[str, str] = {
    "ik": "hand_pose_ros.cli.train_ik",
}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train the networks (IK, estimator, detector)")
    train_sub = parser.add_subparsers(dest="train_name", metavar="NAME", required=True)
    for name, module_name in TRAINERS.items():
        module = importlib.import_module(module_name)
        sub = train_sub.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0])
        module.add_arguments(sub)
        sub.set_defaults(func=run, train_module=module_name)


def run(args: argparse.Namespace) -> int:
    return int(importlib.import_module(args.train_module).run(args) or 0)
