"""The synthetic sample generator: pose + shape + view + appearance -> image and labels.

Every sample is a pure function of ``(seed, kind, index)``: its random stream is
``SeedSequence([seed, KIND_CODE[kind], index])``; poses and shapes come in
blocks of :data:`POSE_BLOCK` (finger swapping mixes poses within a block) seeded
by ``(seed, block)``. So a dataset is reproducible whatever the worker count,
and shards can be generated in any order (resume).

Sample kinds (labels documented in :mod:`hand_pose_ros.research.synth.shards`):

- ``crops``: one hand, ``crop_size`` square, rendered directly with the crop's
  intrinsics (a square box around the hand with the margin and jitter of a
  real detector box), for the mesh estimator;
- ``frames``: ``frame_size`` images with 0-2 hands at varied distance and
  position, for the detector.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from hand_ik.bio_dofs import NUM_BIO_DOFS
from hand_ik.frames import MIRROR_X
from hand_ik.pose_sampler import PoseSampler

from .augment import AugmentConfig, add_occluders, camera_effects, composite, smooth_edges
from .backgrounds import BackgroundBank
from .gl_renderer import DrawItem, Material, MeshRenderer, corners, vertex_normals
from .hand_source import HandSource, create_hand_source
from .scene import arm_items, keypoint_visibility, sample_arm_style, sample_lighting, wrist_loop
from .skin import GeometryMaps, crease_maps, paint_cloth, paint_skin
from .views import View, crop_intrinsics, hand_root_frame_np, hand_to_camera, project, sample_view

logger = logging.getLogger(__name__)

KIND_CODE: dict[str, int] = {"crops": 1, "frames": 2}
#: Poses are drawn (and fingers swapped) in blocks of this many.
POSE_BLOCK = 64
MAX_HANDS = 2
#: Mask values: hands are 1..MAX_HANDS, forearms/sleeves ARM_ID, background/occluders 0.
ARM_ID = 3


@dataclass
class SynthConfig:
    """What the generator makes (see the module docstring)."""

    kind: str = "crops"
    """``crops`` or ``frames``."""
    crop_size: int = 256
    """Side of crop samples, pixels."""
    frame_size: tuple[int, int] = (640, 480)
    """(width, height) of frame samples, pixels."""
    msaa: int = 0
    """Colour-pass multisampling (0: one pass plus edge smoothing, ~2x faster on llvmpipe)."""
    texture_size: int = 512
    """Skin texture side, texels."""
    num_skin_textures: int = 24
    """Resident skin textures (each sample also tints its texture)."""
    left_prob: float = 0.5
    """Share of left hands."""
    beta_clip: float = 2.0
    """Shape parameters are N(0, 1) clipped to +-beta_clip."""
    view_jitter: bool = True
    """Jitter views within seed 002's pi/36 grid cells."""
    roll_std: float = 0.5
    """Std of the camera roll about the viewing ray, radians."""
    crop_margin: tuple[float, float] = (1.15, 1.6)
    """Crop side / hand box side, uniform range (detector box margin)."""
    crop_shift: float = 0.08
    """Std of the crop centre offset, as a fraction of the hand box side."""
    crop_distance: tuple[float, float] = (0.3, 0.9)
    """Camera-to-palm distance for crops, metres."""
    frame_distance: tuple[float, float] = (0.3, 1.6)
    """Camera-to-palm distance for frames, metres (log-uniform)."""
    hand_count_probs: tuple[float, float, float] = (0.15, 0.55, 0.30)
    """Probabilities of 0, 1 and 2 hands in a frame."""
    hand_source: str = "auto"
    """``auto``, ``open`` (hand model) or ``standin``."""
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    """Image effects."""

    def __post_init__(self) -> None:
        for name in (
            "frame_size",
            "crop_margin",
            "crop_distance",
            "frame_distance",
            "hand_count_probs",
        ):
            setattr(self, name, tuple(getattr(self, name)))  # YAML/JSON give lists
        if self.kind not in KIND_CODE:
            raise ValueError(f"kind must be one of {sorted(KIND_CODE)}, got {self.kind!r}")
        if self.crop_size < 32:
            raise ValueError(f"crop_size must be >= 32, got {self.crop_size}")
        if min(self.frame_size) < 32:
            raise ValueError(f"frame_size must be >= 32 each, got {self.frame_size}")
        if not 0.0 <= self.left_prob <= 1.0:
            raise ValueError(f"left_prob must be in [0, 1], got {self.left_prob}")
        if self.beta_clip <= 0:
            raise ValueError(f"beta_clip must be > 0, got {self.beta_clip}")
        if not 1.0 <= self.crop_margin[0] <= self.crop_margin[1]:
            raise ValueError(f"crop_margin must be 1 <= lo <= hi, got {self.crop_margin}")
        for name in ("crop_distance", "frame_distance"):
            lo, hi = getattr(self, name)
            if not 0.05 < lo <= hi:
                raise ValueError(f"{name} must be 0.05 < lo <= hi, got {(lo, hi)}")
        p = self.hand_count_probs
        if len(p) != 3 or min(p) < 0 or not math.isclose(sum(p), 1.0, abs_tol=1e-6):
            raise ValueError(f"hand_count_probs must be 3 probabilities summing to 1, got {p}")
        if isinstance(self.augment, dict):
            self.augment = AugmentConfig(**self.augment)

    @classmethod
    def from_dict(cls, data: dict) -> SynthConfig:
        """Build from a (YAML) mapping; unknown keys raise ValueError naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown synth config keys {unknown}; valid: {sorted(names)}")
        return cls(**data)

    @property
    def image_size(self) -> tuple[int, int]:
        """(width, height) of this kind's images."""
        return (self.crop_size, self.crop_size) if self.kind == "crops" else tuple(self.frame_size)


