"""``hand-teleop bench NAME --json``: benchmarks that print one JSON object.

Each benchmark module defines ``add_arguments(parser)`` and ``run(args) -> dict``
returning ``{"bench": NAME, "machine": machine_info(), "rows": [...]}``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

#: Benchmark name -> module implementing it.
BENCHMARKS: dict[str, str] = {}
BENCHMARKS["retarget"] = "hand_pose_ros.bench_retarget"
BENCHMARKS["flops"] = "hand_pose_ros.estimation.bench_flops"
BENCHMARKS["estimator"] = "hand_pose_ros.estimation.bench_estimator"
BENCHMARKS["ik"] = "hand_pose_ros.cli.bench_ik"
BENCHMARKS["pipeline"] = "hand_pose_ros.cli.bench_pipeline"
BENCHMARKS["synth"] = "hand_pose_ros.synth.bench_synth"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="speed/accuracy benchmarks (JSON output)")
    bench_sub = parser.add_subparsers(dest="bench_name", metavar="NAME", required=True)
    for name, module_name in BENCHMARKS.items():
        module = importlib.import_module(module_name)
        sub = bench_sub.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0])
        sub.add_argument("--json", action="store_true", help="print only the JSON object")
        module.add_arguments(sub)
        sub.set_defaults(func=run, bench_module=module_name)


def run(args: argparse.Namespace) -> int:
    result = importlib.import_module(args.bench_module).run(args)
    text = json.dumps(result, indent=None if args.json else 2)
    print(text)
    sys.stdout.flush()
    return 0
