"""``hand-teleop bench NAME --json``: benchmarks that print one JSON object.

Each benchmark module defines ``add_arguments(parser)`` and ``run(args) -> dict``
returning ``{"bench": NAME, "machine": machine_info(), "rows": [...]}``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from hand_pose_ros.cli._registry import add_registry_parsers

#: Benchmark name -> module implementing it.
BENCHMARKS: dict[str, str] = {}
BENCHMARKS["retarget"] = "hand_pose_ros.benchmarks.retarget"
BENCHMARKS["fidelity"] = "hand_pose_ros.benchmarks.fidelity"
BENCHMARKS["flops"] = "hand_pose_ros.benchmarks.flops"
BENCHMARKS["estimator"] = "hand_pose_ros.benchmarks.estimator"
BENCHMARKS["ik"] = "hand_pose_ros.benchmarks.ik"
BENCHMARKS["pipeline"] = "hand_pose_ros.benchmarks.pipeline"
BENCHMARKS["synth"] = "hand_pose_ros.benchmarks.synth"
BENCHMARKS["detector"] = "hand_pose_ros.benchmarks.detector"
BENCHMARKS["soak"] = "hand_pose_ros.benchmarks.soak"
BENCHMARKS["ik_tracks"] = "hand_pose_ros.benchmarks.ik_tracks"


def _json_flag(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--json", action="store_true", help="print only the JSON object")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="speed/accuracy benchmarks (JSON output)")
    add_registry_parsers(parser, BENCHMARKS, "bench_name", run, extra=_json_flag)


def run(args: argparse.Namespace) -> int:
    result = importlib.import_module(args.module).run(args)
    text = json.dumps(result, indent=None if args.json else 2)
    print(text)
    sys.stdout.flush()
    return 0
