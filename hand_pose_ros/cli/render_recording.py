"""``hand-teleop render-recording``: draw a recorded robot from its own /tf and URDF to a PNG."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

LOG = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "render-recording",
        help="draw the robot of a `run --record` MCAP from its /robot_description and /tf",
        description=__doc__.split(":", 1)[1].strip(),
    )
    parser.add_argument("recording", type=Path, help="an MCAP from hand-teleop run --record")
    parser.add_argument("--out", type=Path, required=True, help="output PNG")
    parser.add_argument("--at", type=float, action="append", default=None, metavar="S",
                        help="seconds after the first /tf, one panel each (repeat); "
                             "default: start, middle and end")  # fmt: skip
    parser.add_argument("--size", type=int, default=400, help="panel side in pixels")
    parser.add_argument("--mesh-dir", type=Path, default=None,
                        help="folder the URDF's relative / package:// mesh paths are under "
                             "(default: the current folder)")  # fmt: skip
    parser.add_argument("--backend", default="painter", choices=("painter", "gl"),
                        help="mesh rasterizer")  # fmt: skip
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import cv2

    from hand_pose_ros.viz.recording_render import render_recording

    if args.size < 64:
        raise ValueError(f"--size must be at least 64, got {args.size}")
    image = render_recording(args.recording, args.at, size=args.size, mesh_dir=args.mesh_dir,
                             backend=args.backend)  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(args.out), image[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise ValueError(f"could not write {args.out}")
    LOG.info("wrote %s (%d x %d)", args.out, image.shape[1], image.shape[0])
    return 0
