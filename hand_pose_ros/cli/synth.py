"""``hand-teleop synth``: generate a synthetic hand dataset (crops or frames), resumable.

Example::

    hand-teleop synth --kind crops --count 20000 --seed 0 --out data/synth_crops \\
        --preview docs/synth_crops.png --workers 2
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="render a synthetic hand dataset (crops for the estimator, frames for the detector)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--kind", choices=("crops", "frames"), default="crops", help="sample kind")
    parser.add_argument("--count", type=int, required=True, help="number of samples")
    parser.add_argument(
        "--seed", type=int, default=0,
        help="dataset seed: [0, 1000000) train, [1000000, 2000000) test (disjoint splits)",
    )  # fmt: skip
    parser.add_argument(
        "--out", type=Path, required=True, help="output folder (finished shards are kept)"
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes (0: in-process)")
    parser.add_argument("--shard-size", type=int, default=500, help="samples per shard")
    parser.add_argument(
        "--backgrounds", type=Path, default=None, help="folder of background photos (e.g. COCO)"
    )
    parser.add_argument(
        "--config", type=Path, default=None, help="YAML config (default config/synth.yaml keys)"
    )
    parser.add_argument(
        "--hand-source", choices=("auto", "open", "standin"), default=None, help="hand mesh"
    )
    parser.add_argument("--no-masks", action="store_true", help="do not store label masks")
    parser.add_argument(
        "--preview", type=Path, default=None, help="write a contact sheet PNG of the first samples"
    )
    parser.add_argument(
        "--preview-count", type=int, default=24, help="samples on the contact sheet"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hand_pose_ros.research.synth.dataset import generate_dataset
    from hand_pose_ros.research.synth.generator import SynthConfig

    data: dict = {}
    if args.config is not None:
        import yaml

        if not args.config.exists():
            raise FileNotFoundError(f"config not found: {args.config}")
        data = yaml.safe_load(args.config.read_text()) or {}
    data["kind"] = args.kind
    if args.hand_source is not None:
        data["hand_source"] = args.hand_source
    config = SynthConfig.from_dict(data)
    if args.backgrounds is not None and not args.backgrounds.is_dir():
        raise FileNotFoundError(f"background folder not found: {args.backgrounds}")
    stats = generate_dataset(
        args.out,
        config,
        count=args.count,
        seed=args.seed,
        workers=args.workers,
        shard_size=args.shard_size,
        backgrounds=str(args.backgrounds) if args.backgrounds else None,
        masks=not args.no_masks,
        progress=not args.quiet,
    )
    if args.preview is not None:
        from hand_pose_ros.research.synth.preview import save_contact_sheet
        from hand_pose_ros.research.synth.shards import SynthDataset

        save_contact_sheet(SynthDataset(args.out), args.preview, count=args.preview_count)
        stats["preview"] = str(args.preview)
    stats.update(kind=config.kind, seed=args.seed, out=str(args.out))
    print(json.dumps(stats))
    sys.stdout.flush()
    return 0
