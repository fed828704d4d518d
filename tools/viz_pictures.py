"""Docs pictures from `hand-teleop run --viz` videos: the README GIF and single frames.

    python tools/viz_pictures.py gif RUN.mp4 docs/demo.gif [--every 2] [--width 640]
    python tools/viz_pictures.py frame RUN.mp4 docs/x.png --index 120 [--width 800]

The videos come from the product path (`hand-teleop run --viz`); this script only picks
and shrinks frames (GIF: ``viz.video.write_gif``; PNG: full colour, or a dithered
256-colour palette when that is too large for a README).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from hand_pose_ros.viz.video import write_gif


def read_frames(path: Path, every: int = 1, start: int = 0, stop: int | None = None):
    """RGB frames ``start, start + every, ...`` (before ``stop``) of a video."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise FileNotFoundError(f"cannot open {path}")
    frames, i = [], 0
    while stop is None or i < stop:
        ok, frame = cap.read()
        if not ok:
            break
        if i >= start and (i - start) % every == 0:
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        i += 1
    cap.release()
    if not frames:
        raise ValueError(f"{path}: no frames in [{start}, {stop})")
    return frames


def save_png(image: np.ndarray, path: Path, width: int, max_bytes: int = 250_000) -> int:
    """Save an RGB image at most ``width`` wide; if the full-colour PNG is over
    ``max_bytes``, again with a dithered 256-colour palette. Returns bytes written."""
    h, w = image.shape[:2]
    if w > width:
        image = cv2.resize(image, (width, round(h * width / w)), interpolation=cv2.INTER_AREA)
    path.parent.mkdir(parents=True, exist_ok=True)
    pil = Image.fromarray(image)
    pil.save(path, optimize=True)
    if path.stat().st_size > max_bytes:
        pil.quantize(256, method=Image.Quantize.MEDIANCUT,
                     dither=Image.Dither.FLOYDSTEINBERG).save(path, optimize=True)  # fmt: skip
    return path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    gif = sub.add_parser("gif")
    gif.add_argument("video", type=Path)
    gif.add_argument("out", type=Path)
    gif.add_argument("--every", type=int, default=2, help="keep every Nth frame")
    gif.add_argument("--start", type=int, default=0)
    gif.add_argument("--stop", type=int, default=None)
    gif.add_argument("--fps", type=float, default=15.0, help="the video's frame rate")
    gif.add_argument("--width", type=int, default=640)
    gif.add_argument("--colours", type=int, default=64)
    frame = sub.add_parser("frame")
    frame.add_argument("video", type=Path)
    frame.add_argument("out", type=Path)
    frame.add_argument("--index", type=int, required=True)
    frame.add_argument("--width", type=int, default=960)
    args = parser.parse_args()
    if args.what == "gif":
        frames = read_frames(args.video, args.every, args.start, args.stop)
        size = write_gif(args.out, frames, fps=args.fps / args.every, max_width=args.width,
                         colours=args.colours)  # fmt: skip
        print(f"{args.out}: {len(frames)} frames, {size / 1e6:.2f} MB")
    else:
        image = read_frames(args.video, 1, args.index, args.index + 1)[0]
        size = save_png(image, args.out, args.width)
        print(f"{args.out}: {size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
