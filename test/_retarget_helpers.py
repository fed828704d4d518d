"""Helpers for the retargeting tests: configs against ../shared robots, human poses."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import REALDATA, realdata_path

from hand_ik.keypoints import FINGER_KEYPOINTS
from hand_ik.retarget import RetargetingConfig, available_robot_configs, load_retargeting_config

ALL_CONFIGS = available_robot_configs()


def load_config(name: str, **overrides) -> RetargetingConfig:
    """Load a shipped config; real-robot configs use ../shared/realdata/robots or skip."""
    config = load_retargeting_config(name, **overrides)
    if config.urdf is None:
        config = load_retargeting_config(name, urdf=realdata_path("robots"), **overrides)
    return config


# Finger base (MCP / thumb CMC) positions in hand_root, metres: an average adult right hand.
_BASES = {
    "thumb": (0.025, 0.025, 0.005),
    "index": (0.025, 0.090, 0.0),
    "middle": (0.0, 0.093, 0.0),
    "ring": (-0.020, 0.088, 0.0),
    "little": (-0.038, 0.078, 0.0),
}
_LENGTHS = {
    "thumb": (0.040, 0.032, 0.028),
    "index": (0.045, 0.025, 0.022),
    "middle": (0.050, 0.030, 0.024),
    "ring": (0.047, 0.028, 0.023),
    "little": (0.037, 0.022, 0.021),
}


def synthetic_keypoints(rng: np.random.Generator) -> np.ndarray:
    """(21, 3) keypoints in hand_root from a simple finger chain with random flexion and spread."""
    kp = np.zeros((21, 3))
    for finger, idx in FINGER_KEYPOINTS.items():
        base = np.asarray(_BASES[finger])
        if finger == "thumb":
            # Thumb: points radially and distally, swings toward the palm with opposition.
            opp = rng.uniform(0.0, 1.2)
            direction = np.array([np.cos(0.7), np.sin(0.7), 0.0]) * np.cos(opp) + np.array(
                [0, 0, 1.0]
            ) * np.sin(opp)
            bend_axis = np.cross(direction, [0.0, 0.0, 1.0]) if opp < 1.5 else np.array([1.0, 0, 0])
        else:
            spread = rng.uniform(-0.25, 0.25)
            direction = np.array([np.sin(spread), np.cos(spread), 0.0])
            bend_axis = np.array([1.0, 0.0, 0.0])
        bend_axis = bend_axis / np.linalg.norm(bend_axis)
        kp[idx[0]] = base
        point, angle = base, 0.0
        for j, length in enumerate(_LENGTHS[finger]):
            angle += rng.uniform(0.0, 1.2)
            # Rodrigues rotation of the finger direction toward +z (palmar flexion).
            c, s = np.cos(angle), np.sin(angle)
            d = (
                direction * c
                + np.cross(bend_axis, direction) * s
                + bend_axis * (bend_axis @ direction) * (1 - c)
            )
            if d[2] < 0:
                d = d * np.array([1.0, 1.0, -1.0])
            point = point + length * d
            kp[idx[j + 1]] = point
    return kp


def human_poses(n: int, seed: int = 0) -> np.ndarray:
    """(n, 21, 3) poses in hand_root: perturbed GRAB frames if ../shared exists, else synthetic."""
    rng = np.random.default_rng(seed)
    grab = REALDATA / "grab_dev" / "apple_pass_1.npz"
    if grab.exists():
        import torch

        from hand_ik.frames import to_hand_root

        with np.load(grab) as data:
            joints = data["joints_wristlocal_aligned"].astype(np.float64)
        frames = joints[rng.choice(len(joints), n)] + rng.normal(0.0, 0.005, (n, 21, 3))
        return to_hand_root(torch.from_numpy(frames)).numpy()
    return np.stack([synthetic_keypoints(rng) for _ in range(n)])


def skip_if_no_config(name: str) -> None:
    if name not in ALL_CONFIGS:
        pytest.skip(f"no shipped config {name}")
