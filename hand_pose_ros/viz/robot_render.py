"""Fast software rendering of a robot hand's kinematic tree in a commanded pose (OpenCV).

No meshes: every link origin of the URDF (after forward kinematics with pinocchio) is a
node, and each link is joined to its parent link by a thick anti-aliased capsule. Link
origins are dots, fingertip links are larger dots in their finger's colour, and a
simple depth cue darkens and thins what is farther from the viewer. The projection is
orthographic, from a fixed view of the hand; its scale and centre are fitted once (the
neutral pose, the joint-limit corners and a few seeded random poses) and then kept, so
the picture does not jump from frame to frame. A 480x480 frame takes a few
milliseconds on one CPU core.

The view is defined in the ``hand_root`` frame (``hand_ik/frames.py``: +x thumb side,
+y along the fingers, +z out of the palm): pass the robot's ``palm_link`` and
``hand_root_to_palm`` from its retargeting config, or let the renderer estimate the
axes from the tree (fingers point from the first branching link to the mean fingertip;
the palm normal is the flattest direction of the neutral pose, on the side the
fingertips move to when the joints flex).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pinocchio as pin

from hand_ik.keypoints import FINGER_NAMES
from hand_ik.robot import RobotModel
from hand_pose_ros.viz.colours import BACKGROUND_RGB, EXTRA_RGB, FINGER_COLOURS_RGB, PALM_RGB
from hand_pose_ros.viz.mesh_render import look_rotation

_log = logging.getLogger(__name__)

_SHIFT = 4  # fractional bits for sub-pixel OpenCV drawing
_ONE = 1 << _SHIFT

#: Viewing directions in the hand_root frame: (azimuth from the palm normal toward the
#: thumb side, elevation toward the fingertips), degrees. The camera looks at the palm.
VIEWS: dict[str, tuple[float, float]] = {
    "front": (0.0, 0.0),
    "side": (90.0, 0.0),
    "three_quarter": (40.0, 20.0),
}

#: Link-name patterns that name a finger (searched in the fingertip link's name, then in
#: its ancestors' names up to the palm), in ``FINGER_NAMES`` order.
_FINGER_PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p)
    for p in (
        r"thumb|^th|_th",
        r"index|^ff|first",
        r"middle|^mf",
        r"ring|^rf",
        r"pinky|little|^lf",
    )
)


@dataclass(frozen=True)
class LinkTree:
    """The URDF links as a tree, in pinocchio frame order (parents before children).

    Attributes:
        names: link names.
        frame_ids: (L,) pinocchio frame id of each link.
        parent: (L,) index of each link's parent link, -1 for the root.
        joint: (L,) pinocchio id of the movable joint that carries each link (0: the
            root body): two links with the same id are rigidly attached.
    """

    names: tuple[str, ...]
    frame_ids: np.ndarray
    parent: np.ndarray
    joint: np.ndarray

    @property
    def leaves(self) -> np.ndarray:
        """Indices of the links without children."""
        has_child = np.zeros(len(self.names), dtype=bool)
        has_child[self.parent[self.parent >= 0]] = True
        return np.flatnonzero(~has_child)

    def children(self, i: int) -> np.ndarray:
        """Indices of the direct children of link ``i``."""
        return np.flatnonzero(self.parent == i)

    def branch_link(self) -> int:
        """The first link, walking down from the root, with more than one child (the palm)."""
        i = int(np.flatnonzero(self.parent < 0)[0])
        while len(kids := self.children(i)) == 1:
            i = int(kids[0])
        return i

    def hand_links(self) -> np.ndarray:
        """Indices of the links that belong to the hand: the branch link, its descendants,
        and its ancestors up to the first one a movable joint separates from it (the
        wrist); a forearm or world link beyond that is left out."""
        branch = self.branch_link()
        keep = np.zeros(len(self.names), dtype=bool)
        for i in range(len(self.names)):  # parents come first: one pass marks the subtree
            keep[i] = i == branch or (self.parent[i] >= 0 and keep[self.parent[i]])
        i = int(self.parent[branch])
        while i >= 0:
            keep[i] = True
            if self.joint[i] != self.joint[branch]:
                break
            i = int(self.parent[i])
        return np.flatnonzero(keep)


def link_tree(model: pin.Model) -> LinkTree:
    """Link tree of a pinocchio model built from a URDF (BODY frames, joined via their joints)."""
    body = [i for i, f in enumerate(model.frames) if f.type == pin.FrameType.BODY]
    index = {fid: k for k, fid in enumerate(body)}
    parent = []
    for fid in body:
        p = model.frames[fid].parentFrame
        # Walk up through joint / fixed-joint frames to the previous link.
        while p not in index and p != 0:
            p = model.frames[p].parentFrame
        parent.append(index.get(p, -1))
    names = tuple(model.frames[i].name for i in body)
    joint = [model.frames[i].parentJoint for i in body]
    return LinkTree(names, *(np.asarray(a, dtype=int) for a in (body, parent, joint)))


def finger_of_links(
    tree: LinkTree, fingertips: Mapping[str, str] | None = None
) -> tuple[np.ndarray, dict[int, int]]:
    """Colour index of every link and the highlighted fingertip links.

    Args:
        tree: the link tree.
        fingertips: human keypoint or finger name (``"thumb_tip"`` or ``"thumb"``) ->
            robot link name, as in the robot configs; None: every leaf link that a
            movable joint separates from the palm (branch link) is a fingertip, its
            finger guessed from link names (unnamed ones take the unused finger colours).

    Returns:
        colour: (L,) colour index per link: 0-4 the fingers in ``FINGER_NAMES`` order,
            5+ an extra colour, -1 palm (the link's subtree holds no fingertip or several).
        tips: link index -> colour index of each fingertip link.
    """
    index = {n: i for i, n in enumerate(tree.names)}
    tips: dict[int, int] = {}
    if fingertips:
        for key, link in fingertips.items():
            finger = key.removesuffix("_tip")
            if finger not in FINGER_NAMES:
                raise ValueError(f"fingertips: unknown finger {key!r}; valid: {FINGER_NAMES}")
            if link not in index:
                raise ValueError(f"fingertips: no link named {link!r}; links: {sorted(index)}")
            tips[index[link]] = FINGER_NAMES.index(finger)
    else:
        branch = tree.branch_link()
        unnamed = []
        for leaf in tree.leaves:
            if tree.joint[leaf] == tree.joint[branch]:
                continue  # rigidly fixed to the palm (a sensor or mounting frame)
            chain, i = [], int(leaf)
            while i >= 0 and i != branch:
                chain.append(tree.names[i].lower())
                i = int(tree.parent[i])
            guess = next(
                (f for name in chain for f, pat in enumerate(_FINGER_PATTERNS) if pat.search(name)),
                None,
            )
            if guess is None or guess in tips.values():
                unnamed.append(int(leaf))
            else:
                tips[int(leaf)] = guess
        free = [f for f in range(len(FINGER_NAMES)) if f not in tips.values()]
        free += range(len(FINGER_NAMES), len(FINGER_NAMES) + len(unnamed))
        tips.update(zip(unnamed, free, strict=False))
    colour = np.full(len(tree.names), -1, dtype=int)
    below: list[set[int]] = [set() for _ in tree.names]
    for tip, c in tips.items():
        i = tip
        while i >= 0:
            below[i].add(c)
            i = int(tree.parent[i])
    for i, fingers in enumerate(below):
        if len(fingers) == 1:
            colour[i] = next(iter(fingers))
    return colour, tips


def estimate_hand_axes(
    neutral: np.ndarray, samples: np.ndarray, tips: np.ndarray, branch: int
) -> np.ndarray:
    """Guess the hand_root axes of a robot hand from its link positions.

    Args:
        neutral: (L, 3) link origins in the neutral pose, URDF root frame, metres.
        samples: (S, L, 3) link origins in other poses (e.g. random within limits).
        tips: fingertip link indices.
        branch: index of the palm (first branching) link.

    Returns:
        (3, 3) rotation whose columns are the hand x (thumb side for a right hand),
        y (along the fingers: branch link to the mean fingertip, the thumb, i.e. the
        outlying tip, left out when there are 4 or more) and z (out of the palm) axes
        in the root frame.
    """
    finger_tips = np.asarray(tips, dtype=int)
    if len(finger_tips) >= 4:
        # The thumb points sideways: leave out the tip farthest from the others' mean.
        p = neutral[finger_tips]
        spread = [np.linalg.norm(p[k] - np.delete(p, k, 0).mean(0)) for k in range(len(p))]
        finger_tips = np.delete(finger_tips, int(np.argmax(spread)))
    y = neutral[finger_tips].mean(0) - neutral[branch]
    centred = neutral - neutral.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    if np.linalg.norm(y) < 1e-9:  # fingertips around the branch link: use the longest axis
        y = vt[0]
    y = y / np.linalg.norm(y)
    normal = vt[-1] - (vt[-1] @ y) * y
    if np.linalg.norm(normal) < 1e-9:  # flattest axis along the fingers: any perpendicular
        normal = np.cross(y, np.eye(3)[np.argmin(np.abs(y))])
    z = normal / np.linalg.norm(normal)
    # Joints mostly flex toward the palm: fingertips move to the palmar side.
    if samples.size and float(((samples[:, tips] - neutral[tips]) @ z).mean()) < 0.0:
        z = -z
    x = np.cross(y, z)
    return np.stack([x, y, z], axis=1)


def view_rotation(view: str) -> np.ndarray:
    """(3, 3) rotation from hand_root coordinates to camera coordinates (x right, y down,
    z away from the viewer) for one of ``VIEWS``."""
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; valid: {sorted(VIEWS)}")
    az, el = np.radians(VIEWS[view])
    eye = np.array([np.sin(az) * np.cos(el), np.sin(el), np.cos(az) * np.cos(el)])
    return look_rotation(-eye, np.array([0.0, 1.0, 0.0]))


class RobotRenderer:
    """Draws a robot hand (its URDF link tree) in commanded joint positions.

    Args:
        urdf_path: the robot's URDF (meshes are not loaded).
        size: output (width, height) in pixels.
        view: one of ``VIEWS``: ``"front"`` (palm toward the viewer, fingers up),
            ``"side"`` (from the thumb side) or ``"three_quarter"``.
        fingertips: finger (``"thumb"`` or ``"thumb_tip"``, ...) -> link name, as in
            ``config/robots/*.yaml``; None: all leaf links, fingers guessed from names.
        palm_link, hand_root_to_palm: the robot config's palm link and (3, 3) matrix
            with ``p_palm = hand_root_to_palm @ p_hand``; None: axes estimated from the tree.
        num_fit_poses: random poses (within the joint limits) used to fit the view.
        seed: seed of those poses.

    Attributes:
        joint_names: the movable joints a command may name.
        tree: the link tree (``tree.hand_links()`` are drawn).
        rotation: (3, 3) camera-from-URDF-root rotation of the view.
        scale: pixels per metre.
        fit_q: (S, n_joints) the poses the view was fitted to (neutral first).

    One instance holds pinocchio model data: use one per thread.
    """

    def __init__(
        self,
        urdf_path: str | Path,
        size: tuple[int, int] = (480, 480),
        view: str = "three_quarter",
        fingertips: Mapping[str, str] | None = None,
        palm_link: str | None = None,
        hand_root_to_palm: np.ndarray | None = None,
        num_fit_poses: int = 32,
        seed: int = 0,
    ):
        width, height = (int(s) for s in size)
        if width < 16 or height < 16:
            raise ValueError(f"size must be at least 16x16 pixels, got {size}")
        self.size = (width, height)
        self.robot = RobotModel(urdf_path)
        self.joint_names = self.robot.joint_names
        self.tree = link_tree(self.robot.model)
        self._colour, self._tips = finger_of_links(self.tree, fingertips)
        self._parent_of_mimic = {
            self.robot.joint_index[m.name]: (self.robot.joint_index[m.parent], m)
            for m in self.robot.mimics.values()
        }
        self._neutral = self.robot.full_q(
            np.clip(0.0, self.robot.free_lower, self.robot.free_upper)
        )
        fit_q = self._fit_poses(num_fit_poses, seed)
        self.fit_q = fit_q
        points = np.stack([self._link_positions(q) for q in fit_q])  # (S, L, 3)
        axes = self._hand_axes(points, palm_link, hand_root_to_palm)
        self.rotation = view_rotation(view) @ axes.T  # camera from URDF root
        self._links = self.tree.hand_links()
        cam = points[:, self._links].reshape(-1, 3) @ self.rotation.T
        lo, hi = cam.min(0), cam.max(0)
        self._thickness = max(2, round(min(width, height) / 48))
        margin = 0.06 * min(width, height) + 1.2 * self._thickness
        extent = np.maximum(hi[:2] - lo[:2], 1e-6)
        self.scale = float(min((width - 2 * margin) / extent[0], (height - 2 * margin) / extent[1]))
        self._centre = 0.5 * (lo + hi)
        self._depth_range = (float(lo[2]), float(max(hi[2] - lo[2], 1e-6)))
        self._background = np.empty((height, width, 3), np.uint8)
        self._background[:] = BACKGROUND_RGB
        drawn = set(self._links.tolist())
        self._segments = [
            (int(self.tree.parent[i]), i) for i in sorted(drawn) if self.tree.parent[i] in drawn
        ]
        branch = self.tree.branch_link()
        self._palm = np.array([branch, *self.tree.children(branch)], dtype=int)

    def _fit_poses(self, num: int, seed: int) -> np.ndarray:
        lo, hi = self.robot.free_lower.copy(), self.robot.free_upper.copy()
        # A joint without finite limits is fitted over [-pi, pi].
        lo[~np.isfinite(lo)], hi[~np.isfinite(hi)] = -np.pi, np.pi
        rng = np.random.default_rng(seed)
        free = [lo, hi, 0.5 * (lo + hi), *rng.uniform(lo, hi, size=(num, len(lo)))]
        return np.stack([self._neutral, *(self.robot.full_q(f) for f in free)])

    def _hand_axes(
        self, points: np.ndarray, palm_link: str | None, hand_root_to_palm: np.ndarray | None
    ) -> np.ndarray:
        if hand_root_to_palm is None:
            tips = np.array(sorted(self._tips), dtype=int)
            return estimate_hand_axes(points[0], points[1:], tips, self.tree.branch_link())
        m = np.asarray(hand_root_to_palm, dtype=float)
        if m.shape != (3, 3) or not np.allclose(m.T @ m, np.eye(3), atol=1e-6):
            raise ValueError(f"hand_root_to_palm must be an orthonormal (3, 3) matrix, got {m}")
        palm = self.tree.names[0] if palm_link is None else palm_link
        self.robot.forward_kinematics(self._neutral)
        rot, _ = self.robot.frame_pose(self.robot.frame_id(palm))
        axes = rot @ m
        if np.linalg.det(axes) < 0:  # a left hand's reflection: keep a proper rotation
            axes[:, 0] *= -1.0
        return axes

    def joint_vector(self, joint_positions: Mapping[str, float]) -> np.ndarray:
        """(n_joints,) positions of all movable joints from a name -> position mapping.

        Joints not named keep their neutral position (0 clipped to the limits), except
        mimic joints whose parent is named: they follow it. Radians (metres for
        prismatic joints).

        Raises:
            ValueError: an unknown joint name or a non-finite position.
        """
        q = self._neutral.copy()
        index = self.robot.joint_index
        for name, value in joint_positions.items():
            if name not in index:
                raise ValueError(
                    f"{self.robot.urdf_path.name}: unknown joint {name!r}; "
                    f"valid: {list(self.joint_names)}"
                )
            value = float(value)
            if not np.isfinite(value):
                raise ValueError(f"joint {name!r}: position is not finite ({value})")
            q[index[name]] = value
        for i, (p, mimic) in self._parent_of_mimic.items():
            if mimic.name not in joint_positions and mimic.parent in joint_positions:
                q[i] = mimic.multiplier * q[p] + mimic.offset
        return q

    def _link_positions(self, q: np.ndarray) -> np.ndarray:
        pin.forwardKinematics(self.robot.model, self.robot.data, q)
        pin.updateFramePlacements(self.robot.model, self.robot.data)
        oMf = self.robot.data.oMf
        return np.array([oMf[int(f)].translation for f in self.tree.frame_ids])

    def link_positions(self, joint_positions: Mapping[str, float]) -> np.ndarray:
        """(L, 3) link origins (``tree.names`` order) in the URDF root frame, metres."""
        return self._link_positions(self.joint_vector(joint_positions))

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project (N, 3) root-frame points with the fitted view.

        Returns:
            uv: (N, 2) pixels (u right, v down); depth: (N,) in [0, 1] over the fitted
            range (0 nearest), may fall outside it for poses beyond the fitted ones.
        """
        cam = (np.asarray(points, dtype=float) @ self.rotation.T) - self._centre
        centre_px = 0.5 * np.array(self.size, dtype=float)
        uv = cam[:, :2] * self.scale + centre_px
        depth = (cam[:, 2] + self._centre[2] - self._depth_range[0]) / self._depth_range[1]
        return uv, depth

    def render(self, joint_positions: Mapping[str, float]) -> np.ndarray:
        """Draw the hand in the given joint positions.

        Args:
            joint_positions: joint name -> position (radians; metres for prismatic
                joints), e.g. a ``sensor_msgs/JointState`` as a dict. Joints not named
                stay neutral (mimic joints follow their parent).

        Returns:
            (height, width, 3) uint8 RGB image.
        """
        uv, depth = self.project(self.link_positions(joint_positions))
        limit = 4.0 * max(self.size)  # keep far-off points inside OpenCV's int range
        fixed = np.round(np.clip(uv, -limit, limit) * _ONE).astype(int)
        pts = [tuple(p) for p in fixed.tolist()]
        # Depth cue: near = full brightness and thickness, far = 50 % darker, 30 % thinner.
        t = np.clip(depth, 0.0, 1.0)
        shade = 1.0 - 0.5 * t
        width = self._thickness * (1.15 - 0.3 * t)
        img = self._background.copy()

        palm = self._palm
        hull = cv2.convexHull(fixed[palm].astype(np.int32))
        palm_colour = tuple(float(c) * 0.45 * shade[palm].mean() for c in PALM_RGB)
        cv2.fillConvexPoly(img, hull, palm_colour, cv2.LINE_AA, _SHIFT)

        # Painter's algorithm: capsules and dots sorted far to near.
        items = [(0.5 * (depth[a] + depth[b]), 0, a, b) for a, b in self._segments]
        items += [(depth[i] - 1e-6, 1, i, i) for i in self._links.tolist()]
        items.sort(key=lambda item: -item[0])
        for _, kind, a, b in items:
            base = self._rgb(int(self._colour[b]))
            if kind == 0:
                if pts[a] == pts[b]:
                    continue
                colour = tuple(c * shade[b] for c in base)
                w = max(1, round(0.5 * (width[a] + width[b])))
                cv2.line(img, pts[a], pts[b], colour, w, cv2.LINE_AA, _SHIFT)
            elif b in self._tips:
                colour = tuple(c * shade[b] for c in self._rgb(self._tips[b]))
                r = round(0.85 * width[b] * _ONE)
                cv2.circle(img, pts[b], r, colour, -1, cv2.LINE_AA, _SHIFT)
                cv2.circle(img, pts[b], r, (255 * shade[b],) * 3, 2, cv2.LINE_AA, _SHIFT)
            else:
                # Joints: a lighter dot on the capsule.
                colour = tuple((0.55 * c + 0.45 * 255) * shade[b] for c in base)
                r = round(0.42 * width[b] * _ONE)
                cv2.circle(img, pts[b], r, colour, -1, cv2.LINE_AA, _SHIFT)
        return img

    @staticmethod
    def _rgb(colour_index: int) -> tuple[int, int, int]:
        if colour_index < 0:
            return PALM_RGB
        if colour_index < len(FINGER_COLOURS_RGB):
            return FINGER_COLOURS_RGB[colour_index]
        return EXTRA_RGB[(colour_index - len(FINGER_COLOURS_RGB)) % len(EXTRA_RGB)]
