"""The human hand as the IK understood it, drawn over the input image.

A hand state (shape ``betas``, the 23 biomechanical DoF and the wrist pose in the camera
frame, as on ``/hand/state``) poses our hand model (``hand_ik``); the mesh is placed so
that its own hand_root frame (``hand_ik.frames.hand_root_frame`` of its keypoints) lands
on the wrist pose, projected with the camera intrinsics ``K``, flat-shaded and blended
over the image (painter's algorithm, ``viz/_raster.py``). Left hands: the IK solves them
in right-hand canonical form (x mirrored), so the right model is posed and mirrored
back (``hand_ik.frames.MIRROR_X``). An estimator's own mesh (``handtrack_mesh``: vertices
already in the camera frame, :class:`CameraMesh`) is drawn the same way in its own colour.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hand_pose_ros.viz._raster import paint_triangles

#: Albedo of the IK's hand (RGB in [0, 1]; blue, so it stands apart from skin) and how
#: much it covers the image (0..1).
MESH_RGB = np.array([0.45, 0.72, 1.0])
MESH_OPACITY = 0.55
#: The estimator's mesh (green, as its /hand/markers namespace ``estimated``), and its cover.
ESTIMATED_RGB = np.array([0.3, 0.85, 0.45])
ESTIMATED_OPACITY = 0.4
#: Direction toward the light, camera frame (upper left, from the camera's side).
_LIGHT = np.array([-0.3, -0.5, -0.81]) / np.linalg.norm([-0.3, -0.5, -0.81])


@dataclass(frozen=True)
class HandPose:
    """One solved hand (what a HandState message holds).

    Attributes:
        betas: (10,) shape coefficients of the hand model.
        bio: (23,) DoF, radians, ``hand_ik.BIO_DOF_NAMES`` order.
        rotation: (3, 3) hand_root axes in the camera optical frame (columns x, y, z).
        translation: (3,) wrist position in the camera optical frame, metres.
        handedness: ``"right"`` or ``"left"``.
    """

    betas: np.ndarray
    bio: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    handedness: str

    def __post_init__(self) -> None:
        if self.handedness not in ("right", "left"):
            raise ValueError(f"handedness must be 'right' or 'left', got {self.handedness!r}")
        if np.shape(self.rotation) != (3, 3) or np.shape(self.translation) != (3,):
            raise ValueError("rotation must be (3, 3) and translation (3,)")


@dataclass(frozen=True)
class CameraMesh:
    """A hand mesh already in the camera frame (an estimator's, e.g. ``handtrack_mesh``).

    Attributes:
        vertices: (V, 3) camera optical frame, metres; our hand model's vertices (left
            hands: the right model mirrored x -> -x).
        handedness: ``"right"`` or ``"left"`` (the faces' winding).
    """

    vertices: np.ndarray
    handedness: str

    def __post_init__(self) -> None:
        if self.handedness not in ("right", "left"):
            raise ValueError(f"handedness must be 'right' or 'left', got {self.handedness!r}")
        if np.ndim(self.vertices) != 2 or np.shape(self.vertices)[1] != 3:
            raise ValueError(f"vertices must be (V, 3), got {np.shape(self.vertices)}")


class HandMeshOverlay:
    """Poses the hand model from hand states and draws it over camera images.

    Args:
        model: hand model name or file (``hand_ik.load_hand_model``; the IK node's
            ``hand_model``, default ``"open"``).
    """

    def __init__(self, model: str = "open"):
        import torch

        import hand_ik

        self._torch = torch
        self._model = hand_ik.load_hand_model(model, side="right", dtype=torch.float64)
        self._bio_to_pose = hand_ik.bio_to_pose
        self.faces = np.asarray(self._model.faces, dtype=np.int64)

    def vertices_in_camera(self, hand: HandPose) -> np.ndarray:
        """(V, 3) mesh vertices in the camera optical frame, metres."""
        from hand_ik.frames import MIRROR_X, hand_root_frame

        torch = self._torch
        with torch.no_grad():
            bio = torch.as_tensor(np.asarray(hand.bio, float))[None]
            betas = torch.as_tensor(np.asarray(hand.betas, float))[None]
            out = self._model(betas=betas, pose=self._bio_to_pose(bio, model=self._model))
            rotation, origin = hand_root_frame(out.joints[0])
        local = (out.vertices[0] - origin).numpy() @ rotation.numpy()  # hand_root frame
        if hand.handedness == "left":
            local = local @ MIRROR_X  # the canonical right hand mirrored back
        return local @ np.asarray(hand.rotation).T + np.asarray(hand.translation)

    def draw(self, image: np.ndarray, K: np.ndarray, hands: list[HandPose],
             opacity: float = MESH_OPACITY) -> np.ndarray:  # fmt: skip
        """Blend the posed meshes over an (H, W, 3) uint8 RGB image; returns a new image.

        Args:
            image: the camera image the hand states were solved from.
            K: (3, 3) its intrinsics, pixels.
            hands: the hands to draw.
            opacity: how much a mesh covers the image, in [0, 1].
        """
        meshes = [CameraMesh(self.vertices_in_camera(h), h.handedness) for h in hands]
        return self.draw_meshes(image, K, meshes, MESH_RGB, opacity)

    def draw_meshes(self, image: np.ndarray, K: np.ndarray, meshes: list[CameraMesh],
                    rgb: np.ndarray = ESTIMATED_RGB,
                    opacity: float = ESTIMATED_OPACITY) -> np.ndarray:  # fmt: skip
        """Blend camera-frame meshes (this model's faces) over an (H, W, 3) uint8 RGB
        image in albedo ``rgb`` (RGB in [0, 1]); returns a new image (``image`` itself
        when nothing is drawn). A mesh with another vertex count is skipped."""
        if not 0.0 <= opacity <= 1.0:
            raise ValueError(f"opacity must be in [0, 1], got {opacity}")
        out = image
        for mesh in meshes:
            verts = np.asarray(mesh.vertices, dtype=float)
            if len(verts) != int(self.faces.max()) + 1 or (verts[:, 2] <= 1e-3).any():
                continue  # another topology, or behind / at the camera
            faces = self.faces if mesh.handedness == "right" else self.faces[:, ::-1]
            tri = verts[faces]
            normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
            normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-15)
            visible = (normals * tri.mean(1)).sum(1) < 0  # faces toward the camera
            tri, normals = tri[visible], normals[visible]
            light = 0.35 + 0.65 * np.clip(normals @ _LIGHT, 0.0, 1.0)
            shade = np.clip(255.0 * np.asarray(rgb) * light[:, None], 0, 255).astype(np.uint8)
            uvw = tri @ np.asarray(K, float).T
            px = uvw[:, :, :2] / uvw[:, :, 2:3]
            z = tri[:, :, 2]
            depth = (z - z.min()) / max(float(np.ptp(z)), 1e-9)
            # Draw in the mesh's bounding box only (the image may be 1280x720), onto a
            # transparent canvas: the downscaled alpha is the anti-aliased coverage.
            h, w = out.shape[:2]
            x0, y0 = np.maximum(np.floor(px.reshape(-1, 2).min(0)).astype(int) - 2, 0)
            x1, y1 = np.minimum(np.ceil(px.reshape(-1, 2).max(0)).astype(int) + 3, (w, h))
            if x1 <= x0 or y1 <= y0:
                continue
            canvas = np.zeros((y1 - y0, x1 - x0, 4), np.uint8)
            rgba = np.concatenate([shade, np.full((len(shade), 1), 255, np.uint8)], axis=1)
            painted = paint_triangles(canvas, px - (x0, y0), depth, rgba, supersample=2)
            painted = painted.astype(np.float32) * (opacity / 255.0)
            crop = out[y0:y1, x0:x1].astype(np.float32)
            # painted RGB is premultiplied by coverage (the canvas was transparent black).
            blended = crop * (1.0 - painted[:, :, 3:]) + 255.0 * painted[:, :, :3]
            out = out.copy() if out is image else out
            out[y0:y1, x0:x1] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
        return out
