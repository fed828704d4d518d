"""``hand-teleop``: one entry point, one subcommand module each.

Subcommand modules stay import-light (no torch or rclpy at module level) so
``hand-teleop --help`` is instant; each defines ``add_parser(subparsers)``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys
import traceback
from pathlib import Path

from hand_pose_ros import __version__

#: Package folders whose ValueError / FileNotFoundError are deliberate user-input checks
#: (found without importing them: ``hand_ik`` pulls in torch).
FIRST_PARTY_ROOTS: tuple[Path, ...] = tuple(
    Path(p).resolve() for name in ("hand_pose_ros", "hand_ik")
    for p in importlib.util.find_spec(name).submodule_search_locations)  # fmt: skip

#: Subcommand modules, in the order ``--help`` lists them.
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "hand_pose_ros.cli.info",
    "hand_pose_ros.cli.bench",
    "hand_pose_ros.cli.export",
    "hand_pose_ros.cli.show_hand",
    "hand_pose_ros.cli.synth",
    "hand_pose_ros.cli.train",
    "hand_pose_ros.cli.calibrate",
    "hand_pose_ros.cli.calibrate_robot",
    "hand_pose_ros.cli.run",
    "hand_pose_ros.cli.render_recording",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hand-teleop",
        description="Drive a robot hand with your own hand in front of a camera (ROS 2).",
    )
    parser.add_argument("--version", action="version", version=f"hand_pose_ros {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in SUBCOMMAND_MODULES:
        importlib.import_module(module_name).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (FileNotFoundError, ValueError) as exc:
        if args.verbose or not is_user_error(exc):
            raise  # -v, or a bug: the whole traceback
        # A bad path or value, refused by our own checks: one clear line.
        print(f"hand-teleop {args.command}: error: {exc} (-v: traceback)", file=sys.stderr)
        return 2


def is_user_error(exc: BaseException) -> bool:
    """Whether ``exc`` is one of our deliberate refusals of user input, not a bug.

    Our checks raise ``ValueError`` / ``FileNotFoundError`` from our own packages
    (``hand_pose_ros``, ``hand_ik``) with a message naming the fix. The same exception
    types raised inside numpy, torch or the standard library mean our code passed them
    something wrong: an internal error, shown with its traceback.
    """
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return True
    innermost = Path(frames[-1].filename).resolve()
    return any(root in innermost.parents for root in FIRST_PARTY_ROOTS)


if __name__ == "__main__":
    sys.exit(main())
