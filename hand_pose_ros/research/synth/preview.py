"""Contact sheets: a grid of samples with their keypoints and boxes drawn, to judge realism."""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np

from hand_ik.keypoints import FINGER_KEYPOINTS, FINGER_NAMES

#: One colour per finger (RGB), thumb to little.
FINGER_COLORS = ((255, 80, 80), (255, 200, 40), (80, 220, 80), (60, 170, 255), (200, 90, 255))


def draw_hand(
    image: np.ndarray,
    kp2d: np.ndarray,
    visibility: np.ndarray | None = None,
    box: np.ndarray | None = None,
    thickness: int = 1,
) -> None:
    """Draw a 21-keypoint skeleton (and a box) on an RGB uint8 image in place.

    Hidden keypoints (``visibility`` False) are drawn as hollow circles.
    """
    pts = np.rint(kp2d).astype(np.int32)
    for f, name in enumerate(FINGER_NAMES):
        chain = (0, *FINGER_KEYPOINTS[name])
        for a, b in itertools.pairwise(chain):
            cv2.line(
                image,
                tuple(int(x) for x in pts[a]),
                tuple(int(x) for x in pts[b]),
                FINGER_COLORS[f],
                thickness,
                cv2.LINE_AA,
            )
    for k, p in enumerate(pts):
        seen = visibility is None or bool(visibility[k])
        cv2.circle(
            image, (int(p[0]), int(p[1])), 2, (255, 255, 255), -1 if seen else 1, cv2.LINE_AA
        )
    if box is not None:
        x0, y0, x1, y1 = (round(float(v)) for v in box)
        cv2.rectangle(image, (x0, y0), (x1, y1), (255, 255, 0), 1)


def contact_sheet(
    items: list[dict], columns: int = 6, tile: int = 256, draw_labels: bool = True
) -> np.ndarray:
    """Grid of samples (numpy items as returned by ``SynthDataset.numpy_item``).

    Returns:
        RGB uint8 image; each tile is ``tile`` pixels wide (frames keep their aspect).
    """
    if not items:
        raise ValueError("no samples to draw")
    tiles = []
    for item in items:
        img = np.ascontiguousarray(item["image"]).copy()
        if draw_labels:
            kp, vis, box = item["kp2d"], item["visibility"], item["box_xyxy"]
            if kp.ndim == 2:  # crops: one hand
                draw_hand(img, kp, vis)
            else:
                for h in range(kp.shape[0]):
                    if item["hand_valid"][h]:
                        draw_hand(img, kp[h], vis[h], box[h])
        h, w = img.shape[:2]
        tiles.append(cv2.resize(img, (tile, round(tile * h / w)), interpolation=cv2.INTER_AREA))
    rows = []
    for r in range(0, len(tiles), columns):
        row = tiles[r : r + columns]
        row += [np.zeros_like(tiles[0])] * (columns - len(row))
        rows.append(np.concatenate(row, axis=1))
    return np.concatenate(rows, axis=0)


def save_contact_sheet(
    dataset, path: str | Path, count: int = 24, columns: int = 6, draw_labels: bool = True
) -> Path:
    """Write a PNG contact sheet of the first ``count`` samples of a ``SynthDataset``."""
    items = [dataset.numpy_item(i) for i in range(min(count, len(dataset)))]
    tile = 256 if items and items[0]["image"].shape[0] == items[0]["image"].shape[1] else 320
    sheet = contact_sheet(items, columns, tile, draw_labels)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), sheet[..., ::-1]):
        raise OSError(f"cannot write {path}")
    return path
