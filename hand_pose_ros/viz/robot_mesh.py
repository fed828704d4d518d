"""Shaded rendering of a robot hand's URDF visual meshes in a commanded pose (CPU).

The meshes (``viz/urdf_visuals.py``: mesh files through trimesh, URDF primitives,
decimated to a face budget, cached per robot) are placed at their links' poses
(pinocchio forward kinematics, or any link poses, e.g. composed from a recording's
``/tf``), flat-shaded (a headlight plus a key light from the upper left, and a small
highlight so black plastic still shows its shape) and rasterized on the CPU by one of
``viz/_raster.py``'s two rasterizers: ``"painter"`` (OpenCV, no GL; the default) or
``"gl"`` (moderngl on headless EGL, Mesa llvmpipe). Measured on this 2-core CPU (480x480
panel, 20 random poses, ``docs/viz.md``): painter 9.6 ms for our hand (2.4k faces), 25 ms
for the Allegro (11.6k), GL 15.9 and 29.5 ms; the painter also runs on one thread,
where llvmpipe takes every core, so it is the default.

The view is the stick renderer's (``viz/robot_render.RobotRenderer``: the same hand
axes and named views, palm toward the viewer), with its scale and centre fitted to the
meshes over the same poses, so palm and fingertips stay in frame. A URDF without any
visual geometry falls back to the stick drawing, with a log line saying so.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pinocchio as pin

from hand_pose_ros.viz._raster import GLRasterizer, paint_triangles
from hand_pose_ros.viz.robot_render import RobotRenderer
from hand_pose_ros.viz.urdf_visuals import MAX_FACES, load_robot_visuals

_log = logging.getLogger(__name__)

#: Rasterizer names (see the module docstring); "sticks" draws link origins only.
BACKENDS = ("painter", "gl", "sticks")
#: Mesh renderer background, RGB (light: most robot hands are dark plastic or metal).
MESH_BACKGROUND_RGB = (222, 224, 228)
#: Darkest albedo used for shading (a 2 % black mesh would show no shading at all).
MIN_ALBEDO = 0.10
#: Directions *toward* the lights in camera coordinates (x right, y down, z away).
_KEY_LIGHT = np.array([-0.45, -0.6, -0.66]) / np.linalg.norm([-0.45, -0.6, -0.66])
_HEADLIGHT = np.array([0.0, 0.0, -1.0])


def shade_faces(normals: np.ndarray, albedo: np.ndarray) -> np.ndarray:
    """Flat shading of faces seen along +z (camera coordinates).

    Args:
        normals: (F, 3) unit face normals, camera frame (either orientation: faces are
            lit two-sided, since many URDF meshes are not closed).
        albedo: (F, 3) colours in [0, 1].

    Returns:
        (F, 3) uint8 RGB.
    """
    n = np.where((normals[:, 2] > 0)[:, None], -normals, normals)  # toward the viewer
    key = np.clip(n @ _KEY_LIGHT, 0.0, 1.0)
    head = np.clip(n @ _HEADLIGHT, 0.0, 1.0)
    albedo = np.maximum(albedo, MIN_ALBEDO)
    diffuse = 0.22 + 0.48 * key[:, None] + 0.38 * head[:, None]
    half = _KEY_LIGHT + _HEADLIGHT
    half = half / np.linalg.norm(half)
    spec = 0.35 * np.clip(n @ half, 0.0, 1.0) ** 24
    return np.clip(255.0 * (albedo * diffuse + spec[:, None]), 0, 255).astype(np.uint8)


class RobotMeshRenderer:
    """Draws a robot hand's visual meshes in commanded joint positions (or link poses).

    Args:
        urdf_path: the robot's URDF.
        size: output (width, height) in pixels.
        view: one of ``robot_render.VIEWS``.
        fingertips, palm_link, hand_root_to_palm: as for ``RobotRenderer`` (the view).
        max_faces: face budget of the robot's meshes (decimated above it).
        backend: ``"painter"``, ``"gl"`` (raises RuntimeError without EGL) or
            ``"sticks"`` (no meshes: ``RobotRenderer``'s drawing).
        supersample: painter only: supersampling factor (anti-aliasing).
        mesh_dir: folder relative mesh paths start from; None: the URDF's folder.

    Attributes:
        joint_names: the movable joints a command may name.
        visuals: the loaded meshes (``urdf_visuals.RobotVisuals``; None for "sticks").
        backend: the rasterizer in use, or ``"sticks"`` when the URDF has no visuals.
        sticks: the stick renderer (the view's source, and the fallback).

    Holds pinocchio data and, with GL, a GL context: use one instance per thread, and
    make it in the thread that renders.
    """

    def __init__(
        self,
        urdf_path: str | Path,
        size: tuple[int, int] = (480, 480),
        view: str = "three_quarter",
        fingertips: Mapping[str, str] | None = None,
        palm_link: str | None = None,
        hand_root_to_palm: np.ndarray | None = None,
        max_faces: int = MAX_FACES,
        backend: str = "painter",
        supersample: int = 2,
        mesh_dir: str | Path | None = None,
    ):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if supersample < 1:
            raise ValueError(f"supersample must be at least 1, got {supersample}")
        self.sticks = RobotRenderer(
            urdf_path, size=size, view=view, fingertips=fingertips, palm_link=palm_link,
            hand_root_to_palm=hand_root_to_palm,
        )  # fmt: skip
        self.size = self.sticks.size
        self.joint_names = self.sticks.joint_names
        self.supersample = int(supersample)
        self._background = np.empty((self.size[1], self.size[0], 3), np.uint8)
        self._background[:] = MESH_BACKGROUND_RGB
        self._raster: GLRasterizer | None = None
        if backend == "sticks":
            self.visuals = None
            self.backend = "sticks"
            return
        self.visuals = load_robot_visuals(urdf_path, max_faces, mesh_dir)
        tree = self.sticks.tree
        drawn = {tree.names[i] for i in tree.hand_links()}
        meshes = [m for m in self.visuals.meshes if m.link in drawn]
        if not meshes:
            _log.warning("%s has no visual geometry on its hand links: drawing sticks (link "
                         "origins) instead of meshes", Path(urdf_path).name)  # fmt: skip
            self.backend = "sticks"
            return
        # One stacked mesh; each vertex knows its link.
        self.links = tuple(dict.fromkeys(m.link for m in meshes))
        link_index = {name: k for k, name in enumerate(self.links)}
        offsets = np.cumsum([0] + [len(m.vertices) for m in meshes])
        self._vertices = np.concatenate([m.vertices for m in meshes])
        self._vertex_link = np.concatenate(
            [np.full(len(m.vertices), link_index[m.link]) for m in meshes]
        )
        self._faces = np.concatenate([m.faces + o for m, o in zip(meshes, offsets, strict=False)])
        self._albedo = np.concatenate([m.face_rgb for m in meshes]).astype(np.float64)
        robot = self.sticks.robot
        self._frame_ids = [robot.model.getFrameId(name, pin.FrameType.BODY) for name in self.links]
        self._data = robot.model.createData()
        self._fit_view()
        if backend == "gl":
            self._raster = GLRasterizer(self.size)
        self.backend = backend

    def _fit_view(self) -> None:
        """Scale and centre so every fit pose's meshes fit the image with a margin."""
        rotation = self.sticks.rotation
        lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
        for q in self.sticks.fit_q:
            cam = self._posed_vertices(self._fk(q)) @ rotation.T
            lo, hi = np.minimum(lo, cam.min(0)), np.maximum(hi, cam.max(0))
        width, height = self.size
        margin = 0.05 * min(width, height)
        extent = np.maximum(hi[:2] - lo[:2], 1e-6)
        self.scale = float(min((width - 2 * margin) / extent[0], (height - 2 * margin) / extent[1]))
        self._centre = 0.5 * (lo + hi)
        self._depth = (float(lo[2]), float(max(hi[2] - lo[2], 1e-6)))

    def _fk(self, q_full: np.ndarray) -> np.ndarray:
        """(K, 4, 4) poses of ``self.links`` in the URDF root frame."""
        model = self.sticks.robot.model
        pin.forwardKinematics(model, self._data, q_full)
        out = np.empty((len(self.links), 4, 4))
        for k, fid in enumerate(self._frame_ids):
            out[k] = pin.updateFramePlacement(model, self._data, fid).homogeneous
        return out

    def _posed_vertices(self, poses: np.ndarray) -> np.ndarray:
        """(V, 3) vertices in the URDF root frame for (K, 4, 4) link poses."""
        rot, trans = poses[self._vertex_link, :3, :3], poses[self._vertex_link, :3, 3]
        return np.einsum("vij,vj->vi", rot, self._vertices) + trans

    def render(self, joint_positions: Mapping[str, float]) -> np.ndarray:
        """Draw the hand in the given joint positions.

        Args:
            joint_positions: joint name -> position (radians; metres for prismatic
                joints), e.g. a ``sensor_msgs/JointState`` as a dict. Joints not named
                stay neutral (mimic joints follow their parent).

        Returns:
            (height, width, 3) uint8 RGB image.
        """
        if self.backend == "sticks":
            return self.sticks.render(joint_positions)
        return self._draw(self._fk(self.sticks.joint_vector(joint_positions)))

    def render_link_poses(self, link_poses: Mapping[str, np.ndarray]) -> np.ndarray:
        """Draw the meshes at given link poses (e.g. composed from a recording's /tf).

        Args:
            link_poses: link name -> (4, 4) pose in the URDF root link's frame, metres.
                Links with visuals but no pose are not drawn.

        Returns:
            (height, width, 3) uint8 RGB image.
        """
        if self.backend == "sticks":
            raise ValueError("this URDF has no visual meshes to place at link poses")
        poses = np.full((len(self.links), 4, 4), np.nan)
        for k, name in enumerate(self.links):
            if name in link_poses:
                poses[k] = link_poses[name]
        return self._draw(poses)

    def _draw(self, poses: np.ndarray) -> np.ndarray:
        cam = self._posed_vertices(poses) @ self.sticks.rotation.T - self._centre
        tri = cam[self._faces]  # (F, 3, 3)
        keep = np.isfinite(tri).all(axis=(1, 2))
        tri, albedo = tri[keep], self._albedo[keep]
        normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        # Degenerate (zero-area) faces have no normal: treat them as edge-on.
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-15)
        rgb = shade_faces(normals, albedo)
        px = tri[:, :, :2] * self.scale + 0.5 * np.array(self.size, dtype=float)
        depth = (tri[:, :, 2] + self._centre[2] - self._depth[0]) / self._depth[1]
        # Poses beyond the fitted ones may leave [0, 1]: map [-0.1, 1.1] onto it.
        depth = np.clip((depth + 0.1) / 1.2, 0.0, 1.0)
        if self._raster is not None:
            return self._raster.draw(self._background, px, depth, rgb)
        return paint_triangles(self._background, px, depth, rgb, self.supersample)

    def close(self) -> None:
        """Free the GL context (if any)."""
        if self._raster is not None:
            self._raster.release()
            self._raster = None