@dataclass
class HandDraw:
    """One hand placed in the camera frame, with its labels."""

    verts: np.ndarray  # (V, 3) camera frame
    joints: np.ndarray  # (21, 3) camera frame
    betas: np.ndarray  # (10,)
    pose: np.ndarray  # (45,) right-hand canonical form
    bio: np.ndarray  # (23,)
    rotation: np.ndarray  # (3, 3) canonical model frame -> (mirrored) camera frame
    translation: np.ndarray  # (3,)
    left: bool
    view: View
    direction: np.ndarray  # (3,) wrist -> elbow, camera frame


class SynthGenerator:
    """Makes samples of one kind for one seed (one OpenGL context per instance/process).

    Args:
        config: what to make.
        seed: dataset seed (see :mod:`hand_pose_ros.research.synth.dataset` for the split ranges).
        backgrounds_dir: optional folder of background photos.
        hand_source: override the configured hand source (tests pass the stand-in).
    """

    def __init__(
        self,
        config: SynthConfig,
        seed: int,
        backgrounds_dir: str | None = None,
        hand_source: HandSource | None = None,
    ) -> None:
        self.config = config
        self.seed = int(seed)
        self.hand = (
            hand_source if hand_source is not None else create_hand_source(config.hand_source)
        )
        w, h = config.image_size
        self.renderer = MeshRenderer(w, h, msaa=config.msaa)
        self.backgrounds = BackgroundBank(self.seed, backgrounds_dir)
        self._block_cache: dict[int, tuple[np.ndarray, ...]] = {}
        rest_v, rest_j = self.hand.forward(
            np.zeros((1, self.hand.num_betas)), np.zeros((1, 45)), np.zeros((1, NUM_BIO_DOFS))
        )
        self.loop = wrist_loop(rest_v[0], self.hand.faces, rest_j[0, 0])
        self.geometry = self._bake_geometry(rest_v[0], rest_j[0])
        # Skin textures are painted on first use, each from its own stream (seed, k): the
        # bank is the same whatever the order of samples, and start-up stays short.
        self._skin: dict[int, tuple[int, np.ndarray]] = {}
        self._creases: dict[int, tuple[np.ndarray, np.ndarray] | None] = {}
        bank_rng = np.random.default_rng([self.seed, 0x5C1])
        self.cloth_textures = [self.renderer.add_texture(paint_cloth(bank_rng)) for _ in range(12)]

    def _bake_geometry(self, verts: np.ndarray, joints: np.ndarray) -> GeometryMaps | None:
        R0, origin = hand_root_frame_np(joints)
        v_h = (verts - origin) @ R0
        n_h = vertex_normals(v_h, self.hand.faces)
        size = self.config.texture_size
        pos, nrm, cov = self.renderer.bake_uv_maps(
            v_h, n_h, self.hand.faces, self.hand.uv, self.hand.uv_faces, size
        )
        if cov.mean() < 0.01:
            logger.warning(
                "UV bake covers %.2f%% of the texture: skipping geometry-based skin details",
                100 * cov.mean(),
            )
            return None
        return GeometryMaps(pos, nrm, cov, (joints - origin) @ R0)

    def skin_texture(self, k: int) -> tuple[int, np.ndarray]:
        """Resident texture index and forearm colour (3,) of skin texture ``k`` (painted once)."""
        if k not in self._skin:
            variant = k % 3  # crease layouts are slow to draw: three shared variants
            if variant not in self._creases:
                rng = np.random.default_rng([self.seed, 0xC4E, variant])
                geo = self.geometry
                self._creases[variant] = crease_maps(rng, geo) if geo is not None else None
            rng = np.random.default_rng([self.seed, 0x5C1, k])
            tex = self.hand.textures
            img = paint_skin(
                rng,
                self.config.texture_size,
                self.geometry,
                tex.sss,
                tex.nails,
                creases=self._creases[variant],
            )
            self._skin[k] = (self.renderer.add_texture(img), self._wrist_color(img))
        return self._skin[k]

    def _wrist_color(self, texture: np.ndarray) -> np.ndarray:
        """Mean albedo (3,) of the skin near the wrist: the colour of the bare forearm."""
        rgb = texture[..., :3].astype(np.float32) / 255.0
        geo = self.geometry
        if geo is None:
            return rgb.reshape(-1, 3).mean(0)
        size = rgb.shape[0]
        pos = cv2.resize(geo.position, (size, size), interpolation=cv2.INTER_NEAREST)
        cov = cv2.resize(
            geo.coverage.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST
        )
        near = (cov > 0) & (pos[..., 1] < 0.03)  # hand_root y: distance from the wrist
        if near.sum() < 10:
            near = cov > 0
        return rgb[near].mean(0)

    # --- random draws ------------------------------------------------------------------------
    def sample_rng(self, index: int) -> np.random.Generator:
        """The random stream of sample ``index``."""
        return np.random.default_rng(
            np.random.SeedSequence([self.seed, KIND_CODE[self.config.kind], int(index)])
        )

    def _pose_block(self, block: int) -> tuple[np.ndarray, ...]:
        if block not in self._block_cache:
            if len(self._block_cache) > 4:
                self._block_cache.pop(next(iter(self._block_cache)))
            seed = int(
                np.random.SeedSequence(
                    [self.seed, KIND_CODE[self.config.kind], 0xB10C, block]
                ).generate_state(1)[0]
            )
            sampler = PoseSampler(seed)
            pose, bio = self.hand.sample_poses(sampler, POSE_BLOCK)
            rng = np.random.default_rng(seed)
            clip = self.config.beta_clip
            betas = np.clip(rng.normal(size=(POSE_BLOCK, self.hand.num_betas)), -clip, clip)
            verts, joints = self.hand.forward(betas, pose, bio)
            self._block_cache[block] = (betas, np.asarray(pose), np.asarray(bio), verts, joints)
        return self._block_cache[block]

    def posed_hand(self, slot: int) -> tuple[np.ndarray, ...]:
        """(betas, pose, bio, verts, joints) of pose slot ``slot`` (model frame, right hand)."""
        betas, pose, bio, verts, joints = self._pose_block(slot // POSE_BLOCK)
        k = slot % POSE_BLOCK
        return betas[k], pose[k], bio[k], verts[k], joints[k]

    def place(self, slot: int, view: View, centre: np.ndarray, left: bool) -> HandDraw:
        """Put posed hand ``slot`` at palm centre ``centre`` (camera frame) seen from ``view``."""
        betas, pose, bio, verts_m, joints_m = self.posed_hand(slot)
        R, t = hand_to_camera(joints_m, view, centre)
        verts = verts_m @ R.T + t
        joints = joints_m @ R.T + t
        R_hand, _ = hand_root_frame_np(joints)
        direction = -R_hand[:, 1]
        if left:
            verts, joints, direction = verts @ MIRROR_X, joints @ MIRROR_X, direction @ MIRROR_X
        return HandDraw(verts, joints, betas, pose, bio, R, t, left, view, direction)

    # --- rendering ---------------------------------------------------------------------------
    def _draw_items(self, rng: np.random.Generator, hands: list[HandDraw]) -> list:
        items = []
        for h, hand in enumerate(hands):
            tex_index, arm_color = self.skin_texture(
                int(rng.integers(self.config.num_skin_textures))
            )
            tint = tuple(float(x) for x in rng.normal(1.0, 0.04, 3) * rng.uniform(0.9, 1.1))
            skin = Material(
                texture=tex_index,
                tint=tint,
                spec_scale=float(rng.uniform(0.05, 0.35)),
                shininess=float(rng.uniform(8, 40)),
                wrap=float(rng.uniform(0.2, 0.5)),
            )
            pos, nrm, uv = corners(
                hand.verts,
                self.hand.faces,
                self.hand.uv,
                self.hand.uv_faces,
                flip_normals=hand.left,
            )
            items.append(DrawItem(pos, nrm, uv, skin, object_id=h + 1))
            arm_skin = Material(
                texture=None,
                base_color=tuple(float(x) for x in arm_color),
                tint=tint,
                spec_scale=skin.spec_scale * 0.5,
                shininess=skin.shininess,
                wrap=skin.wrap,
            )
            cloth = Material(
                texture=self.cloth_textures[int(rng.integers(len(self.cloth_textures)))],
                spec_scale=float(rng.uniform(0.0, 0.15)),
                shininess=float(rng.uniform(4, 16)),
                wrap=0.2,
            )
            # Frames show more of the scene: long arms, so they leave the image like real ones.
            style = sample_arm_style(
                rng, (0.25, 0.45) if self.config.kind == "crops" else (0.6, 1.2)
            )
            items += arm_items(
                hand.verts, self.loop, hand.direction, style, arm_skin, cloth, ARM_ID
            )
        return items

    def _finish(self, rng, hands, K, background, extra_labels) -> dict:
        """Render, composite, augment and label."""
        cfg = self.config
        items = self._draw_items(rng, hands)
        lighting = sample_lighting(rng, np.asarray(cv2.mean(background)[:3]) / 255.0)
        out = self.renderer.render(items, K, lighting) if items else None
        if out is None:
            h, w = background.shape[:2]
            image = background.astype(np.float32) / 255.0
            ids = np.zeros((h, w), np.uint8)
            depth = np.full((h, w), np.inf, np.float32)
        else:
            image, ids, depth = composite(out.rgba, background), out.ids, out.depth
            if self.renderer.msaa == 0:
                image = smooth_edges(image, ids)
        occluded = np.zeros(ids.shape, bool)
        labels = []
        for hand in hands:
            uv = project(K, hand.joints)
            vuv = project(K, hand.verts)
            box = np.array([*vuv.min(0), *vuv.max(0)], np.float32)
            if rng.random() < cfg.augment.occluder_prob:
                occluded |= add_occluders(rng, image, box, self.backgrounds.textures)
            labels.append((hand, uv, box))
        rgb = camera_effects(rng, image, cfg.augment)
        mask = np.where(occluded, 0, ids).astype(np.uint8)
        per_hand = []
        for h, (hand, uv, box) in enumerate(labels):
            vis = keypoint_visibility(uv, hand.joints, depth, ids, h + 1, occluded, arm_id=ARM_ID)
            rotvec = cv2.Rodrigues(hand.rotation)[0][:, 0]
            per_hand.append(
                {
                    "kp2d": uv.astype(np.float32),
                    "joints_cam": hand.joints.astype(np.float32),
                    "verts_cam": hand.verts.astype(np.float32),
                    "betas": hand.betas.astype(np.float32),
                    "pose": hand.pose.astype(np.float32),
                    "bio": hand.bio.astype(np.float32),
                    "global_orient": rotvec.astype(np.float32),
                    "transl": hand.translation.astype(np.float32),
                    "handedness": np.int8(1 if hand.left else 0),
                    "box_xyxy": box,
                    "visibility": vis,
                    "view": np.array(
                        [hand.view.azimuth, hand.view.elevation, hand.view.roll], np.float32
                    ),
                }
            )
        return {
            "image": rgb,
            "mask": mask,
            "K": K.astype(np.float32),
            "hands": per_hand,
            **extra_labels,
        }

    def sample(self, index: int) -> dict:
        """Sample ``index``.

        Returns:
            ``{"image": (H, W, 3) uint8, "mask": (H, W) uint8, "K": (3, 3), "hands": [dict]}``
            with the per-hand labels of :data:`hand_pose_ros.research.synth.shards.HAND_FIELDS`.
        """
        return self._crop(index) if self.config.kind == "crops" else self._frame(index)

    def _crop(self, index: int) -> dict:
        cfg = self.config
        rng = self.sample_rng(index)
        left = bool(rng.random() < cfg.left_prob)
        view = sample_view(rng, jitter=cfg.view_jitter, roll_std=cfg.roll_std)
        # A virtual full camera sees the hand anywhere in its frame; the crop keeps its perspective.
        f = rng.uniform(450, 1100)
        K_full = np.array([[f, 0, 319.5], [0, f, 239.5], [0, 0, 1.0]])
        u, v = rng.uniform(60, 580), rng.uniform(60, 420)
        ray = np.linalg.solve(K_full, np.array([u, v, 1.0]))
        centre = ray / np.linalg.norm(ray) * rng.uniform(*cfg.crop_distance)
        hand = self.place(index, view, centre, left)
        vuv = project(K_full, hand.verts)
        lo, hi = vuv.min(0), vuv.max(0)
        side = float((hi - lo).max()) * rng.uniform(*cfg.crop_margin)
        mid = (lo + hi) / 2 + rng.normal(0, cfg.crop_shift, 2) * float((hi - lo).max())
        box = np.array([mid[0] - side / 2, mid[1] - side / 2, mid[0] + side / 2, mid[1] + side / 2])
        K = crop_intrinsics(K_full, box, cfg.crop_size)
        background = self.backgrounds.sample(rng, cfg.crop_size, cfg.crop_size)
        return self._finish(rng, [hand], K, background, {})

    def _frame(self, index: int) -> dict:
        cfg = self.config
        rng = self.sample_rng(index)
        w, h = cfg.frame_size
        f = rng.uniform(0.7, 1.15) * w
        K = np.array(
            [
                [f, 0, (w - 1) / 2 + rng.normal(0, 4)],
                [0, f, (h - 1) / 2 + rng.normal(0, 4)],
                [0, 0, 1.0],
            ]
        )
        n = int(rng.choice(3, p=np.asarray(cfg.hand_count_probs)))
        hands = []
        lo, hi = np.log(cfg.frame_distance[0]), np.log(cfg.frame_distance[1])
        for k in range(n):
            left = bool(rng.random() < cfg.left_prob)
            view = sample_view(rng, jitter=cfg.view_jitter, roll_std=cfg.roll_std)
            u, v = rng.uniform(0.08 * w, 0.92 * w), rng.uniform(0.08 * h, 0.95 * h)
            ray = np.linalg.solve(K, np.array([u, v, 1.0]))
            centre = ray / np.linalg.norm(ray) * float(np.exp(rng.uniform(lo, hi)))
            hands.append(self.place(MAX_HANDS * index + k, view, centre, left))
        background = self.backgrounds.sample(rng, w, h)
        return self._finish(rng, hands, K, background, {})
