"""``Retargeter``: human keypoints (hand_root frame) and/or 23 bio DoF -> robot joint command."""

from __future__ import annotations

import numpy as np

from hand_ik.hand_state import HandState
from hand_ik.keypoints import KEYPOINT_NAMES, NUM_KEYPOINTS
from hand_ik.optim import LMResult
from hand_ik.retarget.command import RobotCommand
from hand_ik.retarget.config import RetargetingConfig, _finger_tip
from hand_ik.retarget.hand_size import HandSizeEstimate
from hand_ik.retarget.joint_map import JointMap
from hand_ik.retarget.vector_optimizer import PALM, TaskVector, VectorOptimizer
from hand_ik.robot import RobotModel

_KP = {name: i for i, name in enumerate(KEYPOINT_NAMES)}


class Retargeter:
    """Stateful per-robot retargeter (warm start from the last frame; ``reset()`` between takes).

    Task vectors, in this order: palm point -> each fingertip (weight 1), palm
    point -> each intermediate link (left out at ``intermediate_weight`` 0), thumb
    tip -> each other fingertip (pinch).
    Human vectors are rotated into palm axes by ``config.hand_root_to_palm`` and
    scaled: a palm->fingertip or palm->intermediate vector by ``config.target_scales``
    (default ``scale``), plus ``config.target_offsets`` (``hand_ik.retarget.calibrate``
    sets them so that the flat human hand maps onto the robot's open pose,
    ``config.open_pose``); that
    offset moves toward ``config.closed_offsets`` (the human fist onto the robot's) by
    the finger's ``closure`` (0 flat, 1 as short as a fist) to the power
    ``closed_power``, so mid-range motion keeps one scale. A pinch vector is scaled by
    ``scale``.
    A pinch vector takes part only while the human tips are close: its weight
    ramps from 0 at ``optimizer.pinch_open_m`` to ``pinch_weight`` at
    ``pinch_close_m`` and its target shrinks to zero (tips touching) over the same
    range (smoothstep, so the targets stay continuous).
    A warm-started frame that leaves a fingertip vector ``optimizer.restart_miss_m`` or
    more from its target is also solved from the open pose, kept where it fits clearly
    better: the warm start alone can keep a finger stuck at its limits
    (``_restart_if_stuck``).
    Operator hand size (``config.palm_length_m`` > 0): ``hand_factor`` f is that palm
    length over the operator's (``hand_size``, a running estimate that ``retarget``
    updates since the last ``reset``). The targets are those of the keypoints times f
    (the operator's hand at the calibration's size: closure and pinch ramp included),
    with their displacement from an anchor (palm->link rows: the robot's open-pose
    vector; pinch rows: tips touching) shrunk by ``(1 - 1/f) * (1 - closure weight)``:
    a flat hand of any size gives the open pose, mid-range motion moves the tips by
    ``scale`` times the operator's own motion, and a fist of any size closes the robot.

    Args:
        config: the robot's retargeting config (``config.urdf`` must be set).
    """

    def __init__(self, config: RetargetingConfig):
        self.config = config
        self.robot = RobotModel(config.require_urdf(), locked_joints=config.locked_joints)
        robot = self.robot
        self.joint_map = JointMap(
            config.joint_map, robot.free_names, robot.free_lower, robot.free_upper
        )
        opt = config.optimizer
        vectors, human = [], []
        for kp, link in config.fingertips.items():
            vectors.append(TaskVector(PALM, link, 1.0))
            human.append((_KP["wrist"], _KP[kp]))
        self.num_fingertip_vectors = len(vectors)
        # Zero-weight intermediates are left out (the calibration's "not needed").
        intermediates = config.intermediates if opt.intermediate_weight > 0 else {}
        for kp, link in intermediates.items():
            vectors.append(TaskVector(PALM, link, opt.intermediate_weight))
            human.append((_KP["wrist"], _KP[kp]))
        if config.pinch and opt.pinch_weight > 0:
            thumb = config.fingertips["thumb_tip"]
            for kp, link in config.fingertips.items():
                if kp != "thumb_tip":
                    vectors.append(TaskVector(thumb, link, opt.pinch_weight))
                    human.append((_KP["thumb_tip"], _KP[kp]))
        self.optimizer = VectorOptimizer(
            robot, config.palm_link, np.asarray(config.palm_offset), vectors, opt
        )
        self._human_pairs = np.array(human, dtype=int)  # (K, 2) origin, task keypoint
        self._to_palm = np.asarray(config.hand_root_to_palm, dtype=float)
        n_vec = len(vectors)
        self._vec_scale = np.full((n_vec, 3), float(config.scale))  # per palm axis
        self._vec_offset = np.zeros((n_vec, 3))
        self.target_keypoints = (*config.fingertips, *intermediates)
        """Human keypoint of each palm->link vector (fingertips, then intermediates)."""
        for k, kp in enumerate(self.target_keypoints):
            self._vec_scale[k] = config.target_scales.get(kp, config.scale)
            self._vec_offset[k] = config.target_offsets.get(kp, (0.0, 0.0, 0.0))
        self._pinch = slice(len(self.target_keypoints), n_vec)
        self._init_closure(config)
        self._base_weights = self.optimizer.weights.copy()
        self.neutral_free = self._free_pose(config.neutral, "neutral")
        self.open_free = self._free_pose(config.open_pose, "open_pose")
        """(n_free,) the robot's open pose (``config.open_pose``): the flat hand's targets."""
        for name in config.open_pose:  # the flat hand's DoF (all 0) map onto the open pose
            j = robot.free_names.index(name)
            self.joint_map.offset[j] = self.open_free[j]
        self._q_prev: np.ndarray | None = None
        # Per fingertip: the miss (m) that triggers a restart (raised after a refused one).
        self._restart_at = np.full(self.num_fingertip_vectors, config.optimizer.restart_miss_m)
        self._restart_raised = False  # some _restart_at above restart_miss_m
        self.restarts_tried = 0
        """Warm-started frames solved again from the open pose (a fingertip stuck far from
        its target, ``_restart_if_stuck``), since construction (``reset`` keeps it)."""
        self.restarts_taken = 0
        """Of those, frames where the restart from the open pose fitted better and was kept."""
        self.hand_size = HandSizeEstimate()
        """The operator's palm length since the last ``reset``."""
        self.hand_factor = 1.0
        """Calibration palm / operator palm (1: off, or no hand since ``reset``)."""
        self._anchor = np.zeros((n_vec, 3))  # open-pose palm->link vectors; 0 for pinches
        if config.palm_length_m > 0:
            v_open = self.optimizer.vectors_at(self.open_free)[0]
            self._anchor[: len(self.target_keypoints)] = v_open[: len(self.target_keypoints)]

    def _free_pose(self, joints: dict[str, float], field_name: str) -> np.ndarray:
        """{free joint: radians} (unlisted 0) -> (n_free,) clipped to the limits."""
        robot = self.robot
        q = np.zeros(robot.num_free)
        for name, value in joints.items():
            if name not in robot.free_names:
                raise ValueError(
                    f"{field_name}: {name!r} is not a free joint of {self.config.name}; "
                    f"free: {robot.free_names}"
                )
            q[robot.free_names.index(name)] = value
        return np.clip(q, robot.free_lower, robot.free_upper)

    def _init_closure(self, config: RetargetingConfig) -> None:
        """Rows whose offset moves toward ``closed_offsets`` as their finger closes."""
        tips = list(config.fingertips)
        rows, tip_rows, delta = [], [], []
        for k, kp in enumerate(self.target_keypoints):
            if kp in config.closed_offsets:
                rows.append(k)
                tip_rows.append(tips.index(_finger_tip(kp)))
                delta.append(np.asarray(config.closed_offsets[kp]) - self._vec_offset[k])
        self._closed_rows = np.array(rows, dtype=int)
        self._closed_tip_rows = np.array(tip_rows, dtype=int)
        self._closed_delta = np.array(delta, dtype=float).reshape(-1, 3)
        lengths = np.array(
            [config.closed_lengths[tips[r]] for r in tip_rows], dtype=float
        ).reshape(-1, 2)
        self._closed_open_len = lengths[:, 0]
        self._closed_span = lengths[:, 0] - lengths[:, 1]

    def closure(self, keypoints_hand_root: np.ndarray) -> np.ndarray:
        """(21, 3) keypoints -> (R,) closure weight in [0, 1] of each ``closed_offsets`` row.

        ``((open length - palm->tip length) / (open - closed length)) ** closed_power``,
        clipped: 0 for a finger as long as in the flat hand, 1 once as short as in a fist.
        """
        kp = np.asarray(keypoints_hand_root, dtype=float)
        pairs = self._human_pairs[self._closed_tip_rows]
        length = np.linalg.norm(kp[pairs[:, 1]] - kp[pairs[:, 0]], axis=1)
        closed = np.clip((self._closed_open_len - length) / self._closed_span, 0.0, 1.0)
        return closed**self.config.closed_power

    @property
    def joint_names(self) -> tuple[str, ...]:
        """All movable URDF joints, the order of ``RobotCommand.positions``."""
        return self.robot.joint_names

    def neutral_command(self) -> RobotCommand:
        """The config's neutral pose (e.g. for ``CommandFilter``'s hand-lost policy)."""
        return self.command(self.neutral_free)

    def reset(self) -> None:
        """Forget the previous frame and the hand's size (next call starts cold: a new track)."""
        self._q_prev = None
        self._restart_at.fill(self.config.optimizer.restart_miss_m)
        self._restart_raised = False
        self.hand_size.reset()
        self.hand_factor = 1.0

    def targets(self, keypoints_hand_root: np.ndarray) -> np.ndarray:
        """(21, 3) human keypoints in hand_root, metres -> (K, 3) target vectors in palm axes."""
        return self.task(keypoints_hand_root)[0]

    def task(self, keypoints_hand_root: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(21, 3) keypoints in hand_root, metres -> targets (K, 3) in palm axes, weights (K,).

        See the class docstring for the hand size, scaling, offsets and the pinch ramp
        (``hand_factor`` as it stands: ``retarget`` updates it, this does not).
        """
        kp = np.asarray(keypoints_hand_root, dtype=float)
        if kp.shape != (NUM_KEYPOINTS, 3):
            raise ValueError(f"keypoints_hand_root must have shape (21, 3), got {kp.shape}")
        f = self.hand_factor
        if f != 1.0:
            kp = kp * f
        human = kp[self._human_pairs[:, 1]] - kp[self._human_pairs[:, 0]]
        targets = (human @ self._to_palm.T) * self._vec_scale + self._vec_offset
        if f != 1.0:
            shrink = np.full(len(targets), 1.0 - 1.0 / f)  # of the displacement from anchor
        if len(self._closed_rows):
            closure = self.closure(kp)
            targets[self._closed_rows] += closure[:, None] * self._closed_delta
            if f != 1.0:
                shrink[self._closed_rows] *= 1.0 - closure
        weights = self._base_weights
        if self._pinch.start < len(targets):
            opt = self.config.optimizer
            dist = np.linalg.norm(human[self._pinch], axis=1)
            t = np.clip((dist - opt.pinch_close_m) / (opt.pinch_open_m - opt.pinch_close_m), 0, 1)
            ramp = t * t * (3.0 - 2.0 * t)  # smoothstep: 0 when close, 1 when open
            targets[self._pinch] *= ramp[:, None]
            weights = weights.copy()
            weights[self._pinch] *= 1.0 - ramp  # >= 0: the config's weights are
        if f != 1.0:
            targets -= shrink[:, None] * (targets - self._anchor)
        return targets, weights

    def command(self, q_free: np.ndarray, solve: LMResult | None = None) -> RobotCommand:
        """Free joint positions -> command for all movable joints (mimic joints filled, clipped).

        ``solve``: the optimizer result that gave ``q_free``, passed on in the command.
        """
        robot = self.robot
        return RobotCommand(
            robot.joint_names, np.clip(robot.full_q(q_free), robot.lower, robot.upper), solve
        )

    def retarget(
        self, keypoints_hand_root: np.ndarray | None, bio: np.ndarray | None = None
    ) -> RobotCommand:
        """Retarget one frame.

        Args:
            keypoints_hand_root: (21, 3) human keypoints in the hand_root frame
                (``hand_ik.frames``), right canonical form, metres; None: joint mapping only.
            bio: (23,) biomechanical DoF in radians (``hand_ik.BIO_DOF_NAMES``), or None.

        Returns:
            Robot command, within the URDF limits; ``command.solve`` holds the
            optimizer's result (None without keypoints), so a caller can count frames
            where it stalled or ran out of steps.

        Raises:
            ValueError: both inputs None, wrong shapes, or non-finite keypoints.
        """
        if keypoints_hand_root is None and bio is None:
            raise ValueError("retarget needs keypoints_hand_root, bio, or both")
        q_map = self.joint_map(bio) if bio is not None else None
        solve = None
        if keypoints_hand_root is None:
            q = q_map
        else:
            keypoints = np.asarray(keypoints_hand_root, dtype=float)
            if self.config.palm_length_m > 0 and keypoints.shape == (NUM_KEYPOINTS, 3):
                self.hand_size.update(keypoints)  # skips a non-finite palm
                self.hand_factor = self.hand_size.factor(self.config.palm_length_m)
            targets, weights = self.task(keypoints)
            if not np.all(np.isfinite(targets)):
                raise ValueError("keypoints_hand_root contains NaN or inf")
            if self._q_prev is None:
                solve = self._cold_start(targets, q_map, weights)
            else:
                solve = self.optimizer.solve(
                    targets, self._q_prev, self._q_prev, q_map, weights=weights
                )
                solve = self._restart_if_stuck(solve, targets, q_map, weights)
            q = solve.x
        self._q_prev = q
        return self.command(q, solve)

    def _restart_if_stuck(
        self, warm: LMResult, targets: np.ndarray, q_map: np.ndarray | None,
        weights: np.ndarray,
    ) -> LMResult:  # fmt: skip
        """A warm solve that leaves a fingertip ``optimizer.restart_miss_m`` (D) or more from
        its target: also solve from the open pose, and keep that when its task cost is
        lower by at least that of one fingertip D / 2 off (a jump to another posture for
        a marginal gain would only add jitter: on GRAB, Allegro's gained 0.5-3 %).

        The warm start keeps a finger in a local minimum once it is there (e.g. at its
        joint limits while the human finger closes). A target out of the robot's reach
        also leaves a miss, which a restart does not fix: after a refused restart each
        tip that missed by m >= D triggers again only once it misses by m + D (back to
        D once its miss falls under D), so such a stretch costs one restart, not one a
        frame. Cost: nothing on frames whose solve cost rules out a D miss, else one
        forward kinematics; ``cold_iterations`` steps where a restart runs.
        """
        opt = self.config.optimizer
        miss, n = opt.restart_miss_m, self.num_fingertip_vectors
        # Free bound first: the solve's cost (halved squares, pulls included) holds each
        # fingertip's w |error|^2 / residual_scale^2, so below this no tip misses by ``miss``.
        miss_cost = weights[:n].min() * (miss / opt.residual_scale_m) ** 2  # one tip D off
        if miss <= 0 or 2.0 * warm.cost < miss_cost:
            if self._restart_raised:
                self._restart_at.fill(miss)
                self._restart_raised = False
            return warm
        vecs = self.optimizer.vectors_at(warm.x)[0]
        error = np.sqrt(np.einsum("ij,ij->i", vecs[:n] - targets[:n], vecs[:n] - targets[:n]))
        if self._restart_raised:
            self._restart_at[error < miss] = miss
        if not np.any(error >= self._restart_at):
            return warm
        self.restarts_tried += 1
        start = self.open_free
        cold = self.optimizer.solve(targets, start, start, q_map, opt.cold_iterations, weights)
        cost = self.optimizer.task_cost
        half_miss_cost = miss_cost / 4.0  # one tip D / 2 off
        if cost(cold.x, targets, weights) + half_miss_cost <= cost(warm.x, targets, weights):
            self.restarts_taken += 1
            return cold
        missed = error >= miss
        self._restart_at[missed] = error[missed] + miss
        self._restart_raised = True
        return warm

    def _cold_start(
        self, targets: np.ndarray, q_map: np.ndarray | None, weights: np.ndarray
    ) -> LMResult:
        """First frame: solve from several starts (the task is not convex) and keep the best fit."""
        robot = self.robot
        starts = [self.neutral_free, robot.free_lower + 0.5 * (robot.free_upper - robot.free_lower)]
        if q_map is not None:
            starts.insert(0, q_map)
        iterations = self.config.optimizer.cold_iterations
        results = [
            self.optimizer.solve(targets, s, s, q_map, iterations, weights) for s in starts
        ]
        return min(results, key=lambda r: self.optimizer.task_cost(r.x, targets, weights))

    def retarget_state(self, state: HandState, index: int = -1) -> RobotCommand | None:
        """Adapter: one frame of a ``HandState`` (joints in the input frame) -> command.

        Returns:
            The command, or None where ``state.valid`` is False (the hand is lost:
            pass None on to ``CommandFilter.update``).
        """
        if not bool(np.asarray(state.valid)[index]):
            return None
        import torch

        from hand_ik.frames import to_hand_root

        joints = torch.as_tensor(np.asarray(state.joints[index], dtype=np.float64))
        keypoints = to_hand_root(joints).numpy()
        return self.retarget(keypoints, np.asarray(state.bio[index], dtype=float))
