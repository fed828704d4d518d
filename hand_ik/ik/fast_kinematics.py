"""Forward kinematics of the hand model and its closed-form Jacobians, in batched numpy.

The per-frame IK (alignment, post-optimization, output) needs, a few times per frame,
the keypoints of the posed hand and their derivatives with respect to the 23 DoF, the
global rotation, the translation and the shape coefficients. Torch's dispatch costs
milliseconds at this size; these closed forms cost a fraction of one:

- a DoF rotating joint j about the world axis u moves every point x of j's subtree by
  ``u x (x - p_j)`` (p_j: the joint's posed position);
- the global rotation, perturbed on the left, moves x by ``delta x (x - p_0)``;
- the points are linear in the shape for fixed rotations (forward kinematics of the
  shape directions).

The points are any :class:`~hand_ik.ik.point_regressor.PointRegressor` (blends over the
joints): the model's own 21 keypoints by default, or another keypoint convention. Every
array carries a leading batch dimension B (one frame: B = 1), float64, metres, model
frame. Matches ``HandModel`` / ``KeypointLayer`` (tested); the Jacobians ignore pose
correctives (``supports`` is False for models that have them).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from hand_ik.bio_dofs import NUM_BIO_DOFS
from hand_ik.biomech import BioKinematics
from hand_ik.ik.point_regressor import PointRegressor


def _np64(t) -> np.ndarray:
    return np.array(t.detach().cpu().double().numpy(), dtype=np.float64)


class Posed(NamedTuple):
    """A posed hand (world = model frame after the global pose), batch first."""

    points: np.ndarray  # (B, K, 3) the regressor's points
    world: np.ndarray  # (B, 16, 3, 3) joint rotations
    pos: np.ndarray  # (B, 16, 3) joint positions
    parent_world: np.ndarray  # (B, 15, 3, 3) rotations of the pose joints' parents
    local: np.ndarray  # (B, 15, 3, 3) local rotations of the pose joints
    elementary: np.ndarray  # (B, 15, 3, 3, 3) abd, flex, rot rotations of each joint
    contrib: np.ndarray | None  # (B, 16, K, 3) each joint's share of each point; None
    # when every point follows one joint (``FastKeypointKinematics.point_joint``)
    betas: np.ndarray  # (B, nb)


_EYE9 = np.eye(3).reshape(9)
#: -skew(r) as a linear map of r: ``(r @ _NEG_SKEW).reshape(3, 3) == -skew(r)``.
_NEG_SKEW = np.zeros((3, 9))
for _i, _a, _c, _sign in ((2, 0, 1, 1), (1, 0, 2, -1), (2, 1, 0, -1), (0, 1, 2, 1),
                          (1, 2, 0, 1), (0, 2, 1, -1)):  # fmt: skip
    _NEG_SKEW[_i, 3 * _a + _c] = _sign


class FastKeypointKinematics:
    """Numpy forward kinematics, points and Jacobians of one hand model (float64).

    Args:
        model: the ``HandModel`` (its buffers are copied).
        kinematics: the model's ``BioKinematics``.
        regressor: the points to pose; default the model's 21 keypoints.
    """

    def __init__(self, model, kinematics: BioKinematics,
                 regressor: PointRegressor | None = None) -> None:  # fmt: skip
        self.regressor = regressor if regressor is not None else PointRegressor.from_model(model)
        self.has_posedirs = bool(model.has_posedirs)
        #: The Jacobians are exact (no pose correctives): the post-optimization may use them.
        self.supports = not self.has_posedirs
        j_reg, v_template = _np64(model.J_regressor), _np64(model.v_template)
        shapedirs = _np64(model.shapedirs)
        self.num_betas = nb = shapedirs.shape[-1]
        self.joint_rest = j_reg @ v_template  # (16, 3)
        self.joint_dirs = np.einsum("jv,vcb->jcb", j_reg, shapedirs)  # (16, 3, nb)
        self.parents = np.array(model._parents_list)
        n = len(self.parents)
        par = self.parents[1:]
        subtree = np.eye(n, dtype=bool)
        for j in range(n - 1, 0, -1):  # children come after parents
            subtree[self.parents[j]] |= subtree[j]
        #: subtree[j, m]: joint m is j or below it.
        self.subtree = subtree
        #: ancestors[m, j - 1]: pose joint j is m or above it (sums bones down the chain).
        self.ancestors = subtree[1:].T.astype(np.float64)  # (16, 15)
        self._subtree_f = subtree[1:].astype(np.float64)  # (15, 16)
        depth = np.zeros(n, dtype=int)
        for j in range(1, n):
            depth[j] = depth[self.parents[j]] + 1
        #: Joints grouped by tree depth (parents always in an earlier group).
        self.levels = [np.flatnonzero(depth == d) for d in range(1, depth.max() + 1)]
        # MANO layout: five chains of three joints stored chain by chain (1-2-3, 4-5-6, ...):
        # the forward kinematics then walks strided views instead of gathering.
        chains = [-1] + [0 if j % 3 == 1 else j - 1 for j in range(1, n)]
        self._five_chains = n == 16 and self.parents.tolist() == chains
        # Bones (J_j - J_parent) and the shape's effect on them.
        self._bone_rest = self.joint_rest[1:] - self.joint_rest[par]  # (15, 3)
        self._bone_dirs = self.joint_dirs[1:] - self.joint_dirs[par]  # (15, 3, nb)
        # Elementary axes per pose joint, in composition order: abd (-b), flex (e), rot (d).
        frames = _np64(kinematics.frames)  # (15, 3, 3) rows d, b, e
        self.axes = np.stack([-frames[:, 1], frames[:, 2], frames[:, 0]], axis=1)  # (15, 3, 3)
        skews = _np64(kinematics.skews).reshape(-1, 9)  # (45, 9)
        skews2 = _np64(kinematics.skews2).reshape(-1, 9)
        #: Rodrigues per elementary rotation: I + sin(a) K + (1 - cos(a)) K^2, K and K^2
        #: flattened (45, 9) each.
        self._skews, self._skews2 = skews, skews2
        # bio (23) -> the 45 internal angles (joint-major: abd, flex, rot), signs included.
        slots = kinematics.slots.cpu().numpy().reshape(-1)
        signs = _np64(kinematics.signs)
        self.dof_map = np.zeros((NUM_BIO_DOFS, slots.size))
        held = slots < NUM_BIO_DOFS
        self.dof_map[slots[held], np.flatnonzero(held)] = signs[slots[held]]
        self.lower, self.upper = _np64(kinematics.lower), _np64(kinematics.upper)
        # Mesh (output only).
        self.v_template = v_template
        self._shapedirs_t = shapedirs.reshape(-1, nb).T  # (nb, V*3)
        self.lbs_weights = _np64(model.lbs_weights)  # (V, 16)
        self._posedirs = _np64(model.posedirs) if self.has_posedirs else None  # (P, V*3)
        self._set_regressor_tables()

    def _set_regressor_tables(self) -> None:
        reg = self.regressor
        n, nb, k = len(self.parents), self.num_betas, reg.num_points
        self.num_points = k
        # Everything linear in the shape, in one product per frame:
        # [wrist joint (3) | bones (45) | offsets (16 K 3)] = const + betas @ dirs.
        offsets = reg.offsets.transpose(1, 0, 2)  # (16, K, 3)
        offset_dirs = reg.offset_dirs.transpose(1, 0, 2, 3)  # (16, K, 3, nb)
        self._linear_const = np.concatenate([self.joint_rest[0], self._bone_rest.reshape(-1),
                                             offsets.reshape(-1)])  # fmt: skip
        self._linear_dirs = np.concatenate([self.joint_dirs[0], self._bone_dirs.reshape(-1, nb),
                                            offset_dirs.reshape(-1, nb)]).T  # fmt: skip
        self._pose_dirs_t = (None if reg.pose_dirs is None
                             else reg.pose_dirs.transpose(1, 0, 2, 3).reshape(
                                 -1, reg.pose_dirs.shape[-1]).T)  # fmt: skip
        self._weights_t = reg.weights.T[None, :, :, None]  # (1, 16, K, 1)
        self._row_sums = reg.weights.sum(1)  # (K,)
        self._subtree_weights = (self._subtree_f @ reg.weights.T)[None, :, :, None]  # (1,15,K,1)
        self._transl_jac = np.kron(self._row_sums[:, None], np.eye(3))  # (3K, 3)
        # d offsets / d betas as (16, 3, K nb) for the shape Jacobian: world_j @ this.
        self._offset_dirs_jc = offset_dirs.transpose(0, 2, 1, 3).reshape(n, 3, k * nb)
        # Every point carried by one joint (our keypoints): pose gathers that joint instead
        # of summing 16 shares, of which 15 are zero.
        nonzero = ((reg.weights != 0) | np.any(reg.offsets != 0, -1)
                   | np.any(reg.offset_dirs != 0, (-2, -1)))  # fmt: skip
        if reg.pose_dirs is not None:
            nonzero |= np.any(reg.pose_dirs != 0, (-2, -1))
        #: (K,) the joint carrying each point, or None when some point blends joints.
        self.point_joint = (nonzero.argmax(1) if (nonzero.sum(1) == 1).all() else None)
        if self.point_joint is not None:
            points = np.arange(k)
            self._point_weight = reg.weights[points, self.point_joint][None, :, None]  # (1, K, 1)
            # Gathers (B, K, 3) from the (B, 16, K, 3) offsets.
            self._offset_index = (slice(None), self.point_joint, points)
            # lever = [point in j's subtree] * point - subtree weight * p_j.
            self._lever_mask = self._subtree_f[:, self.point_joint][None, :, :, None]  # (1,15,K,1)
            # d offset_k / d betas of the carrying joint, (K, 3, nb).
            self._offset_dirs_k = reg.offset_dirs[points, self.point_joint]
        #: Without pose-dependent offsets, the gathered offsets are linear in the shape too:
        #: [wrist joint (3) | bones (45) | each point's own offset (K 3)], a tenth of the
        #: full table's columns (None: the full table is needed).
        self._own_linear = None
        if self.point_joint is not None and reg.pose_dirs is None:
            own = 48 + (np.arange(n)[self.point_joint, None] * k + np.arange(k)[:, None]) * 3 \
                + np.arange(3)  # fmt: skip
            columns = np.concatenate([np.arange(48), own.reshape(-1)])
            self._own_linear = (self._linear_const[columns],
                                np.ascontiguousarray(self._linear_dirs[:, columns]))

    # --- rotations ---------------------------------------------------------------------
    def bio_to_rotmats(self, bio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, 23) radians -> local rotations (B, 15, 3, 3) and elementary (B, 15, 3, 3, 3).

        The same Rodrigues form as ``BioKinematics.bio_to_rotmats``:
        ``R = R_abd @ R_flex @ R_rot``, each ``I + sin(a) K + (1 - cos(a)) K^2``.
        """
        batch = len(bio)
        angles = (bio @ self.dof_map)[..., None]  # (B, 45, 1)
        # Elementwise rather than (B, 45, 1, 2) @ (45, 2, 9): one matmul loop less.
        elementary = (np.sin(angles) * self._skews + (1.0 - np.cos(angles)) * self._skews2
                      + _EYE9).reshape(batch, -1, 3, 3, 3)  # fmt: skip
        local = elementary[:, :, 0] @ elementary[:, :, 1] @ elementary[:, :, 2]
        return local, elementary

    # --- forward kinematics ------------------------------------------------------------
    def rest_joints(self, betas: np.ndarray) -> np.ndarray:
        """(B, nb) shape -> (B, 16, 3) shaped rest joints, metres."""
        return self.joint_rest + (betas @ self.joint_dirs.reshape(-1, self.num_betas).T
                                  ).reshape(len(betas), -1, 3)  # fmt: skip

    def pose(self, betas: np.ndarray, bio: np.ndarray, rotation: np.ndarray,
             transl: np.ndarray) -> Posed:  # fmt: skip
        """Pose the skeleton and the regressor's points.

        Args:
            betas: (B, nb); bio: (B, 23) radians; rotation: (B, 3, 3) global rotation
                about the wrist joint; transl: (B, 3) metres.
        """
        batch, n, k = len(bio), len(self.parents), self.num_points
        own_linear = self._own_linear if self.point_joint is not None else None
        if own_linear is not None:
            const, dirs = own_linear
            linear = const + betas @ dirs
        else:
            linear = self._linear_const + betas @ self._linear_dirs
        wrist = linear[:, :3] + transl
        bones = linear[:, 3:48].reshape(batch, n - 1, 3, 1)
        local, elementary = self.bio_to_rotmats(bio)
        world = np.empty((batch, n, 3, 3))
        world[:, 0] = rotation
        if self._five_chains:
            chain_world = world[:, 1:].reshape(batch, 5, 3, 3, 3)  # a view: chain, depth
            chain_local = local.reshape(batch, 5, 3, 3, 3)
            chain_world[:, :, 0] = rotation[:, None] @ chain_local[:, :, 0]
            chain_world[:, :, 1] = chain_world[:, :, 0] @ chain_local[:, :, 1]
            chain_world[:, :, 2] = chain_world[:, :, 1] @ chain_local[:, :, 2]
            parent_world = np.empty((batch, 5, 3, 3, 3))
            parent_world[:, :, 0] = rotation[:, None]
            parent_world[:, :, 1:] = chain_world[:, :, :2]
            parent_world = parent_world.reshape(batch, n - 1, 3, 3)
            steps = (parent_world @ bones).reshape(batch, 5, 3, 3)
            pos = np.empty((batch, n, 3))
            pos[:, 0] = wrist
            steps[:, :, 1] += steps[:, :, 0]  # the sums along each chain (cumsum's order,
            steps[:, :, 2] += steps[:, :, 1]  # at a fraction of its call cost)
            pos[:, 1:] = (steps + wrist[:, None, None]).reshape(batch, n - 1, 3)
        else:
            for level in self.levels:  # all joints of one tree depth at once
                world[:, level] = world[:, self.parents[level]] @ local[:, level - 1]
            parent_world = world[:, self.parents[1:]]
            steps = (parent_world @ bones)[..., 0]
            pos = wrist[:, None] + self.ancestors @ steps
        if own_linear is not None:  # each point's own offset, from the shape alone
            own = linear[:, 48:].reshape(batch, k, 3)
        else:
            offsets = linear[:, 48:].reshape(batch, n, k, 3)
            if self._pose_dirs_t is not None:
                feature = (local - np.eye(3)).reshape(batch, -1)
                offsets = offsets + (feature @ self._pose_dirs_t).reshape(offsets.shape)
            own = None if self.point_joint is None else offsets[self._offset_index]  # (B, K, 3)
        if own is not None:
            # One joint j(k) per point: R_j O_kj + W_kj p_j.
            joint = self.point_joint
            points = (world[:, joint] @ own[..., None])[..., 0] + pos[:, joint] * self._point_weight
            return Posed(points, world, pos, parent_world, local, elementary, None, betas)
        # Each joint's share of each point: O_kj R_j^T + W_kj p_j, (B, 16, K, 3).
        contrib = offsets @ world.transpose(0, 1, 3, 2) + pos[:, :, None] * self._weights_t
        return Posed(contrib.sum(1), world, pos, parent_world, local, elementary, contrib,
                     betas)  # fmt: skip

    def transform(self, posed: Posed, rotation: np.ndarray, transl: np.ndarray) -> Posed:
        """A posed hand moved rigidly: ``x' = R (x - J0) + J0 + t`` about its wrist joint J0.

        ``posed`` must have the identity global rotation and no translation; the result
        equals :meth:`pose` with ``rotation`` (B, 3, 3) and ``transl`` (B, 3), for a
        fraction of its cost.
        """
        wrist = posed.pos[:, 0]
        shift = wrist + transl - (rotation @ wrist[..., None])[..., 0]  # (B, 3)
        rot_t = rotation.transpose(0, 2, 1)[:, None]
        pos = posed.pos @ rot_t[:, 0] + shift[:, None]
        contrib = (None if posed.contrib is None
                   else posed.contrib @ rot_t + self._weights_t * shift[:, None, None])
        points = posed.points @ rot_t[:, 0] + self._row_sums[:, None] * shift[:, None]
        return Posed(points, rotation[:, None] @ posed.world, pos,
                     rotation[:, None] @ posed.parent_world, posed.local, posed.elementary,
                     contrib, posed.betas)  # fmt: skip

    def forward(self, betas: np.ndarray, bio: np.ndarray, rotation: np.ndarray,
                transl: np.ndarray, jacobians: bool = True,
                shape_jacobian: bool = True):  # fmt: skip
        """Points (B, K, 3) and, optionally, their Jacobians.

        Args:
            betas: (B, nb); bio: (B, 23) radians; rotation: (B, 3, 3) about the wrist
                joint; transl: (B, 3) metres.
            jacobians: also return d points / d (bio, rot, transl[, betas]).
            shape_jacobian: include ``betas`` in the Jacobians.

        Returns:
            points (B, K, 3) and, with ``jacobians``, a dict of (B, 3K, n) arrays (rows
            point-major: 3 k + axis): ``bio`` (n=23), ``rot`` (3, left perturbation),
            ``transl`` (3) and ``betas`` (nb, with ``shape_jacobian``).
        """
        posed = self.pose(betas, bio, rotation, transl)
        if not jacobians:
            return posed.points, None
        return posed.points, self.jacobians(posed, shape_jacobian)

    def jacobians(self, posed: Posed, shape_jacobian: bool = True) -> dict[str, np.ndarray]:
        """Jacobians of ``posed.points`` as a dict (see :meth:`forward`)."""
        nb = self.num_betas if shape_jacobian else 0
        out = np.empty((len(posed.points), 3 * self.num_points, 29 + nb))
        self.jacobian_into(posed, out, shape_jacobian)
        parts = {"bio": out[..., :23], "rot": out[..., 23 + nb : 26 + nb],
                 "transl": out[..., 26 + nb :]}  # fmt: skip
        if shape_jacobian:
            parts["betas"] = out[..., 23 : 23 + nb]
        return parts

    def jacobian_into(self, posed: Posed, out: np.ndarray, shape_jacobian: bool = True) -> None:
        """Write d points / d [bio (23), betas (nb, with ``shape_jacobian``), rotation (3, left
        perturbation), translation (3)] into ``out`` (B, 3K, 29 [+ nb]), rows 3 k + axis."""
        batch, n, k = len(posed.points), len(self.parents), self.num_points
        nb = self.num_betas if shape_jacobian else 0
        pos, e = posed.pos, posed.elementary
        # World axes of the elementary rotations (columns): abd g a0, flex g R_abd a1,
        # rot g R_local a2 (a rotation keeps its own axis), g the parent's rotation.
        local_axes = np.empty((batch, n - 1, 3, 3))
        local_axes[..., 0] = self.axes[:, 0]
        local_axes[..., 1] = (e[:, :, 0] @ self.axes[:, 1, :, None])[..., 0]
        local_axes[..., 2] = (posed.local @ self.axes[:, 2, :, None])[..., 0]
        axes_rows = (posed.parent_world @ local_axes).transpose(0, 1, 3, 2)  # (B, 15, kind, 3)
        # Lever of joint j on point k: the point's shares from j's subtree, minus the
        # subtree's weight times p_j. (B, 15, 1, K, 3)
        if posed.contrib is None:  # one joint per point: its subtree holds all or nothing
            lever = self._lever_mask * (posed.points[:, None]
                                        - self._point_weight[:, None] * pos[:, 1:, None])
        else:
            lever = (self._subtree_f @ posed.contrib.reshape(batch, n, -1)).reshape(
                batch, n - 1, k, 3) - self._subtree_weights * pos[:, 1:, None]  # fmt: skip
        lever = lever[:, :, None]
        # Columns u x l, as rows: l @ skew(u)^T, and skew(u)^T = -skew(u).
        skew_t = (axes_rows @ _NEG_SKEW).reshape(batch, n - 1, 3, 3, 3)
        cols = (lever @ skew_t).reshape(batch, 3 * (n - 1), 3 * k)  # (B, 45, 3K)
        out[..., :23] = (self.dof_map @ cols).transpose(0, 2, 1)
        if nb:
            out[..., 23 : 23 + nb] = self._shape_jacobian(posed)
        # Global rotation (left perturbation about the wrist joint): delta x (y - s p0).
        r = posed.points - self._row_sums[:, None] * pos[:, None, 0]
        out[..., 23 + nb : 26 + nb] = (r @ _NEG_SKEW).reshape(batch, 3 * k, 3)
        out[..., 26 + nb :] = self._transl_jac

    def _shape_jacobian(self, posed: Posed) -> np.ndarray:
        """(B, 3K, nb) d points / d betas: forward kinematics of the shape directions."""
        batch, nb, k = len(posed.points), self.num_betas, self.num_points
        steps = (posed.parent_world @ self._bone_dirs).reshape(batch, -1, 3 * nb)
        d_pos = self.joint_dirs[0].reshape(-1) + self.ancestors @ steps  # (B, 16, 3 nb)
        if self.point_joint is not None:  # one joint per point: gather it
            joint = self.point_joint
            d_points = d_pos[:, joint] * self._point_weight  # (B, K, 3 nb)
            d_off = posed.world[:, joint] @ self._offset_dirs_k  # (B, K, 3, nb)
            return (d_points.reshape(batch, k, 3, nb) + d_off).reshape(batch, 3 * k, nb)
        d_points = (self.regressor.weights @ d_pos).reshape(batch, k, 3, nb)
        d_off = (posed.world @ self._offset_dirs_jc).sum(1).reshape(batch, 3, k, nb)
        return (d_points + d_off.transpose(0, 2, 1, 3)).reshape(batch, 3 * k, nb)

    # --- mesh ----------------------------------------------------------------------------
    def vertices(self, posed: Posed) -> np.ndarray:
        """(B, V, 3) mesh vertices of a posed hand (linear blend skinning), metres."""
        batch = len(posed.betas)
        shaped = self.v_template + (posed.betas @ self._shapedirs_t).reshape(batch, -1, 3)
        if self._posedirs is not None:
            feature = (posed.local - np.eye(3)).reshape(batch, -1)
            shaped = shaped + (feature @ self._posedirs).reshape(batch, -1, 3)
        # Skinning transforms: rest points -> posed points, [R_j | p_j - R_j J_j].
        rest = self.rest_joints(posed.betas)
        shift = posed.pos - (posed.world @ rest[..., None])[..., 0]
        transforms = np.concatenate([posed.world, shift[..., None]], axis=-1)
        blended = (self.lbs_weights @ transforms.reshape(batch, -1, 12)).reshape(batch, -1, 3, 4)
        return np.einsum("bvij,bvj->bvi", blended[..., :3], shaped) + blended[..., 3]
