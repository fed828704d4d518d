"""``IKSolver``: 21 estimated joints -> hand shape, 23 DoF and wrist pose (a HandState).

Pipeline per batch (seed 002 §3.3-3.4):
1. validity: finite palm keypoints spanning a real palm; missing finger keypoints
   (NaN) are allowed and lower the score;
2. global orientation and wrist position in closed form: Kabsch of the model's
   rest palm (wrist, thumb CMC, four finger MCPs) onto the input palm;
3. the IK net on bone directions + lengths of the canonicalised joints -> betas, bio;
4. optional post-optimization (``PostOptimizer``) on keypoints (and vertices).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import roma
import torch

from hand_ik.biomech import bio_kinematics_for
from hand_ik.hand_state import HandState
from hand_ik.ik.alignment import rigid_align
from hand_ik.ik.features import bone_features
from hand_ik.ik.keypoint_layer import KeypointLayer
from hand_ik.ik.post_opt import PostOptConfig, PostOptimizer
from hand_ik.ik.weights import load_ik_weights
from hand_ik.keypoints import NUM_KEYPOINTS

#: Keypoints rigidly attached to the wrist: wrist, thumb CMC and the four finger MCPs.
PALM_RIGID_KEYPOINTS = (0, 1, 5, 9, 13, 17)
#: A palm smaller than this (max distance from the wrist, metres) is degenerate input.
MIN_PALM_SIZE_M = 0.01
#: Coordinates beyond this (metres) count as missing: no hand is there, and squaring them
#: in float32 would overflow the alignment.
MAX_ABS_COORDINATE_M = 1e3


class IKSolver:
    """Biomechanically feasible IK with optional post-optimization.

    Args:
        model: a ``HandModel`` (right hand; left hands are mirrored in by the caller
            or via ``handedness="left"``).
        weights: IK net weights file, ``"default"`` for the shipped ones, or None
            (post-optimization alone then starts from the relaxed pose).
        post_opt: configuration of the post-optimization.
    """

    def __init__(self, model, weights="default", post_opt: PostOptConfig | None = None) -> None:
        self.model = model
        self.dtype = model.v_template.dtype
        self.kinematics = bio_kinematics_for(model)
        self.keypoint_layer = KeypointLayer(model)
        self.net = None if weights is None else load_ik_weights(weights, model)
        post_opt = post_opt or PostOptConfig()
        if self.net is None:
            # Without the net the start is the flat hand: no prior toward it.
            post_opt = dataclasses.replace(post_opt, start_weight=0.0)
        self.post_optimizer = PostOptimizer(model, self.kinematics, post_opt)
        if self.net is not None and self.net.num_rotation_params != 23:
            raise ValueError(
                f"{weights}: IKSolver needs the 23-DoF IK net, this file holds "
                f"{self.net.num_rotation_params} rotation parameters (the 45-DoF baseline)"
            )
        with torch.no_grad():
            self._rest_keypoints = model(betas=None).joints[0]  # (21, 3) mean shape, flat
        #: x -> -x: a left hand's input into right-hand form, and its re-posed hand back.
        self._mirror = torch.tensor([-1.0, 1.0, 1.0], dtype=self.dtype)

    # ------------------------------------------------------------------------------------
    def _validate(self, joints: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        observed = (torch.isfinite(joints) & (joints.abs() <= MAX_ABS_COORDINATE_M)).all(-1)
        palm = list(PALM_RIGID_KEYPOINTS)
        palm_observed = observed[:, palm].all(-1)
        safe = torch.where(observed[..., None], joints, torch.zeros_like(joints))
        size = (safe[:, palm] - safe[:, :1]).norm(dim=-1).amax(-1)
        valid = palm_observed & (size > MIN_PALM_SIZE_M)
        return observed, valid

    def canonicalize(self, joints: torch.Tensor, observed: torch.Tensor, valid: torch.Tensor):
        """Rigidly align the rest palm onto the input palm; joints in the model frame.

        Returns (canonical joints (N, 21, 3) with missing ones filled from the rest pose,
        rotation (N, 3, 3), translation (N, 3)) with ``input = R @ canonical + t``.
        """
        palm = list(PALM_RIGID_KEYPOINTS)
        rest = self._rest_keypoints.expand(len(joints), -1, -1)
        safe = torch.where(observed[..., None] & valid[:, None, None], joints, rest)
        rotation, translation = rigid_align(rest[:, palm], safe[:, palm])
        canonical = (safe - translation[:, None]) @ rotation
        canonical = torch.where(observed[..., None], canonical, rest)
        return canonical, rotation, translation

    def solve(
        self,
        joints,
        vertices=None,
        betas=None,
        post_opt: bool = True,
        *,
        handedness: str = "right",
        previous: HandState | None = None,
    ) -> HandState:
        """Solve a batch of hands.

        Args:
            joints: (N, 21, 3) metres, any frame, FreiHAND order; NaN marks a missing
                keypoint.
            vertices: (N, V, 3) estimated mesh in the same frame, or None.
            betas: known operator shape (10,) or (N, 10), or None to estimate it.
            post_opt: run the post-optimization.
            handedness: ``"left"`` mirrors the input into right-hand form (x -> -x) and
                the re-posed joints and vertices back.
            previous: the previous frame's result, for warm start / temporal smoothing.

        Returns:
            A HandState (see its docstring for the frame of each field). Invalid rows
            (degenerate input) hold the flat hand at the origin with ``valid=False``; no
            field is ever NaN.
        """
        if handedness not in ("right", "left"):
            raise ValueError(f"handedness must be 'right' or 'left', got {handedness!r}")
        joints, vertices = self._inputs(joints, vertices)
        if handedness == "left":
            joints = joints * self._mirror
            vertices = None if vertices is None else vertices * self._mirror
        observed, valid = self._validate(joints)
        canonical, rotation, translation = self.canonicalize(joints, observed, valid)
        fix_betas = betas is not None
        prev_bio = None
        if previous is not None and len(previous) == len(joints):
            prev_bio = torch.as_tensor(previous.bio, dtype=self.dtype)
        bio, betas_t = self._initial_shape_and_dofs(canonical, betas, prev_bio)
        global_rotvec, transl = self._global_pose(bio, betas_t, joints, observed, rotation,
                                                  translation)  # fmt: skip
        weights = observed.to(self.dtype)
        if post_opt:
            bio, betas_t, global_rotvec, transl = self.post_optimizer.refine(
                torch.where(observed[..., None], joints, torch.zeros_like(joints)),
                weights, bio, betas_t, global_rotvec, transl, fix_betas=fix_betas,
                target_vertices=vertices, previous_bio=prev_bio,
            )  # fmt: skip
            bio = self.kinematics.clamp(bio)
        return self._hand_state(joints, observed, valid, weights, bio, betas_t, global_rotvec,
                                transl, handedness)  # fmt: skip

    def _inputs(self, joints, vertices) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Validated (N, 21, 3) joints and (N, V, 3) vertices (None if absent or partial)."""
        joints = torch.as_tensor(np.asarray(joints), dtype=self.dtype)
        if joints.ndim == 2:
            joints = joints[None]
        if joints.ndim != 3 or joints.shape[1:] != (NUM_KEYPOINTS, 3):
            raise ValueError(f"joints must be (N, 21, 3), got {tuple(joints.shape)}")
        if vertices is not None:
            vertices = torch.as_tensor(np.asarray(vertices), dtype=self.dtype)
            if vertices.ndim == 2:
                vertices = vertices[None]
            if vertices.shape != (len(joints), self.model.num_vertices, 3):
                raise ValueError(
                    f"vertices must be (N, {self.model.num_vertices}, 3) for this hand model, "
                    f"got {tuple(vertices.shape)}"
                )
            if not torch.isfinite(vertices).all():
                vertices = None  # a partial mesh is not used; keypoints still are
        return joints, vertices

    def _initial_shape_and_dofs(
        self, canonical: torch.Tensor, betas, prev_bio: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The start: (N, 23) DoF and (N, 10) shape from the IK net (or flat / warm start).

        A known ``betas`` ((10,) or (N, 10)) replaces the net's shape estimate.
        """
        n = len(canonical)
        if self.net is not None:
            with torch.no_grad():
                pred_betas, pred_bio = self.net(bone_features(canonical).to(self.dtype))
            bio = self.kinematics.clamp(pred_bio)
        else:
            pred_betas = torch.zeros(n, 10, dtype=self.dtype)
            # Without the net, the previous frame is the best start (warm start).
            bio = prev_bio if prev_bio is not None else torch.zeros(n, 23, dtype=self.dtype)
        if betas is None:
            return bio, pred_betas
        known = torch.as_tensor(np.asarray(betas), dtype=self.dtype).reshape(-1, 10)
        return bio, known.expand(n, -1).clone()

    def _global_pose(self, bio, betas_t, joints, observed, rotation, translation):
        """Global rotation vector (N, 3) and translation (N, 3) of the fitted hand.

        Aligns the fitted hand's palm (with its own shape) onto the input palm; the
        model rotates about its wrist joint J0: ``x' = R (x - J0) + J0 + transl``.
        """
        n = len(bio)
        with torch.no_grad():
            rotmats = torch.cat(
                [torch.eye(3, dtype=self.dtype).expand(n, 1, 3, 3),
                 self.kinematics.bio_to_rotmats(bio)], dim=1)  # fmt: skip
            fitted = self.keypoint_layer(betas_t, rotmats)
        palm = list(PALM_RIGID_KEYPOINTS)
        target = torch.where(observed[..., None], joints, fitted @ rotation.transpose(1, 2)
                             + translation[:, None])  # fmt: skip
        rot2, shift2 = rigid_align(fitted[:, palm], target[:, palm])
        layer = self.keypoint_layer
        wrist = layer.joint_template[0] + betas_t @ layer.joint_dirs[0].T
        transl = shift2 + (rot2 @ wrist[..., None])[..., 0] - wrist
        return roma.rotmat_to_rotvec(rot2), transl

    def _hand_state(self, joints, observed, valid, weights, bio, betas_t, global_rotvec,
                    transl, handedness: str) -> HandState:  # fmt: skip
        """Re-pose the model, neutralise invalid rows, mirror left hands back: a HandState."""
        with torch.no_grad():
            # Rotation matrices straight from the DoF (no axis-angle round trip).
            out = self.model.forward_rotmat(betas_t, self.kinematics.bio_to_rotmats(bio),
                                            roma.rotvec_to_rotmat(global_rotvec), transl)
        diff = (out.joints - torch.where(observed[..., None], joints, out.joints)).norm(dim=-1)
        fit_error = (diff * weights).sum(-1) / weights.sum(-1).clamp_min(1.0)

        # Invalid rows: a neutral, finite hand (never NaN).
        inv = ~valid
        if inv.any():
            bio[inv] = 0.0
            betas_t[inv] = 0.0
            global_rotvec[inv] = 0.0
            transl[inv] = 0.0
            with torch.no_grad():
                neutral = self.model(betas=betas_t[inv])
            out.joints[inv] = neutral.joints
            out.vertices[inv] = neutral.vertices
            fit_error[inv] = 0.0
        joints_out, verts_out = out.joints, out.vertices
        if handedness == "left":
            joints_out, verts_out = joints_out * self._mirror, verts_out * self._mirror
        return HandState(
            betas=betas_t.detach().double().numpy(),
            bio=bio.detach().double().numpy(),
            global_orient=global_rotvec.detach().double().numpy(),
            transl=transl.detach().double().numpy(),
            joints=joints_out.detach().double().numpy(),
            vertices=verts_out.detach().double().numpy(),
            fit_error=fit_error.detach().double().numpy(),
            valid=valid.numpy(),
            handedness=handedness,
        )
