"""The IK and robot stages of the teleop pipeline (plain Python, no ROS).

``IKStage``: keypoints of one hand (camera frame) -> ``HandState`` (IK net +
optional post-optimization, operator shape, warm start from the previous frame).
``RobotStage``: ``HandState`` or nothing -> safe joint command (retargeting, then the
``CommandFilter``'s smoothing, limits and hand-lost policy).
"""

from __future__ import annotations

import dataclasses
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from hand_ik.command_filter import CommandFilter, CommandFilterConfig
from hand_ik.conventions import CONVENTION_NAMES, load_convention
from hand_ik.hand_model import load_hand_model
from hand_ik.hand_state import HandState
from hand_ik.ik.calibration import load_flexion_calibration, load_operator_profile
from hand_ik.ik.flexion_calibration import FlexionCalibration
from hand_ik.ik.keypoint_layer import HandRootPoser
from hand_ik.ik.post_opt import PostOptConfig
from hand_ik.ik.solver import IKSolver
from hand_ik.plausibility import PlausibilityConfig, check_fit_error, check_hand_keypoints
from hand_ik.retarget import Retargeter, load_retargeting_config
from hand_pose_ros.pipeline.defaults import DEFAULT_HAND_MODEL, DEFAULT_ROBOT


@dataclass
class IKStageConfig:
    """Parameters of the IK stage (ROS parameters of ``ik_node``)."""

    hand_model: str = DEFAULT_HAND_MODEL
    """'open' or a MANO_RIGHT.pkl / model .npz path."""
    weights: str = "default"
    """IK net weights file, 'default', or 'none' (post-optimization alone, from a flat hand)."""
    post_opt_enabled: bool = True
    """Run the post-optimization (``post_opt``) after the IK net."""
    post_opt: PostOptConfig = field(default_factory=PostOptConfig)
    """Post-optimization steps and term weights (hand_ik/ik/post_opt.py)."""
    operator_profile: str = ""
    """Operator profile YAML (hand-teleop calibrate); empty: estimate the shape per frame."""
    plausibility: PlausibilityConfig = field(default_factory=PlausibilityConfig)
    """Human ranges a hand must fall in before it drives anything."""
    keypoint_convention: str = "auto"
    """Where the input's keypoints sit on the hand (hand_ik/conventions.py): ours | mano |
    mediapipe, or auto: the graph plan picks the estimator's (a bare stage: ours)."""
    fit_estimated_mesh: bool = False
    """Fit the estimator's mesh (``solve(vertices=)``; estimator ``handtrack_mesh``) in the
    post-optimization's vertex term too (``post_opt.vertex_weight``). Off by default: on
    held-out synthetic crops (167 hands) it moved PA-MPJPE 16.13 -> 16.09 mm and PA-MPVPE
    19.95 -> 19.03 mm for 7 -> 196 ms per hand (torch autodiff through the whole mesh)."""

    def __post_init__(self) -> None:
        if self.keypoint_convention not in ("auto", *CONVENTION_NAMES):
            raise ValueError(f"keypoint_convention: one of auto, {', '.join(CONVENTION_NAMES)}; "
                             f"got {self.keypoint_convention!r}")  # fmt: skip
        if isinstance(self.plausibility, dict):
            self.plausibility = PlausibilityConfig(**self.plausibility)
        if isinstance(self.post_opt, dict):
            self.post_opt = PostOptConfig(**self.post_opt)


#: How many tracks' last states an IKStage keeps for warm starts (the most recent ones):
#: track ids grow without end as hands are lost and found again, so the memory is bounded.
MAX_WARM_START_TRACKS = 8

#: IKStageConfig fields an IKStage is built from; the others it reads per frame.
IK_BUILD_FIELDS = ("hand_model", "weights", "operator_profile")


