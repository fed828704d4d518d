"""Software rendering of a hand mesh and skeleton (numpy + OpenCV, no GL).

Painter's algorithm: faces sorted far to near, filled with Lambert shading
(headlight) at 2x supersampling, then the 21-keypoint skeleton on top.
Orthographic views; all panels share one scale so sizes compare.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from hand_ik.keypoints import FINGER_KEYPOINTS, SKELETON_EDGES

#: BGR colour per finger (thumb..little) for the skeleton.
FINGER_COLOURS = ((0, 80, 255), (0, 200, 255), (40, 200, 40), (255, 160, 0), (220, 0, 180))
SKIN_BGR = np.array([150.0, 180.0, 225.0])


@dataclass(frozen=True)
class View:
    """An orthographic view: ``rotation`` maps model coordinates to camera
    coordinates (x right, y down, z away from the viewer)."""

    name: str
    rotation: np.ndarray


def look_rotation(forward: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Rotation (3, 3) whose rows are the camera x, y, z axes in model coordinates.

    Args:
        forward: viewing direction (into the screen), model frame.
        up: direction that should point up on screen.
    """
    z = forward / np.linalg.norm(forward)
    y = -(up - (up @ z) * z)
    y /= np.linalg.norm(y)
    x = np.cross(y, z)
    return np.stack([x, y, z])


def hand_views(palm_dir: np.ndarray, finger_dir: np.ndarray, radial_dir: np.ndarray) -> list[View]:
    """Back, palm, radial-side and oblique views of a hand.

    Args:
        palm_dir: unit vector out of the palm (model frame).
        finger_dir: unit vector wrist -> fingers.
        radial_dir: unit vector toward the thumb side.
    """
    oblique = palm_dir + 0.8 * radial_dir
    return [
        View("back", look_rotation(palm_dir, finger_dir)),
        View("palm", look_rotation(-palm_dir, finger_dir)),
        View("thumb side", look_rotation(-radial_dir, finger_dir)),
        View("oblique palm", look_rotation(-oblique, finger_dir + 0.3 * palm_dir)),
    ]


def render_mesh(
    vertices: np.ndarray,
    faces: np.ndarray,
    view: View,
    size: int,
    scale: float,
    centre: np.ndarray,
    joints: np.ndarray | None = None,
    supersample: int = 2,
    colour_bgr: np.ndarray = SKIN_BGR,
) -> np.ndarray:
    """Render one view.

    Args:
        vertices: (V, 3) metres, model frame; faces: (F, 3) counter-clockwise
            seen from outside.
        view: the view; size: output image side in pixels.
        scale: pixels per metre; centre: (3,) model point at the image centre.
        joints: (21, 3) keypoints (FreiHAND order) to draw on top, or None.

    Returns:
        (size, size, 3) uint8 BGR image.
    """
    s = supersample
    big = size * s
    cam = (vertices - centre) @ view.rotation.T
    px = cam[:, :2] * scale * s + big / 2.0
    img = np.full((big, big, 3), 255, np.uint8)
    tri = cam[faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    norm = np.linalg.norm(normals, axis=1)
    # Degenerate (zero-area) faces have no normal: treat them as edge-on.
    normals = normals / np.maximum(norm, 1e-15)[:, None]
    facing = -normals[:, 2]  # > 0: faces the viewer (camera looks along +z)
    light = np.clip(np.abs(facing), 0.0, 1.0)
    shade = 0.25 + 0.75 * light
    order = np.argsort(-tri[:, :, 2].mean(1))  # far first
    pts = np.round(px[faces] * 16).astype(np.int32)  # 4 fractional bits
    for f in order:
        colour = colour_bgr * shade[f]
        if facing[f] < 0:  # inside of the wrist opening: darker
            colour = colour * 0.55
        cv2.fillConvexPoly(img, pts[f], colour.tolist(), lineType=cv2.LINE_AA, shift=4)
    if s > 1:
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    if joints is not None:
        jp = ((joints - centre) @ view.rotation.T)[:, :2] * scale + size / 2.0
        jp = np.round(jp * 16).astype(np.int32)
        finger_of = {
            k: i for i, name in enumerate(FINGER_KEYPOINTS) for k in FINGER_KEYPOINTS[name]
        }
        for a, b in SKELETON_EDGES:
            colour = FINGER_COLOURS[finger_of[b]]
            cv2.line(img, tuple(jp[a]), tuple(jp[b]), colour, 2, cv2.LINE_AA, shift=4)
        for k, p in enumerate(jp):
            colour = (40, 40, 40) if k == 0 else FINGER_COLOURS[finger_of[k]]
            cv2.circle(img, tuple(p), 3 * 16, colour, -1, cv2.LINE_AA, shift=4)
    return img


def render_panels(
    meshes: list[tuple[str, np.ndarray, np.ndarray | None]],
    faces: np.ndarray,
    views: list[View],
    size: int = 320,
) -> np.ndarray:
    """Grid image: one row per mesh, one column per view, shared scale.

    Args:
        meshes: (label, vertices (V, 3), joints (21, 3) or None) per row.
        faces: (F, 3).
        views: the columns.
        size: panel side in pixels.

    Returns:
        uint8 BGR image.
    """
    allv = np.concatenate([m[1] for m in meshes])
    centre = 0.5 * (allv.min(0) + allv.max(0))
    extent = 0.0
    for view in views:
        for _, verts, _ in meshes:
            cam = (verts - centre) @ view.rotation.T
            extent = max(extent, np.abs(cam[:, :2]).max())
    scale = 0.45 * size / max(extent, 1e-6)
    rows = []
    for label, verts, joints in meshes:
        # Centre each row on its own mesh so poses stay in frame.
        row_centre = 0.5 * (verts.min(0) + verts.max(0))
        panels = []
        for view in views:
            panel = render_mesh(verts, faces, view, size, scale, row_centre, joints)
            cv2.putText(
                panel,
                f"{label}: {view.name}",
                (6, 18),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.5,
                (30, 30, 30),
                1,
                cv2.LINE_AA,
            )
            panels.append(panel)
        rows.append(np.concatenate(panels, axis=1))
    grid = np.concatenate(rows, axis=0)
    # Scale bar: 5 cm.
    bar = round(0.05 * scale)
    h = grid.shape[0]
    cv2.line(grid, (10, h - 12), (10 + bar, h - 12), (0, 0, 0), 2)
    cv2.putText(
        grid, "5 cm", (14 + bar, h - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA
    )
    return grid
