"""``IKSolver``: 21 estimated joints -> hand shape, 23 DoF and wrist pose (a HandState).

Pipeline per batch (seed 002 §3.3-3.4), all in numpy (no torch per frame):
1. validity: finite palm keypoints spanning a real palm; missing finger keypoints
   (NaN) are allowed and lower the score;
2. global orientation and wrist position in closed form: Kabsch of the model's
   rest palm (wrist, thumb CMC, four finger MCPs) onto the input palm;
3. the IK net on bone directions + lengths of the canonicalised joints -> betas, bio;
4. optional post-optimization (``PostOptimizer``) on keypoints (and vertices);
5. the output: the model's keypoints (and, when asked, its mesh) re-posed by the result.

Forward kinematics and Jacobians: :class:`~hand_ik.ik.fast_kinematics.FastKeypointKinematics`.
The keypoints compared with the input are its ``regressor`` (the input's keypoint
convention; the model's own keypoints by default): pass another
:class:`~hand_ik.ik.point_regressor.PointRegressor` as ``keypoints`` to fit another convention.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from hand_ik.biomech import bio_kinematics_for
from hand_ik.hand_state import HandState
from hand_ik.ik._rotations_np import rotmat_to_rotvec_batch
from hand_ik.ik.alignment import rigid_align_np
from hand_ik.ik.fast_kinematics import FastKeypointKinematics
from hand_ik.ik.features import bone_features_np
from hand_ik.ik.ik_net import NumpyIKNet
from hand_ik.ik.keypoint_layer import KeypointLayer
from hand_ik.ik.point_regressor import PointRegressor
from hand_ik.ik.post_opt import ImageEvidence, PostOptConfig, PostOptimizer
from hand_ik.ik.weights import load_ik_weights
from hand_ik.keypoints import NUM_KEYPOINTS

#: Keypoints rigidly attached to the wrist: wrist, thumb CMC and the four finger MCPs.
PALM_RIGID_KEYPOINTS = (0, 1, 5, 9, 13, 17)
#: A palm smaller than this (max distance from the wrist, metres) is degenerate input.
MIN_PALM_SIZE_M = 0.01
#: Coordinates beyond this (metres) count as missing: no hand is there, and squaring them
#: would overflow the alignment.
MAX_ABS_COORDINATE_M = 1e3
_PALM = list(PALM_RIGID_KEYPOINTS)
#: x -> -x: a left hand's input into right-hand form, and its re-posed hand back.
_MIRROR = np.array([-1.0, 1.0, 1.0])


#: Fewer usable 2D keypoints than this: no reprojection term for the hand.
MIN_IMAGE_KEYPOINTS = 4


def image_evidence(image_points, confidence, K, n: int,
                   handedness: str = "right") -> ImageEvidence | None:  # fmt: skip
    """The post-optimization's 2D evidence for n hands (right-hand form), or None.

    A keypoint drops out where its pixels are not finite or its confidence is not > 0; a
    hand with fewer than :data:`MIN_IMAGE_KEYPOINTS` left, or a non-finite ``K``, gets
    weight 0. A left hand is solved mirrored (x -> -x in 3D): its projection is
    ``K @ diag(-1, 1, 1)``, i.e. fx (and the skew) negated; the pixels stay as they are.
    The hand's image size (the scale of the 2D error) is its keypoints' bounding-box
    diagonal, pixels.
    """
    if image_points is None or K is None:
        return None
    points = np.array(image_points, dtype=np.float64).reshape(-1, NUM_KEYPOINTS, 2)
    camera = np.array(K, dtype=np.float64)
    if camera.shape == (3, 3):
        camera = np.broadcast_to(camera, (n, 3, 3)).copy()
    if len(points) != n or camera.shape != (n, 3, 3):
        raise ValueError(f"image_points must be (N, 21, 2) and K (3, 3) or (N, 3, 3) for "
                         f"N = {n}, got {points.shape} and {camera.shape}")  # fmt: skip
    conf = (np.ones((n, NUM_KEYPOINTS)) if confidence is None
            else np.array(confidence, dtype=np.float64).reshape(n, NUM_KEYPOINTS))  # fmt: skip
    with np.errstate(invalid="ignore"):
        usable = np.isfinite(points).all(-1) & (conf > 0) & np.isfinite(conf)
    usable &= np.isfinite(camera).all((1, 2))[:, None]
    weights = np.where(usable, np.minimum(np.where(usable, conf, 0.0), 1.0), 0.0)
    points = np.where(usable[..., None], points, 0.0)
    big = np.where(usable[..., None], points, np.inf).min(1)
    small = np.where(usable[..., None], points, -np.inf).max(1)
    scale = np.sqrt(((small - big) ** 2).sum(-1)) if usable.any() else np.zeros(n)
    scale = np.where(usable.sum(-1) >= MIN_IMAGE_KEYPOINTS, scale, 0.0)
    weights[~(scale > 1.0)] = 0.0  # too few keypoints, or a hand under a pixel
    camera = np.where(np.isfinite(camera), camera, 0.0)
    if handedness == "left":
        camera = camera * _MIRROR
    return ImageEvidence(points, weights, camera, np.where(scale > 1.0, scale, 1.0))


class _Clock:
    """Milliseconds between laps into a dict (or nothing without one)."""

    def __init__(self, out: dict[str, float] | None) -> None:
        self.out = out
        self.last = time.perf_counter() if out is not None else 0.0

    def lap(self, name: str) -> None:
        if self.out is not None:
            now = time.perf_counter()
            self.out[name] = (now - self.last) * 1e3
            self.last = now


class IKSolver:
    """Biomechanically feasible IK with optional post-optimization.

    Args:
        model: a ``HandModel`` (right hand; left hands are mirrored in by the caller
            or via ``handedness="left"``).
        weights: IK net weights file, ``"default"`` for the shipped ones, or None
            (post-optimization alone then starts from the relaxed pose).
        post_opt: configuration of the post-optimization.
        keypoints: the input's keypoint convention as blends over the model's joints
            (default: the model's own 21 keypoints); the post-optimization and the fit
            error compare these with the input.
    """

    def __init__(self, model, weights="default", post_opt: PostOptConfig | None = None,
                 keypoints: PointRegressor | None = None) -> None:  # fmt: skip
        self.model = model
        self.kinematics = bio_kinematics_for(model)
        self.net = None if weights is None else load_ik_weights(weights, model)
        if self.net is not None and self.net.num_rotation_params != 23:
            raise ValueError(
                f"{weights}: IKSolver needs the 23-DoF IK net, this file holds "
                f"{self.net.num_rotation_params} rotation parameters (the 45-DoF baseline)"
            )
        self._net_np = None if self.net is None else NumpyIKNet(self.net)
        post_opt = post_opt or PostOptConfig()
        if self.net is None:
            # Without the net the start is the flat hand: no prior toward it.
            post_opt = dataclasses.replace(post_opt, start_weight=0.0)
        #: The model's own keypoints (the output), and the input convention's (the fit).
        self.fk = FastKeypointKinematics(model, self.kinematics)
        self.fit_fk = (self.fk if keypoints is None
                       else FastKeypointKinematics(model, self.kinematics, keypoints))  # fmt: skip
        self.post_optimizer = PostOptimizer(model, self.kinematics, post_opt, fast=self.fit_fk)
        self.num_betas = self.fk.num_betas
        #: The torch keypoint layer, for offline fits (``calibrate_shape``).
        self.keypoint_layer = KeypointLayer(model)
        # The rest keypoints (mean shape, flat hand, input convention): the frame the IK
        # net reads.
        self._rest_fit = self.fit_fk.pose(np.zeros((1, self.num_betas)), np.zeros((1, 23)),
                                          np.eye(3)[None], np.zeros((1, 3))).points[0]  # fmt: skip

    # ------------------------------------------------------------------------------------
    def _validate(self, joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Observed keypoints (N, 21) and valid rows (N,): the palm observed and not tiny."""
        with np.errstate(invalid="ignore"):
            observed = (np.abs(joints) <= MAX_ABS_COORDINATE_M).all(-1)  # NaN compares False
        safe = np.where(observed[..., None], joints, 0.0)
        palm = safe[:, _PALM]
        size = np.sqrt(((palm - palm[:, :1]) ** 2).sum(-1)).max(-1)
        valid = observed[:, _PALM].all(-1) & (size > MIN_PALM_SIZE_M)
        return observed, valid

    def canonicalize(self, joints: np.ndarray, observed: np.ndarray, valid: np.ndarray):
        """Rigidly align the rest palm onto the input palm; joints in the model frame.

        Returns (canonical joints (N, 21, 3) with missing ones filled from the rest pose,
        rotation (N, 3, 3), translation (N, 3)) with ``input = R @ canonical + t``.
        """
        rest = np.broadcast_to(self._rest_fit, joints.shape)
        safe = np.where(observed[..., None] & valid[:, None, None], joints, rest)
        rotation, translation = rigid_align_np(rest[:, _PALM], safe[:, _PALM])
        canonical = (safe - translation[:, None]) @ rotation
        canonical = np.where(observed[..., None], canonical, rest)
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
        with_vertices: bool = True,
        timings: dict[str, float] | None = None,
        image_points=None,
        confidence=None,
        K=None,
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
            with_vertices: also re-pose the mesh (``HandState.vertices``; None without).
            timings: a dict to receive the milliseconds of each part (``align_ms``: checks
                and Kabsch, ``net_ms``, ``global_pose_ms``, ``post_opt_ms``, ``output_ms``).
            image_points: (N, 21, 2) or (21, 2) the estimator's 2D keypoints, pixels, in the
                image ``joints`` are the camera frame of (same keypoint convention as the
                fit); with ``K``, the post-optimization's reprojection term. NaN: missing.
            confidence: (N, 21) or (21,) their confidence in [0, 1] (0: missing), or None
                (all 1).
            K: (3, 3) or (N, 3, 3) camera intrinsics of ``joints``' frame, or None (no
                reprojection term).

        Returns:
            A HandState (see its docstring for the frame of each field). Invalid rows
            (degenerate input) hold the flat hand at the origin with ``valid=False``; no
            field is ever NaN.
        """
        if handedness not in ("right", "left"):
            raise ValueError(f"handedness must be 'right' or 'left', got {handedness!r}")
        clock = _Clock(timings)
        joints, vertices = self._inputs(joints, vertices)
        if handedness == "left":
            joints = joints * _MIRROR
            vertices = None if vertices is None else vertices * _MIRROR
        observed, valid = self._validate(joints)
        canonical, rotation, translation = self.canonicalize(joints, observed, valid)
        clock.lap("align_ms")
        prev_bio = None
        if previous is not None and len(previous) == len(joints):
            prev_bio = np.asarray(previous.bio, np.float64)
        bio, betas_n = self._initial_shape_and_dofs(canonical, betas, prev_bio)
        clock.lap("net_ms")
        rot, transl, posed = self._global_pose(bio, betas_n, joints, observed, rotation,
                                               translation)  # fmt: skip
        weights = observed.astype(np.float64)
        target = np.where(observed[..., None], joints, 0.0)
        clock.lap("global_pose_ms")
        if post_opt:
            image = image_evidence(image_points, confidence, K, len(joints), handedness)
            if image is not None:
                image = image._replace(weights=image.weights * valid[:, None])
            bio, betas_n, rot, transl, posed = self.post_optimizer.refine(
                target, weights, bio, betas_n, rot, transl, fix_betas=betas is not None,
                target_vertices=vertices, previous_bio=prev_bio, start_posed=posed,
                image=image,
            )  # fmt: skip
            clamped = np.minimum(np.maximum(bio, self.fk.lower), self.fk.upper)
            if not np.array_equal(clamped, bio):
                bio, posed = clamped, None
        clock.lap("post_opt_ms")
        state = self._hand_state(target, observed, valid, weights, bio, betas_n, rot, transl,
                                 handedness, with_vertices, posed)  # fmt: skip
        clock.lap("output_ms")
        return state

    def _inputs(self, joints, vertices) -> tuple[np.ndarray, np.ndarray | None]:
        """Validated (N, 21, 3) joints and (N, V, 3) vertices (None if absent or partial)."""
        joints = np.array(joints, dtype=np.float64)
        if joints.ndim == 2:
            joints = joints[None]
        if joints.ndim != 3 or joints.shape[1:] != (NUM_KEYPOINTS, 3):
            raise ValueError(f"joints must be (N, 21, 3), got {tuple(joints.shape)}")
        if vertices is not None:
            vertices = np.array(vertices, dtype=np.float64)
            if vertices.ndim == 2:
                vertices = vertices[None]
            if vertices.shape != (len(joints), self.model.num_vertices, 3):
                raise ValueError(
                    f"vertices must be (N, {self.model.num_vertices}, 3) for this hand model, "
                    f"got {tuple(vertices.shape)}"
                )
            if not np.isfinite(vertices).all():
                vertices = None  # a partial mesh is not used; keypoints still are
        return joints, vertices

    def _initial_shape_and_dofs(
        self, canonical: np.ndarray, betas, prev_bio: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The start: (N, 23) DoF and (N, 10) shape from the IK net (or flat / warm start).

        A known ``betas`` ((10,) or (N, 10)) replaces the net's shape estimate.
        """
        n = len(canonical)
        if self._net_np is not None:
            pred_betas, pred_bio = self._net_np(bone_features_np(canonical))
            bio = np.minimum(np.maximum(pred_bio, self.fk.lower), self.fk.upper)
        else:
            pred_betas = np.zeros((n, self.num_betas))
            # Without the net, the previous frame is the best start (warm start).
            bio = prev_bio.copy() if prev_bio is not None else np.zeros((n, 23))
        if betas is None:
            return bio, pred_betas
        known = np.asarray(betas, dtype=np.float64).reshape(-1, self.num_betas)
        return bio, np.broadcast_to(known, (n, self.num_betas)).copy()

    def _global_pose(self, bio, betas, joints, observed, rotation, translation):
        """Global rotation (N, 3, 3), translation (N, 3) and posed hand of the fitted hand.

        Aligns the fitted hand's palm (with its own shape) onto the input palm; the
        model rotates about its wrist joint J0: ``x' = R (x - J0) + J0 + transl``. The
        posed hand is ``fit_fk``'s.
        """
        n = len(bio)
        local = self.fit_fk.pose(betas, bio, np.broadcast_to(np.eye(3), (n, 3, 3)),
                                 np.zeros((n, 3)))  # fmt: skip
        fitted = local.points
        target = np.where(observed[..., None], joints,
                          fitted @ rotation.transpose(0, 2, 1) + translation[:, None])
        rot2, shift2 = rigid_align_np(fitted[:, _PALM], target[:, _PALM])
        wrist = local.pos[:, 0]  # J0 of the shaped hand (no global pose yet)
        transl = shift2 + (rot2 @ wrist[..., None])[..., 0] - wrist
        return rot2, transl, self.fit_fk.transform(local, rot2, transl)

    def _hand_state(self, target, observed, valid, weights, bio, betas, rotation, transl,
                    handedness: str, with_vertices: bool, posed=None) -> HandState:  # fmt: skip
        """Re-pose the model, neutralise invalid rows, mirror left hands back: a HandState.

        ``posed``: ``fit_fk``'s posed hand at these parameters if known (reused when it is
        also the output's model keypoints).
        """
        # Invalid rows: a neutral, finite hand (never NaN): the flat mean hand at the origin.
        inv = ~valid
        if inv.any():
            bio, betas, rotation, transl = bio.copy(), betas.copy(), rotation.copy(), transl.copy()
            bio[inv], betas[inv], rotation[inv], transl[inv] = 0.0, 0.0, np.eye(3), 0.0
            posed = None
        if posed is None or self.fit_fk is not self.fk:
            posed = self.fk.pose(betas, bio, rotation, transl)
        fitted = posed.points if self.fit_fk is self.fk else self.fit_fk.pose(
            betas, bio, rotation, transl).points  # fmt: skip
        diff = np.sqrt(((fitted - target) ** 2).sum(-1)) * weights
        fit_error = np.where(valid, diff.sum(-1) / np.maximum(weights.sum(-1), 1.0), 0.0)
        joints_out = posed.points
        verts_out = self.fk.vertices(posed) if with_vertices else None
        if handedness == "left":
            joints_out = joints_out * _MIRROR
            verts_out = None if verts_out is None else verts_out * _MIRROR
        return HandState(
            betas=betas,
            bio=bio,
            global_orient=rotmat_to_rotvec_batch(rotation),
            transl=transl,
            joints=joints_out,
            vertices=verts_out,
            fit_error=fit_error,
            valid=valid,
            handedness=handedness,
        )