class IKStage:
    """Solves one hand per call, warm-started from the previous frame of the same track."""

    def __init__(self, config: IKStageConfig | None = None) -> None:
        self.config = config or IKStageConfig()
        c = self.config
        self.model = load_hand_model(c.hand_model)
        weights = None if c.weights in ("", "none") else c.weights
        self.solver = IKSolver(self.model, weights=weights, post_opt=c.post_opt)
        self.betas = (load_operator_profile(c.operator_profile, self.model)
                      if c.operator_profile else None)  # fmt: skip
        self.convention = _load_convention(c.keypoint_convention)
        self._previous: OrderedDict[int, HandState] = OrderedDict()
        """Last valid state per track id, most recently solved last (at most
        :data:`MAX_WARM_START_TRACKS`)."""
        self.last_rejection: str | None = None
        """Why the last call's hand was refused (implausible input or fit), or None."""

    def reset(self) -> None:
        self._previous.clear()

    def reconfigure(self, config: IKStageConfig) -> None:
        """Take a new config's post-optimization and plausibility settings from the next
        frame on.

        Raises:
            ValueError: a field in :data:`IK_BUILD_FIELDS` differs (build a new stage).
        """
        for name in IK_BUILD_FIELDS:
            if getattr(config, name) != getattr(self.config, name):
                raise ValueError(f"{name}: the stage is built from it; build a new IKStage")
        post_opt = config.post_opt
        if self.solver.net is None:  # as IKSolver: without the net there is no start prior
            post_opt = dataclasses.replace(post_opt, start_weight=0.0)
        if config.keypoint_convention != self.config.keypoint_convention:
            self.convention = _load_convention(config.keypoint_convention)
        self.config = config
        self.solver.post_optimizer.config = post_opt

    def solve(self, joints_cam: np.ndarray, handedness: str = "right", track_id: int = -1,
              with_vertices: bool = True, *, image_points: np.ndarray | None = None,
              confidence: np.ndarray | None = None, K: np.ndarray | None = None,
              timings: dict[str, float] | None = None,
              vertices: np.ndarray | None = None) -> HandState:  # fmt: skip
        """(21, 3) camera-frame keypoints (NaN = missing) -> a one-row HandState.

        With ``image_points`` (21, 2) pixels (NaN = missing), their ``confidence`` (21,)
        (0 = missing; None: all 1) and the camera intrinsics ``K`` (3, 3), the
        post-optimization also fits the keypoints' projection to the image
        (``post_opt.reprojection_weight``); without ``K`` there is no such term. The
        ``keypoint_convention`` maps the 3D keypoints only: the 2D ones are fitted as they
        are (moving them by the projected 3D offset, as this stage did before, took the
        landmark network's 2D away from our model's keypoints on held-out synthetic crops:
        PCK@0.04 0.451 -> 0.366 after the IK, PA-MPJPE 17.17 vs 17.06 mm).

        A hand that breaks the plausibility rules (:mod:`hand_ik.plausibility`) before or
        after the fit comes back with ``valid=False`` and :attr:`last_rejection` says why;
        degenerate input gives ``valid=False`` too, never an exception. ``with_vertices``:
        re-pose the mesh too (``HandState.vertices``, for markers; None without).
        ``timings``: receives the solver's parts in milliseconds (``IKSolver.solve``).
        ``vertices``: (V, 3) the estimator's hand mesh in the camera frame, our hand
        model's vertices (left hands mirrored, as the keypoints), or None: with
        ``fit_estimated_mesh`` the post-optimization's vertex term
        (``post_opt.vertex_weight``) fits it too (else it is ignored); not
        mapped by ``keypoint_convention`` (a mesh is in the model's topology already).
        """
        joints_cam = np.asarray(joints_cam, dtype=np.float64)
        if joints_cam.shape != (21, 3):
            raise ValueError(f"joints_cam must be (21, 3), got {joints_cam.shape}")
        self.last_rejection = check_hand_keypoints(joints_cam, self.config.plausibility)
        if self.last_rejection is not None:
            self._previous.pop(track_id, None)
            return self.solver.solve(np.full((1, 21, 3), np.nan), post_opt=False,
                                     handedness=handedness,
                                     with_vertices=with_vertices)  # fmt: skip
        previous = self._previous.get(track_id)
        if previous is not None and previous.handedness != handedness:
            previous = None
        # The source's keypoints -> our model's (net input and post-opt target alike).
        joints_in = self.convention.to_ours(joints_cam, handedness)
        uv = None
        if image_points is not None and K is not None:
            uv = np.asarray(image_points, dtype=np.float64).reshape(21, 2)
        verts = None
        if vertices is not None and self.config.fit_estimated_mesh:
            verts = np.asarray(vertices, dtype=np.float64)[None]
        state = self.solver.solve(joints_in[None], verts, betas=self.betas,
                                  post_opt=self.config.post_opt_enabled, handedness=handedness,
                                  previous=previous, with_vertices=with_vertices,
                                  image_points=uv, confidence=confidence, K=K,
                                  timings=timings)  # fmt: skip
        if state.valid[0]:
            self.last_rejection = check_fit_error(float(state.fit_error[0]),
                                                  self.config.plausibility)  # fmt: skip
            if self.last_rejection is not None:
                state.valid[0] = False
        if state.valid[0]:
            self._previous[track_id] = state
            self._previous.move_to_end(track_id)
            while len(self._previous) > MAX_WARM_START_TRACKS:
                self._previous.popitem(last=False)
        else:
            self._previous.pop(track_id, None)
        return state


