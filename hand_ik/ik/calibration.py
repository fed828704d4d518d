"""Operator calibration: one hand shape (beta) for a person, from a short sequence of frames.

Seed 002 shows that a known shape roughly halves the IK error (Table 4, dagger rows).
``calibrate_shape`` alternates (1) per-frame IK with the current shared shape and (2) a
Levenberg-Marquardt fit of the one shared beta to all frames with their poses fixed.
The result is saved as a small YAML operator profile that the pipeline loads. The same
profile can hold the operator's flexion calibration (``flexion:``,
:mod:`hand_ik.ik.flexion_calibration`); each part is optional and written without
touching the other.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import roma
import torch
import yaml

from hand_ik._autodiff import numpy_residuals
from hand_ik.ik.flexion_calibration import FlexionCalibration
from hand_ik.ik.weights import model_fingerprint
from hand_ik.optim import LMConfig, least_squares
from hand_ik.yaml_io import read_yaml_mapping


@dataclass
class ShapeCalibration:
    """Result of :func:`calibrate_shape`."""

    betas: np.ndarray  # (10,)
    frames_used: int
    fit_error_mm: float  # mean keypoint distance of the final per-frame fits


def calibrate_shape(solver, joints: np.ndarray, rounds: int = 3,
                    handedness: str = "right") -> ShapeCalibration:  # fmt: skip
    """Estimate one operator's shape from (N, 21, 3) keypoint frames (metres, any frame).

    Frames the IK flags invalid are ignored; at least 5 valid frames are required.
    """
    joints = np.asarray(joints, dtype=np.float64)
    state = solver.solve(joints, post_opt=True, handedness=handedness)
    keep = state.valid & np.isfinite(joints).all(axis=(1, 2))
    if keep.sum() < 5:
        raise ValueError(f"calibration needs at least 5 valid frames, got {int(keep.sum())}")
    joints = joints[keep]
    if handedness == "left":
        joints = joints * np.array([-1.0, 1.0, 1.0])
    betas = np.median(state.betas[keep], axis=0)
    model, kin, layer = solver.model, solver.kinematics, solver.keypoint_layer
    dtype = model.v_template.dtype
    target = torch.as_tensor(joints, dtype=dtype)
    for _ in range(rounds):
        state = solver.solve(joints, betas=betas, post_opt=True)
        orient = roma.rotvec_to_rotmat(torch.as_tensor(state.global_orient, dtype=dtype))
        rot = torch.cat([orient[:, None],
                         kin.bio_to_rotmats(torch.as_tensor(state.bio, dtype=dtype))], dim=1)
        transl = torch.as_tensor(state.transl, dtype=dtype)
        betas = _fit_shared_shape(layer, rot, transl, torch.as_tensor(betas, dtype=dtype), target)
    final = solver.solve(joints, betas=betas, post_opt=True)
    return ShapeCalibration(betas=betas, frames_used=len(joints),
                            fit_error_mm=float(1e3 * final.fit_error.mean()))  # fmt: skip


def _fit_shared_shape(layer, rot: torch.Tensor, transl: torch.Tensor, betas: torch.Tensor,
                      target: torch.Tensor) -> np.ndarray:
    """One shape (10,) for all frames, their joint rotations fixed (LM)."""
    n = len(rot)
    wrist_then = layer.joint_template[0] + layer.joint_dirs[0] @ betas

    def residual_fn(x: torch.Tensor) -> torch.Tensor:
        # The model rotates about its own wrist joint, which moves with the shape: keep
        # each frame's wrist where its per-frame fit put it.
        wrist_now = layer.joint_template[0] + layer.joint_dirs[0] @ x[0]
        delta = wrist_then - wrist_now
        shift = transl + (rot[:, 0] @ delta) - delta
        keypoints = layer(x.expand(n, -1), rot, shift)
        prior = 0.3 * x  # a weak pull toward the mean shape
        return torch.cat([1e3 * (keypoints - target).reshape(1, -1), prior], dim=1)

    fit = least_squares(numpy_residuals(residual_fn, (), betas.dtype),
                        betas.double().numpy()[None], LMConfig(max_iterations=10))
    return fit.x[0]


def save_operator_profile(path: str | Path, result: ShapeCalibration, model, name: str) -> None:
    """Write the shape (betas tied to the hand model's fingerprint) into a YAML operator
    profile; a profile already at ``path`` keeps its other calibration (``flexion``)."""
    _update_profile(path, name, {
        "hand_model": {"name": model.name, "fingerprint": model_fingerprint(model)},
        "betas": [round(float(b), 6) for b in result.betas],
        "frames_used": result.frames_used,
        "fit_error_mm": round(result.fit_error_mm, 3),
    })  # fmt: skip


def save_flexion_calibration(path: str | Path, calibration: FlexionCalibration, name: str,
                             info: dict | None = None) -> None:  # fmt: skip
    """Write the flexion calibration (``flexion:``, with ``info`` such as the source and
    frame counts) into a YAML operator profile; a profile already at ``path`` keeps its
    shape."""
    _update_profile(path, name, {"flexion": {**calibration.to_dict(), **(info or {})}})


def _update_profile(path: str | Path, name: str, fields: dict) -> None:
    path = Path(path)
    profile = _read_profile(path) if path.is_file() else {}
    profile.update({"operator": name, **fields,
                    "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")})
    path.write_text("# hand_pose_ros operator profile (hand-teleop calibrate)\n"
                    + yaml.safe_dump(profile, sort_keys=False))  # fmt: skip


def _read_profile(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"operator profile not found: {path} (make one with "
                                "`hand-teleop calibrate`)")  # fmt: skip
    return read_yaml_mapping(path, "operator profile")


def load_operator_profile(path: str | Path, model) -> np.ndarray | None:
    """The (10,) betas of a profile, or None when it holds no shape (a flexion calibration
    only: the shape is then estimated per frame); fails clearly for another hand model or
    a bad file."""
    path = Path(path)
    data = _read_profile(path)
    if "betas" not in data:
        return None
    betas = np.asarray(data["betas"], dtype=np.float64)
    if betas.shape != (10,) or not np.isfinite(betas).all():
        raise ValueError(f"{path}: 'betas' must be 10 finite numbers")
    expected = (data.get("hand_model") or {}).get("fingerprint")
    if expected != model_fingerprint(model):
        raise ValueError(f"{path} was calibrated for another hand model "
                         f"({expected}); re-run `hand-teleop calibrate`")  # fmt: skip
    return betas


def load_flexion_calibration(path: str | Path) -> FlexionCalibration | None:
    """The profile's flexion calibration, or None when it holds none."""
    path = Path(path)
    data = _read_profile(path)
    if "flexion" not in data:
        return None
    flexion = data["flexion"]
    if not isinstance(flexion, dict):
        raise ValueError(f"{path}: 'flexion' must be a mapping with 'open' and 'fist'")
    try:
        return FlexionCalibration.from_dict({k: flexion.get(k) for k in ("open", "fist")})
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
