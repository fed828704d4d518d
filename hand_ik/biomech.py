"""The 23 biomechanical DoF <-> the hand model's 45 axis-angle pose.

Each DoF rotates one model joint about an axis derived from the rest-pose geometry
of the model in use (seed 002: "prepared on a standard hand mesh"), so the same
code serves our open hand and a user's MANO file. For every driven joint we build
a right-handed frame from its rest bone:

- ``d``: the bone direction, from the joint to its child keypoint (distal);
- ``b``: the bend direction, perpendicular to ``d``: the palm normal (out of the
  palm) for the long fingers; for the thumb, the direction of its pad, taken as
  the ulnar-palmar diagonal of the hand root frame (-x + z);
- ``e = d x b``: the side direction (radial for the long fingers).

A joint's local rotation is ``R = R_abd(alpha) @ R_flex(phi) @ R_rot(psi)`` with
``R_flex`` about ``e`` (moves the bone toward ``b``), ``R_abd`` about ``-b`` (moves
it toward ``e``) and ``R_rot`` about ``d`` (twist). Every DoF also has a sign so
that the public conventions of ``hand_ik.bio_dofs`` hold (e.g. positive
abduction toward the thumb side). All angles are 0 in the model's template pose.
"""

from __future__ import annotations

import weakref

import roma
import torch

from hand_ik.bio_dofs import BIO_DOF_NAMES, BIO_LOWER, BIO_UPPER, NUM_BIO_DOFS
from hand_ik.frames import hand_root_frame
from hand_ik.hand_model_data import MANO_JOINT_NAMES, MANO_TO_KEYPOINT, NUM_POSE_JOINTS

_KINDS = ("abd", "flex", "rot")


def _joint_of_dof(name: str) -> int:
    """MANO joint index (1..15) driven by a DoF name such as ``index_pip_flex``."""
    finger, joint, _ = name.split("_")
    return MANO_JOINT_NAMES.index(f"{finger}_{joint}")


