"""Natural hand poses for training and tests: seeded, reproducible, inside the joint limits.

A sample is drawn from a mixture of
- *natural* poses: a hand-level curl and spread with correlated neighbouring fingers
  and the DIP following the PIP (DIP ~ 2/3 PIP, Rijpkema & Girard, SIGGRAPH 1991);
- *keyframes*: grasp- and gesture-like poses (fist, pinch, point, ...) with jitter,
  blended with a random second keyframe;
- *uniform* samples inside the limits, for coverage of the extremes;
then seed 002's finger swapping (each finger may take its pose from another sample,
Zhou et al. 2020, "ManoRender") and finally clipping to the limits.
:meth:`PoseSampler.sample_pose45` adds small off-axis twists so the 45-DoF poses
leave the 23-DoF space the way real hands do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from hand_ik.bio_dofs import BIO_DOF_INDEX, BIO_DOF_NAMES, BIO_LOWER, BIO_UPPER, LONG_FINGERS

_LOWER = np.array(BIO_LOWER)
_UPPER = np.array(BIO_UPPER)

#: DoF indices of each finger (long fingers: abd, mcp flex, pip, dip; thumb: 7).
FINGER_DOFS: dict[str, np.ndarray] = {
    finger: np.array([i for i, n in enumerate(BIO_DOF_NAMES) if n.startswith(finger + "_")])
    for finger in ("thumb", *LONG_FINGERS)
}

# Keyframes in degrees; unnamed DoF are 0 (the flat template). Thumb values use the
# conventions of hand_ik.bio_dofs. The thumbs of pinch, tripod, fist, point and victory
# were solved on the open hand model (LM) so the thumb tip meets its target: 12-15 mm
# from the index tip (pads touching), about 20 mm over the middle/ring finger.
_CURL = {"mcp_flex": 80.0, "pip_flex": 95.0, "dip_flex": 60.0}
_HALF = {"mcp_flex": 40.0, "pip_flex": 50.0, "dip_flex": 30.0}


def _fingers(pose: dict[str, float], fingers: tuple[str, ...]) -> dict[str, float]:
    return {f"{f}_{k}": v for f in fingers for k, v in pose.items()}


KEYFRAMES_DEG: dict[str, dict[str, float]] = {
    "flat": {},
    "relaxed": {
        **_fingers({"mcp_flex": 20.0, "pip_flex": 25.0, "dip_flex": 12.0}, LONG_FINGERS),
        "thumb_cmc_flex": 10.0, "thumb_mcp_flex": 10.0, "thumb_ip_flex": 10.0,
    },
    "spread": {
        "index_mcp_abd": 18.0, "middle_mcp_abd": 3.0, "ring_mcp_abd": -12.0,
        "little_mcp_abd": -25.0, "thumb_cmc_abd": 25.0,
    },
    "fist": {
        **_fingers(_CURL, LONG_FINGERS),
        "thumb_cmc_abd": -3.8, "thumb_cmc_flex": 32.8, "thumb_cmc_rot": 42.7,
        "thumb_mcp_abd": -6.4, "thumb_mcp_flex": 41.8, "thumb_mcp_rot": 5.4,
        "thumb_ip_flex": 37.8,
    },
    "point": {
        **_fingers(_CURL, ("middle", "ring", "little")),
        "thumb_cmc_abd": -9.2, "thumb_cmc_flex": 35.7, "thumb_cmc_rot": 34.6,
        "thumb_mcp_abd": -7.7, "thumb_mcp_flex": 42.6, "thumb_mcp_rot": 4.3,
        "thumb_ip_flex": 30.1,
    },
    "victory": {
        **_fingers(_CURL, ("ring", "little")),
        "index_mcp_abd": 12.0, "middle_mcp_abd": -8.0,
        "thumb_cmc_abd": -9.2, "thumb_cmc_flex": 35.7, "thumb_cmc_rot": 34.6,
        "thumb_mcp_abd": -7.7, "thumb_mcp_flex": 42.6, "thumb_mcp_rot": 4.3,
        "thumb_ip_flex": 30.1,
    },
    "thumbs_up": {**_fingers(_CURL, LONG_FINGERS), "thumb_cmc_abd": 20.0},
    "pinch": {
        **_fingers({"mcp_flex": 25.0, "pip_flex": 20.0, "dip_flex": 10.0},
                   ("middle", "ring", "little")),
        "index_mcp_flex": 45.0, "index_pip_flex": 45.0, "index_dip_flex": 20.0,
        "thumb_cmc_abd": 3.5, "thumb_cmc_flex": 27.8, "thumb_cmc_rot": 39.6,
        "thumb_mcp_abd": -5.2, "thumb_mcp_flex": 20.5, "thumb_mcp_rot": 0.7,
        "thumb_ip_flex": 14.7,
    },
    "tripod": {
        **_fingers({"mcp_flex": 45.0, "pip_flex": 45.0, "dip_flex": 20.0}, ("index", "middle")),
        **_fingers(_HALF, ("ring", "little")),
        "thumb_cmc_abd": 8.3, "thumb_cmc_flex": 29.6, "thumb_cmc_rot": 41.4,
        "thumb_mcp_abd": -5.8, "thumb_mcp_flex": 23.4, "thumb_mcp_rot": 1.0,
        "thumb_ip_flex": 15.0,
    },
    "power_grasp": {
        **_fingers({"mcp_flex": 55.0, "pip_flex": 70.0, "dip_flex": 40.0}, LONG_FINGERS),
        "thumb_cmc_flex": 30.0, "thumb_cmc_abd": 25.0, "thumb_cmc_rot": 35.0,
        "thumb_mcp_flex": 25.0, "thumb_ip_flex": 25.0,
    },
    "lateral_pinch": {
        **_fingers({"mcp_flex": 60.0, "pip_flex": 80.0, "dip_flex": 50.0}, LONG_FINGERS),
        "thumb_cmc_flex": 15.0, "thumb_cmc_abd": -10.0, "thumb_mcp_flex": 20.0,
        "thumb_ip_flex": 15.0,
    },
    "hook": _fingers({"mcp_flex": 0.0, "pip_flex": 90.0, "dip_flex": 60.0}, LONG_FINGERS),
    "call_me": {**_fingers(_CURL, ("index", "middle", "ring")), "little_mcp_abd": -20.0,
                "thumb_cmc_abd": 30.0},
    "three": {
        **_fingers(_CURL, ("ring", "little")),
        "index_mcp_abd": 10.0, "middle_mcp_abd": -3.0, "thumb_cmc_abd": 25.0,
    },
    "four": {"thumb_cmc_flex": 45.0, "thumb_cmc_rot": 35.0, "thumb_mcp_flex": 40.0,
             "thumb_ip_flex": 20.0},
}  # fmt: skip

KEYFRAMES: dict[str, np.ndarray] = {
    name: np.array([math.radians(pose.get(n, 0.0)) for n in BIO_DOF_NAMES])
    for name, pose in KEYFRAMES_DEG.items()
}


def keyframe(name: str) -> np.ndarray:
    """A named keyframe as a (23,) bio vector in radians."""
    if name not in KEYFRAMES:
        raise ValueError(f"unknown keyframe {name!r}; valid: {sorted(KEYFRAMES)}")
    return KEYFRAMES[name].copy()


@dataclass
class PoseSamplerConfig:
    """Mixture weights and noise levels of the pose sampler."""

    natural_weight: float = 0.5
    """Share of natural (curl/spread) poses."""
    keyframe_weight: float = 0.35
    """Share of jittered, blended keyframes."""
    uniform_weight: float = 0.15
    """Share of uniform samples inside the limits."""
    swap_probability: float = 0.5
    """Chance that a sample's fingers are swapped with other samples' (ManoRender)."""
    keyframe_jitter_deg: float = 8.0
    """Gaussian jitter added to keyframes, degrees."""
    twist_std_deg: tuple[float, float] = field(default_factory=lambda: (4.0, 2.0))
    """Std of the off-manifold rotation per joint: (about the bone, off-axis), degrees."""

    def __post_init__(self) -> None:
        weights = (self.natural_weight, self.keyframe_weight, self.uniform_weight)
        if min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"mixture weights must be >= 0 with a positive sum, got {weights}")
        if not 0.0 <= self.swap_probability <= 1.0:
            raise ValueError(f"swap_probability must be in [0, 1], got {self.swap_probability}")
        if self.keyframe_jitter_deg < 0 or min(self.twist_std_deg) < 0:
            raise ValueError("keyframe_jitter_deg and twist_std_deg must be >= 0")


class PoseSampler:
    """Seeded sampler of natural 23-DoF poses (and 45-DoF poses near them)."""

    def __init__(self, seed: int, config: PoseSamplerConfig | None = None) -> None:
        self.config = config or PoseSamplerConfig()
        self.rng = np.random.default_rng(seed)

    # --- the three sources -------------------------------------------------------------------
    def _natural(self, n: int) -> np.ndarray:
        rng = self.rng
        bio = np.zeros((n, len(BIO_DOF_NAMES)))
        hand_curl = rng.beta(0.7, 0.7, size=n)
        # Neighbouring fingers correlate: AR(1) noise across index..little.
        rho, sigma = 0.6, 0.25
        cov = sigma**2 * rho ** np.abs(np.subtract.outer(np.arange(4), np.arange(4)))
        curls = np.clip(hand_curl[:, None] + rng.multivariate_normal(np.zeros(4), cov, n),
                        -0.1, 1.0)  # fmt: skip
        spread = rng.uniform(-0.3, 1.0, size=n)
        spread_dir = {"index": 0.8, "middle": 0.1, "ring": -0.6, "little": -0.9}
        for k, finger in enumerate(LONG_FINGERS):
            c = curls[:, k]
            i = BIO_DOF_INDEX
            mcp = c * _UPPER[i[f"{finger}_mcp_flex"]] * 0.9 + rng.normal(0, 0.12, n)
            pip = np.clip(c + rng.normal(0, 0.15, n), -0.05, 1.0) * _UPPER[i[f"{finger}_pip_flex"]]
            dip = 2.0 / 3.0 * pip + rng.normal(0, math.radians(6), n)
            abd_limit = _UPPER[i[f"{finger}_mcp_abd"]] if spread_dir[finger] > 0 else \
                -_LOWER[i[f"{finger}_mcp_abd"]]  # fmt: skip
            abd = spread * spread_dir[finger] * abd_limit * (1 - 0.7 * np.clip(c, 0, 1))
            bio[:, i[f"{finger}_mcp_abd"]] = abd + rng.normal(0, math.radians(3), n)
            bio[:, i[f"{finger}_mcp_flex"]] = mcp
            bio[:, i[f"{finger}_pip_flex"]] = pip
            bio[:, i[f"{finger}_dip_flex"]] = dip
        # Thumb: curls with the hand (opposition = flexion with pronation), free abduction.
        t = np.clip(0.6 * hand_curl + 0.4 * rng.uniform(0, 1, n), 0, 1)
        for name, scale, noise in (("thumb_cmc_flex", 0.8, 10), ("thumb_cmc_rot", 0.6, 10),
                                   ("thumb_mcp_flex", 0.7, 10), ("thumb_ip_flex", 0.6, 12)):
            j = BIO_DOF_INDEX[name]
            bio[:, j] = t * scale * _UPPER[j] + rng.normal(0, math.radians(noise), n)
        for name in ("thumb_cmc_abd", "thumb_mcp_abd", "thumb_mcp_rot"):
            j = BIO_DOF_INDEX[name]
            bio[:, j] = rng.uniform(_LOWER[j], _UPPER[j], n) * 0.7
        return bio

    def _keyframes(self, n: int) -> np.ndarray:
        rng = self.rng
        frames = np.stack(list(KEYFRAMES.values()))
        a = frames[rng.integers(len(frames), size=n)]
        b = frames[rng.integers(len(frames), size=n)]
        w = rng.beta(0.5, 0.5, size=(n, 1)) * rng.choice([0.0, 1.0], size=(n, 1), p=[0.4, 0.6])
        jitter = rng.normal(0, math.radians(self.config.keyframe_jitter_deg), size=a.shape)
        return (1 - w) * a + w * b + jitter

    def _uniform(self, n: int) -> np.ndarray:
        return self.rng.uniform(_LOWER, _UPPER, size=(n, len(BIO_DOF_NAMES)))

    def _swap_fingers(self, bio: np.ndarray) -> np.ndarray:
        n = len(bio)
        out = bio.copy()
        swap = self.rng.random(n) < self.config.swap_probability
        for dofs in FINGER_DOFS.values():
            donor = self.rng.integers(n, size=n)
            take = swap & (self.rng.random(n) < 0.5)
            out[np.ix_(take, dofs)] = bio[np.ix_(donor[take], dofs)]
        return out

    # --- public ------------------------------------------------------------------------------
    def sample_bio(self, n: int) -> np.ndarray:
        """(n, 23) radians inside the joint limits."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        c = self.config
        weights = np.array([c.natural_weight, c.keyframe_weight, c.uniform_weight])
        source = self.rng.choice(3, size=n, p=weights / weights.sum())
        bio = np.empty((n, len(BIO_DOF_NAMES)))
        for k, make in enumerate((self._natural, self._keyframes, self._uniform)):
            idx = np.flatnonzero(source == k)
            if len(idx):
                bio[idx] = make(len(idx))
        if n > 1:
            bio = self._swap_fingers(bio)
        return np.clip(bio, _LOWER, _UPPER)

    def sample_pose45(self, n: int, kinematics) -> tuple[np.ndarray, np.ndarray]:
        """45-DoF poses near the 23-DoF space: bio poses plus small per-joint twists.

        Args:
            n: number of poses.
            kinematics: a ``hand_ik.biomech.BioKinematics`` of the target hand model.

        Returns:
            pose45 (n, 45) axis-angle relative to the template, and the bio (n, 23) they
            were made from (not the best 23-DoF fit of pose45: use ``pose_to_bio``).
        """
        import roma
        import torch

        bio = self.sample_bio(n)
        frames = kinematics.frames.detach().cpu().double().numpy()  # (15, 3, 3) rows d, b, e
        twist_deg, off_deg = self.config.twist_std_deg
        local = self.rng.normal(size=(n, 15, 3)) * np.radians([twist_deg, off_deg, off_deg])
        # Express the perturbation (about d, b, e of each joint) in the model frame.
        omega = np.einsum("njk,jkc->njc", local, frames)
        with torch.no_grad():
            rot = kinematics.bio_to_rotmats(torch.as_tensor(bio, dtype=kinematics.frames.dtype))
            noise = roma.rotvec_to_rotmat(torch.as_tensor(omega, dtype=rot.dtype))
            pose = roma.rotmat_to_rotvec(rot @ noise).flatten(-2)
        return pose.double().numpy(), bio