def _load_convention(name: str):
    """The stage's keypoint convention; ``auto`` outside a graph plan is ours."""
    return load_convention("ours" if name == "auto" else name)


@dataclass
class RobotStageConfig:
    """Parameters of the robot stage (ROS parameters of ``retarget_node``)."""

    robot: str = DEFAULT_ROBOT
    """Robot config name in config/robots/ or a YAML path."""
    hand_model: str = DEFAULT_HAND_MODEL
    """Hand model that poses the human hand from (betas, bio); the IK stage's model."""
    urdf: str = ""
    """Override the config's URDF path (or a dex-urdf robots folder)."""
    filter: CommandFilterConfig = field(default_factory=CommandFilterConfig)
    """Smoothing, limits and hand-lost policy."""
    operator_profile: str = ""
    """Operator profile YAML (``hand-teleop calibrate``): its flexion calibration, if it
    has one, maps the operator's open hand and fist as estimated onto the flat hand and the
    fist before retargeting (:mod:`hand_ik.ik.flexion_calibration`). Empty: none."""


def operator_flexion(operator_profile: str) -> FlexionCalibration | None:
    """The flexion calibration of an operator profile (``RobotStageConfig.operator_profile``),
    or None for none (an empty path, or a profile without one)."""
    return load_flexion_calibration(operator_profile) if operator_profile else None


class RobotStage:
    """Retargeting + command filter for one robot hand.

    The human hand is re-posed by the hand model from its shape and 23 DoF (identity
    global pose), so the stage needs only what ``/hand/state`` carries.
    """

    def __init__(self, config: RobotStageConfig | None = None) -> None:
        self.config = config or RobotStageConfig()
        rc = load_retargeting_config(self.config.robot, urdf=self.config.urdf or None)
        self.retargeter = Retargeter(rc)
        robot = self.retargeter.robot
        self.filter = CommandFilter(robot.lower, robot.upper, robot.velocity,
                                    self.retargeter.neutral_command().positions,
                                    self.config.filter)  # fmt: skip
        self.urdf_path = rc.urdf
        self.human_keypoints = HandRootPoser(load_hand_model(self.config.hand_model))
        """(betas, bio) -> (21, 3) human keypoints in hand_root, metres."""
        self.flexion = operator_flexion(self.config.operator_profile)
        """The operator's flexion calibration, applied to ``bio`` in :meth:`step`, or None."""
        self.last_retarget_ms = 0.0

    @property
    def joint_names(self) -> tuple[str, ...]:
        return self.retargeter.joint_names

    def step(self, t: float, betas: np.ndarray | None = None,
             bio: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
        """Command (n,) at time ``t`` seconds for a hand (betas (10,), bio (23,)) or no hand.

        Non-finite parameters count as no hand. With the operator's flexion calibration,
        ``bio`` is mapped through it first.
        """
        command = None
        if betas is not None and bio is not None and np.isfinite(betas).all() \
                and np.isfinite(bio).all():  # fmt: skip
            start = time.perf_counter()
            bio = np.asarray(bio, dtype=float)
            if self.flexion is not None:
                bio = self.flexion.apply(bio)
            keypoints = self.human_keypoints(betas, bio)
            command = self.retargeter.retarget(keypoints, bio).positions
            self.last_retarget_ms = (time.perf_counter() - start) * 1e3
        else:
            self.retargeter.reset()
        return self.filter.update(t, command)

    @property
    def hand_lost_s(self) -> float | None:
        return self.filter.hand_lost_s