def _normalize(v: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    # Guard against zero-length vectors (degenerate rest geometry) producing NaN.
    return v / v.norm(dim=-1, keepdim=True).clamp_min(eps)


def _perpendicular(v: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Unit component of ``v`` perpendicular to unit ``d``."""
    return _normalize(v - (v * d).sum(-1, keepdim=True) * d)


class BioKinematics(torch.nn.Module):
    """Axes, signs and limits of the 23 DoF for one hand model (right-hand canonical form).

    Build it with :meth:`from_rest_keypoints` or :func:`bio_kinematics_for`.
    """

    def __init__(self, frames: torch.Tensor, signs: torch.Tensor) -> None:
        """
        Args:
            frames: (15, 3, 3) per pose joint, rows ``d``, ``b``, ``e`` (model frame).
            signs: (23,) +-1 mapping internal angles to the public conventions.
        """
        super().__init__()
        self.register_buffer("frames", frames)
        self.register_buffer("signs", signs)
        # (15, 3) index into a padded 24-vector: slot j, k holds the DoF driving joint j+1 with
        # kind _KINDS[k], or 23 (a zero) where the joint has no such DoF.
        slots = torch.full((NUM_POSE_JOINTS, 3), NUM_BIO_DOFS, dtype=torch.long)
        for i, name in enumerate(BIO_DOF_NAMES):
            slots[_joint_of_dof(name) - 1, _KINDS.index(name.rsplit("_", 1)[1])] = i
        self.register_buffer("slots", slots)
        # Elementary axes per joint in composition order (abd: -b, flex: e, rot: d) as
        # cross-product matrices K and K @ K, for a cheap Rodrigues formula.
        axes = torch.stack([-frames[:, 1], frames[:, 2], frames[:, 0]], dim=1)  # (15, 3, 3)
        skews = torch.zeros(*axes.shape[:2], 3, 3, dtype=frames.dtype)
        skews[..., 0, 1], skews[..., 0, 2] = -axes[..., 2], axes[..., 1]
        skews[..., 1, 0], skews[..., 1, 2] = axes[..., 2], -axes[..., 0]
        skews[..., 2, 0], skews[..., 2, 1] = -axes[..., 1], axes[..., 0]
        self.register_buffer("skews", skews)
        self.register_buffer("skews2", skews @ skews)
        self.register_buffer("eye", torch.eye(3, dtype=frames.dtype))
        self.register_buffer("lower", torch.tensor(BIO_LOWER, dtype=frames.dtype))
        self.register_buffer("upper", torch.tensor(BIO_UPPER, dtype=frames.dtype))

    @classmethod
    def from_rest_keypoints(cls, rest_keypoints: torch.Tensor) -> BioKinematics:
        """Derive the joint frames from a rest pose.

        Args:
            rest_keypoints: (21, 3) keypoints of the model's template pose (pose 0), metres,
                FreiHAND order, model frame.
        """
        kp = rest_keypoints.detach()
        rotation, _ = hand_root_frame(kp)
        x, z = rotation[:, 0], rotation[:, 2]
        frames, signs = [], torch.ones(NUM_BIO_DOFS, dtype=kp.dtype)
        for joint in range(1, 16):
            k = MANO_TO_KEYPOINT[joint]
            d = _normalize(kp[k + 1] - kp[k])  # the child keypoint is the next one in the chain
            thumb = MANO_JOINT_NAMES[joint].startswith("thumb")
            b = _perpendicular(-x + z if thumb else z, d)
            e = torch.linalg.cross(d, b, dim=-1)
            frames.append(torch.stack([d, b, e]))
            if thumb:
                # Public conventions for the thumb: abduction moves the bone away from the
                # palm and radially (+x + z); rotation turns the pad toward the ulnar side.
                for kind, internal_dir, wanted in (("abd", e, x + z), ("rot", e, -x)):
                    name = f"{MANO_JOINT_NAMES[joint]}_{kind}"
                    if name in BIO_DOF_NAMES and float(internal_dir @ wanted) < 0:
                        signs[BIO_DOF_NAMES.index(name)] = -1.0
        return cls(torch.stack(frames), signs)

    # --- bio -> rotations ------------------------------------------------------------------------
    def joint_angles(self, bio: torch.Tensor) -> torch.Tensor:
        """(..., 23) public DoF -> (..., 15, 3) internal (abd, flex, rot) angles per joint."""
        internal = bio * self.signs
        padded = torch.cat([internal, internal.new_zeros(*internal.shape[:-1], 1)], dim=-1)
        return padded[..., self.slots]

    def bio_to_rotmats(self, bio: torch.Tensor) -> torch.Tensor:
        """Local joint rotations for the 15 pose joints.

        Args:
            bio: (..., 23) radians, ``BIO_DOF_NAMES`` order.

        Returns:
            (..., 15, 3, 3) rotation matrices in the model frame (MANO joints 1..15).
        """
        angles = self.joint_angles(bio)[..., None, None]  # (..., 15, 3, 1, 1)
        # Rodrigues with the axes' cross-product matrices precomputed: R = I + sK + (1-c)K^2.
        rot = self.eye + torch.sin(angles) * self.skews + (1 - torch.cos(angles)) * self.skews2
        return rot[..., 0, :, :] @ rot[..., 1, :, :] @ rot[..., 2, :, :]

    def bio_to_pose(self, bio: torch.Tensor) -> torch.Tensor:
        """(..., 23) radians -> (..., 45) axis-angle pose relative to the template."""
        rotvec = roma.rotmat_to_rotvec(self.bio_to_rotmats(bio))
        return rotvec.flatten(-2)

    # --- rotations -> bio (closed form) ----------------------------------------------------------
    def rotmats_to_bio(self, rotmats: torch.Tensor) -> torch.Tensor:
        """Closest DoF values of each joint rotation, joint by joint (closed form).

        Exact for rotations produced by :meth:`bio_to_rotmats` within the limits; for general
        rotations it keeps each bone's direction (swing) and the thumb's twist, and drops
        the rest. :func:`pose_to_bio` refines this against the mesh.

        Args:
            rotmats: (..., 15, 3, 3) local joint rotations.

        Returns:
            (..., 23) radians.
        """
        d, b, e = self.frames[:, 0], self.frames[:, 1], self.frames[:, 2]
        rd = (rotmats @ d[..., None])[..., 0]
        re = (rotmats @ e[..., None])[..., 0]

        def dot(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            return (u * v).sum(-1)

        has = (self.slots < NUM_BIO_DOFS).to(rotmats.dtype)  # (15, 3)
        three_dof = has[:, 2] > 0
        # Joints without twist: R e = cos(a) e - sin(a) d (flexion keeps e) -> exact abduction
        # at any flexion, even past 90 degrees.
        alpha_2 = torch.atan2(-dot(re, d), dot(re, e))
        # Joints with twist: the bone direction gives abduction and flexion (|flex| < 90 deg).
        alpha_3 = torch.atan2(dot(rd, e), dot(rd, d))
        alpha = torch.where(three_dof, alpha_3, alpha_2) * has[:, 0]
        # Undo abduction, then flexion is the angle of the bone toward b.
        r_abd = roma.rotvec_to_rotmat(alpha[..., None] * -b)
        v = (r_abd.transpose(-1, -2) @ rd[..., None])[..., 0]
        phi = torch.atan2(dot(v, b), dot(v, d)) * has[:, 1]
        r_flex = roma.rotvec_to_rotmat(phi[..., None] * e)
        # Remaining rotation (ideally about d): its twist angle, measured on b.
        residual = (r_abd @ r_flex).transpose(-1, -2) @ rotmats
        rb = (residual @ b[..., None])[..., 0]
        psi = torch.atan2(dot(rb, e), dot(rb, b)) * has[:, 2]
        angles = torch.stack([alpha, phi, psi], dim=-1)  # (..., 15, 3)
        flat = angles.flatten(-2)
        index = torch.empty(NUM_BIO_DOFS, dtype=torch.long, device=rotmats.device)
        valid = self.slots.flatten() < NUM_BIO_DOFS
        index[self.slots.flatten()[valid]] = torch.arange(45, device=rotmats.device)[valid]
        return flat[..., index] * self.signs

    def pose_to_bio_closed_form(self, pose: torch.Tensor) -> torch.Tensor:
        """(..., 45) axis-angle pose -> (..., 23) radians, joint by joint."""
        rotmats = roma.rotvec_to_rotmat(pose.unflatten(-1, (NUM_POSE_JOINTS, 3)))
        return self.rotmats_to_bio(rotmats)

    def clamp(self, bio: torch.Tensor) -> torch.Tensor:
        """Clip (..., 23) DoF values to the joint limits."""
        return torch.minimum(torch.maximum(bio, self.lower), self.upper)

    def limit_violation(self, bio: torch.Tensor) -> torch.Tensor:
        """(..., 23) radians outside the limits (0 inside)."""
        return torch.relu(self.lower - bio) + torch.relu(bio - self.upper)


_KINEMATICS_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def bio_kinematics_for(model) -> BioKinematics:
    """The DoF axes of a hand model, derived once from its mean-shape template (cached).

    Args:
        model: a ``hand_ik.hand_model.HandModel`` (right hand or right-canonical use).
    """
    kin = _KINEMATICS_CACHE.get(model)
    if kin is None:
        with torch.no_grad():
            rest = model(betas=None).joints[0]
        kin = BioKinematics.from_rest_keypoints(rest.to(torch.float64))
        kin = kin.to(dtype=model.v_template.dtype, device=model.v_template.device)
        _KINEMATICS_CACHE[model] = kin
    return kin


_DEFAULT_MODEL = None


def default_hand_model():
    """The open right hand model, loaded once (float32)."""
    global _DEFAULT_MODEL
    if _DEFAULT_MODEL is None:
        from hand_ik.hand_model import load_hand_model

        _DEFAULT_MODEL = load_hand_model("open")
    return _DEFAULT_MODEL


def bio_to_pose(bio: torch.Tensor, model=None) -> torch.Tensor:
    """(..., 23) biomechanical DoF (radians) -> (..., 45) axis-angle pose of ``model``.

    Args:
        bio: DoF values, ``hand_ik.BIO_DOF_NAMES`` order; differentiable.
        model: the hand model whose rest geometry defines the axes (default: the open
            right hand).

    Returns:
        The pose relative to the model's template (MANO joint order), same dtype as ``bio``.
    """
    kin = bio_kinematics_for(model if model is not None else default_hand_model())
    bio = torch.as_tensor(bio)
    return kin.bio_to_pose(bio.to(kin.frames.dtype)).to(bio.dtype)
