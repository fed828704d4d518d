"""Hand meshes for the renderer: the open hand model, or the procedural stand-in.

A :class:`HandSource` poses a right hand (the canonical form) in its model frame;
left hands are made by mirroring in the camera frame (:mod:`.scene`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import hand_ik
from hand_ik.bio_dofs import BIO_DOF_INDEX
from hand_ik.biomech import bio_kinematics_for
from hand_ik.keypoints import FINGER_NAMES

from .standin_hand import posed_keypoints, standin_mesh

logger = logging.getLogger(__name__)

ASSET_DIR = Path(__file__).resolve().parents[3] / "hand_ik" / "assets"


@dataclass
class HandTextures:
    """Optional appearance maps on the hand's UV layout (row = v * H, column = u * W)."""

    sss: np.ndarray | None = None
    """(H, W) float32 in [0, 1]: subsurface/skin-thickness map (brighter = more translucent)."""
    nails: np.ndarray | None = None
    """(H, W) float32 in [0, 1]: fingernail mask."""


class HandSource:
    """Interface: a posable right hand with a fixed triangle mesh and UVs."""

    name: str = "base"
    faces: np.ndarray  # (F, 3) int, outward winding
    uv: np.ndarray  # (T, 2) float in [0, 1]
    uv_faces: np.ndarray  # (F, 3) int into uv
    textures: HandTextures
    num_betas: int = 10

    def sample_poses(self, sampler, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n`` poses: pose45 (n, 45) axis-angle and bio (n, 23), radians."""
        raise NotImplementedError

    def forward(
        self, betas: np.ndarray, pose: np.ndarray, bio: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Pose a batch of right hands (no global rotation or translation).

        Args:
            betas: (B, 10) shape. pose: (B, 45) axis-angle. bio: (B, 23) radians
                (the stand-in uses bio; the model uses pose).

        Returns:
            verts (B, V, 3) and joints (B, 21, 3), metres, model frame, float64.
        """
        raise NotImplementedError


class StandinHandSource(HandSource):
    """Procedural tube hand (tests, and a fallback without the hand model)."""

    name = "standin"

    def __init__(self) -> None:
        _, self.faces, self.uv = standin_mesh(posed_keypoints(np.zeros((5, 3))))
        self.uv_faces = self.faces
        self.textures = HandTextures()

    def sample_poses(self, sampler, n: int) -> tuple[np.ndarray, np.ndarray]:
        bio = sampler.sample_bio(n)
        return np.zeros((n, 45)), bio

    def forward(self, betas, pose, bio):
        verts, joints = [], []
        for b in range(len(betas)):
            flex = np.zeros((5, 3))
            for f, finger in enumerate(FINGER_NAMES):
                names = (
                    ("thumb_cmc_flex", "thumb_mcp_flex", "thumb_ip_flex")
                    if finger == "thumb"
                    else (f"{finger}_mcp_flex", f"{finger}_pip_flex", f"{finger}_dip_flex")
                )
                flex[f] = [bio[b, BIO_DOF_INDEX[n]] for n in names]
            j = posed_keypoints(flex, scale=float(1.0 + 0.04 * np.clip(betas[b, 0], -3, 3)))
            v, _, _ = standin_mesh(j)
            verts.append(v)
            joints.append(j)
        return np.stack(verts), np.stack(joints)


def _load_textures(path: Path) -> HandTextures:
    if not path.exists():
        logger.warning("hand textures %s missing: painting skin without SSS and nail maps", path)
        return HandTextures()
    data = np.load(path)

    def get(*names: str) -> np.ndarray | None:
        for name in names:
            if name in data.files:
                img = np.asarray(data[name], np.float32)
                if img.ndim == 3:
                    img = img[..., :3].mean(-1)
                # The asset stores image rows top-first (row = (1 - v) * H); we index row = v * H.
                img = np.ascontiguousarray(img[::-1])
                return img / 255.0 if img.max() > 1.5 else img
        return None

    return HandTextures(
        sss=get("sss", "sss_map", "subsurface"), nails=get("nails", "nail_mask", "nail")
    )


class ModelHandSource(HandSource):
    """The open hand model of ``hand_ik`` (right-hand canonical form)."""

    name = "open"

    def __init__(self, model_name: str = "open") -> None:
        import torch

        self._torch = torch
        self.model = hand_ik.load_hand_model(model_name, side="right")
        self.model.eval()
        self.faces = np.asarray(self.model.faces, np.int64)
        self.num_betas = int(getattr(self.model, "num_betas", 10))
        asset = np.load(ASSET_DIR / f"{model_name}_hand_right.npz")
        self.uv = np.asarray(asset["vt"], np.float64)
        self.uv_faces = np.asarray(asset["ft"], np.int64)
        self.textures = _load_textures(ASSET_DIR / f"{model_name}_hand_textures.npz")

        self.kinematics = bio_kinematics_for(self.model)

    def sample_poses(self, sampler, n: int) -> tuple[np.ndarray, np.ndarray]:
        return sampler.sample_pose45(n, self.kinematics)

    def forward(self, betas, pose, bio):
        torch = self._torch
        dtype = self.model.v_template.dtype
        with torch.no_grad():
            out = self.model(
                betas=torch.as_tensor(betas, dtype=dtype),
                pose=torch.as_tensor(pose, dtype=dtype),
                global_orient=torch.zeros(len(betas), 3, dtype=dtype),
                transl=torch.zeros(len(betas), 3, dtype=dtype),
            )
        return out.vertices.double().numpy(), out.joints.double().numpy()


def create_hand_source(name: str = "auto") -> HandSource:
    """``"open"`` (the hand model), ``"standin"``, or ``"auto"`` (the model when installed).

    Raises:
        ValueError: for an unknown name.
    """
    if name not in ("auto", "open", "standin"):
        raise ValueError(f"unknown hand source {name!r}; valid: auto, open, standin")
    if name == "standin":
        return StandinHandSource()
    try:
        return ModelHandSource("open")
    except (ImportError, AttributeError, FileNotFoundError) as exc:
        if name == "open":
            raise
        logger.warning("hand model unavailable (%s): using the procedural stand-in hand", exc)
        return StandinHandSource()
