"""The 21 keypoints of a hand model without skinning the whole mesh.

The IK optimisations only need keypoints: the 16 joints are forward kinematics of
the shaped rest joints, and the 5 fingertips are 5 skinned vertices. This layer
precomputes the regressed joint and tip blend shapes of a ``HandModel`` once, so a
forward pass costs a 16-joint chain instead of 778 vertices; it reproduces
``HandModel(...).joints`` exactly (tested).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from hand_ik.lbs import batch_rigid_transform


class KeypointLayer(nn.Module):
    """Keypoints (B, 21, 3) of a hand model from betas and joint rotations.

    Args:
        model: a ``HandModel``.
        extra_vertex_ids: optional mesh vertices to skin as well; they are appended
            after the 21 keypoints (a cheap subset of the mesh for fitting).
    """

    def __init__(self, model, extra_vertex_ids=None) -> None:
        super().__init__()
        tips = model.tip_vertex_ids
        self.num_extra = 0
        if extra_vertex_ids is not None:
            extra = torch.as_tensor(extra_vertex_ids, dtype=torch.long, device=tips.device)
            self.num_extra = len(extra)
            tips = torch.cat([tips, extra])
        self.register_buffer("joint_template", model.J_regressor @ model.v_template)  # (16, 3)
        self.register_buffer(
            "joint_dirs", torch.einsum("jv,vck->jck", model.J_regressor, model.shapedirs)
        )  # (16, 3, K)
        self.register_buffer("tip_template", model.v_template[tips])  # (5, 3)
        self.register_buffer("tip_dirs", model.shapedirs[tips])  # (5, 3, K)
        self.register_buffer("tip_weights", model.lbs_weights[tips])  # (5, 16)
        self.has_posedirs = bool(model.has_posedirs)
        if self.has_posedirs:
            # smplx layout (P, V * 3): keep the 3 columns of each tip vertex.
            cols = (tips[:, None] * 3 + torch.arange(3, device=tips.device)).flatten()
            self.register_buffer("tip_posedirs", model.posedirs[:, cols])
        self.register_buffer("keypoint_gather", model.keypoint_gather.clone())
        self.parents = list(model._parents_list)

    def forward(
        self, betas: torch.Tensor, rot_mats: torch.Tensor, transl: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Pose the keypoints.

        Args:
            betas: (B, K) shape.
            rot_mats: (B, 16, 3, 3) rotations: the global orientation (about the wrist)
                then the 15 joints, MANO order, relative to the template.
            transl: (B, 3) or None.

        Returns:
            (B, 21 + M, 3): keypoints (FreiHAND order) then the M extra vertices, metres.
        """
        batch = rot_mats.shape[0]
        rest_joints = self.joint_template + torch.einsum("bk,jck->bjc", betas, self.joint_dirs)
        tips = self.tip_template + torch.einsum("bk,tck->btc", betas, self.tip_dirs)
        if self.has_posedirs:
            eye = torch.eye(3, dtype=rot_mats.dtype, device=rot_mats.device)
            feature = (rot_mats[:, 1:] - eye).reshape(batch, -1)
            tips = tips + (feature @ self.tip_posedirs).view(batch, -1, 3)
        joints, transforms = batch_rigid_transform(rot_mats, rest_joints, self.parents)
        blended = torch.einsum("tj,bjxy->btxy", self.tip_weights, transforms[:, :, :3, :])
        tips = torch.einsum("btxy,bty->btx", blended[..., :3], tips) + blended[..., 3]
        keypoints = torch.cat([joints, tips[:, :5]], dim=1)[:, self.keypoint_gather]
        if self.num_extra:
            keypoints = torch.cat([keypoints, tips[:, 5:]], dim=1)
        if transl is not None:
            keypoints = keypoints + transl[:, None]
        return keypoints


class HandRootPoser:
    """The 21 keypoints of a hand model posed by (betas, bio), in its hand_root frame.

    This is how the robot side sees the human hand: re-posed by the hand model from the
    parameters ``/hand/state`` carries (identity global pose), then expressed in
    ``hand_ik.frames``' hand root frame.
    """

    def __init__(self, model) -> None:
        from hand_ik.biomech import bio_kinematics_for

        self.kinematics = bio_kinematics_for(model)
        self.layer = KeypointLayer(model)

    def __call__(self, betas, bio) -> np.ndarray:
        """(10,) betas and (23,) bio in radians -> (21, 3) keypoints in hand_root, metres."""
        from hand_ik.frames import to_hand_root

        dtype = self.layer.joint_template.dtype
        with torch.no_grad():
            b = torch.as_tensor(np.asarray(bio, dtype=np.float64), dtype=dtype)[None]
            rot = torch.cat([torch.eye(3, dtype=dtype)[None, None],
                             self.kinematics.bio_to_rotmats(b)], dim=1)  # fmt: skip
            beta = torch.as_tensor(np.asarray(betas, dtype=np.float64), dtype=dtype)[None]
            return to_hand_root(self.layer(beta, rot).double())[0].numpy()
