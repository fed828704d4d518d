"""``hand-teleop show-hand``: render the hand model (mesh + skeleton, a few views) to a PNG."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

LOG = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "show-hand", help="render the hand model (mesh + skeleton, several views) to a PNG"
    )
    parser.add_argument("--out", type=Path, required=True, help="output PNG path")
    parser.add_argument(
        "--model",
        default="open",
        help="'open' (default), or a MANO_RIGHT.pkl / MANO_LEFT.pkl / npz path",
    )
    parser.add_argument("--side", choices=("right", "left"), default="right")
    parser.add_argument(
        "--betas",
        type=float,
        nargs="+",
        default=None,
        metavar="B",
        help="shape coefficients (up to 10; missing ones are 0)",
    )
    pose = parser.add_mutually_exclusive_group()
    pose.add_argument(
        "--bio",
        type=float,
        nargs=23,
        default=None,
        metavar="RAD",
        help="23 biomechanical DoF in radians (order hand_ik.BIO_DOF_NAMES)",
    )
    pose.add_argument(
        "--pose",
        type=float,
        nargs=45,
        default=None,
        metavar="RAD",
        help="45 axis-angle values, MANO joint order, relative to the flat template",
    )
    parser.add_argument(
        "--preset",
        action="append",
        default=None,
        choices=("rest", "flat", "fist", "pinch", "point"),
        help="named pose(s); repeat for one row each (default: rest)",
    )
    parser.add_argument("--size", type=int, default=320, help="panel size in pixels")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import cv2
    import torch

    import hand_ik
    from hand_ik.pose_presets import hand_directions, preset_pose
    from hand_pose_ros.viz.mesh_render import hand_views, render_panels

    model = hand_ik.load_hand_model(args.model, side=args.side, dtype=torch.float64)
    betas = None
    if args.betas is not None:
        if len(args.betas) > model.num_betas:
            raise ValueError(
                f"--betas takes at most {model.num_betas} values, got {len(args.betas)}"
            )
        betas = torch.tensor([args.betas], dtype=torch.float64)
    rows: list[tuple[str, torch.Tensor]] = []
    if args.bio is not None:
        bio = torch.tensor([args.bio], dtype=torch.float64)
        rows.append(("bio", hand_ik.bio_to_pose(bio, model=model)[0]))
    if args.pose is not None:
        rows.append(("pose", torch.tensor(args.pose, dtype=torch.float64)))
    for name in args.preset or ([] if rows else ["rest"]):
        rows.append((name, preset_pose(model, name)))
    meshes = []
    with torch.no_grad():
        for label, pose in rows:
            out = model(betas=betas, pose=pose[None])
            meshes.append((label, out.vertices[0].numpy(), out.joints[0].numpy()))
        dirs = hand_directions(model, betas)
    views = hand_views(*(dirs[k].numpy() for k in ("palm", "finger", "radial")))
    image = render_panels(meshes, model.faces, views, size=args.size)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(args.out), image, [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise ValueError(f"could not write {args.out}")
    LOG.info("wrote %s (%d x %d)", args.out, image.shape[1], image.shape[0])
    return 0
