"""Teleop fidelity measures: per-finger flexion fraction, pinch distance, pinch reach.

Flexion fraction of a finger (robot): the mean, over the finger's flexion joints
listed in the config's ``flexion`` field, of::

    (q - q_open) / (q_closed - q_open)

with ``q_open`` = 0 clipped to the joint's URDF limits (every shipped robot is
straight at zero) and ``q_closed`` = the upper limit for a ``+1`` entry, the lower
limit for ``-1``. 0 is open, 1 fully closed; hyperextension gives a negative value.

Flexion fraction of a finger (human): the same mean over its flexion DoF (MCP, PIP,
DIP; thumb MCP and IP) of ``bio / upper limit`` (``hand_ik.bio_dofs``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from hand_ik.bio_dofs import BIO_DOF_INDEX, BIO_UPPER
from hand_ik.keypoints import FINGER_NAMES
from hand_ik.retarget.config import OptimizerConfig
from hand_ik.retarget.vector_optimizer import TaskVector, VectorOptimizer

#: Frames from ``flat`` to a preset, then frames holding it (as teleop reaches a pose).
RAMP_FRAMES, HOLD_FRAMES = 15, 10
#: The goals of issue 24: flat <= 0.05, fist >= 0.7, one finger curled moves others < 0.05,
#: pinch tips within 10 mm where the robot's kinematics allow.
FLAT_MAX, FIST_MIN, INDEPENDENCE_MAX, PINCH_MAX_M = 0.05, 0.7, 0.05, 0.010
#: And ours: the finger curled alone must itself move (else independence says nothing).
CURL_MIN = 0.5

#: Human flexion DoF per finger.
HUMAN_FLEXION_DOFS: dict[str, tuple[str, ...]] = {
    "thumb": ("thumb_mcp_flex", "thumb_ip_flex"),
    **{f: (f"{f}_mcp_flex", f"{f}_pip_flex", f"{f}_dip_flex") for f in FINGER_NAMES[1:]},
}


def human_flexion_fractions(bio: np.ndarray) -> dict[str, float]:
    """(23,) bio DoF (rad) -> finger -> mean flexion as a fraction of the DoF's upper limit."""
    bio = np.asarray(bio, dtype=float)
    return {
        finger: float(np.mean([bio[BIO_DOF_INDEX[d]] / BIO_UPPER[BIO_DOF_INDEX[d]] for d in dofs]))
        for finger, dofs in HUMAN_FLEXION_DOFS.items()
    }


class FlexionGauge:
    """Per-finger flexion fraction of a robot's joint positions (see the module docstring).

    Args:
        robot: ``hand_ik.robot.RobotModel``.
        flexion: the config's ``flexion`` field, finger -> {joint name: +1 or -1}.
    """

    def __init__(self, robot, flexion: dict[str, dict[str, float]]):
        if not flexion:
            raise ValueError("the robot config has no 'flexion' field (finger -> flexion joints)")
        self.fingers = tuple(flexion)
        self._index, self._open, self._span = {}, {}, {}
        for finger, joints in flexion.items():
            unknown = sorted(set(joints) - set(robot.joint_index))
            if unknown:
                raise ValueError(f"flexion.{finger}: unknown joints {unknown}")
            idx = np.array([robot.joint_index[j] for j in joints])
            sense = np.array([joints[j] for j in joints], dtype=float)
            lo, hi = robot.lower[idx], robot.upper[idx]
            q_open = np.clip(0.0, lo, hi)
            q_closed = np.where(sense > 0, hi, lo)
            span = q_closed - q_open
            if np.any(np.abs(span) < 1e-6):
                raise ValueError(f"flexion.{finger}: a joint has no range from open to closed")
            self._index[finger], self._open[finger], self._span[finger] = idx, q_open, span

    def __call__(self, q_full: np.ndarray) -> dict[str, float]:
        """(n_joints,) positions of all movable joints -> finger -> flexion fraction."""
        q = np.asarray(q_full, dtype=float)
        return {
            f: float(np.mean((q[self._index[f]] - self._open[f]) / self._span[f]))
            for f in self.fingers
        }


def tip_distance(retargeter, q_full: np.ndarray, finger_tip: str) -> float:
    """Robot distance (m) between the thumb tip link and the link playing ``finger_tip``."""
    robot, tips = retargeter.robot, retargeter.config.fingertips
    ids = [robot.frame_id(tips["thumb_tip"]), robot.frame_id(tips[finger_tip])]
    robot.forward_kinematics(np.asarray(q_full, dtype=float), frame_ids=ids)
    return float(np.linalg.norm(robot.frame_position(ids[0]) - robot.frame_position(ids[1])))


def pinch_reach(retargeter, finger_tip: str, starts: int = 8, seed: int = 0) -> float:
    """Smallest thumb-tip to ``finger_tip`` distance (m) the robot's joint space allows.

    Minimises the squared tip distance over the free joints within their limits
    (damped Gauss-Newton from ``starts`` seeded random starts plus the open pose);
    a lower bound only up to the local-minimum risk, which the restarts reduce.
    Collision geometry is ignored: the tip links' origins are compared.
    """
    robot, tips = retargeter.robot, retargeter.config.fingertips
    config = OptimizerConfig(
        iterations=200, cold_iterations=200, prev_weight=0.0, map_weight=0.0,
        residual_scale_m=0.001, tolerance_rad=1e-7,
    )  # fmt: skip
    opt = VectorOptimizer(
        robot,
        retargeter.config.palm_link,
        np.zeros(3),
        [TaskVector(tips["thumb_tip"], tips[finger_tip], 1.0)],
        config,
    )
    rng = np.random.default_rng(seed)
    lo, hi = robot.free_lower, robot.free_upper
    inits = [np.clip(0.0, lo, hi), *(rng.uniform(lo, hi) for _ in range(starts))]
    target = np.zeros((1, 3))
    best = np.inf
    for q0 in inits:
        q = opt.solve(target, q0, q0, None).x
        best = min(best, float(np.linalg.norm(opt.vectors_at(q)[0][0])))
    return best


@functools.lru_cache(maxsize=1)
def _poser():
    from hand_ik.biomech import default_hand_model
    from hand_ik.ik.keypoint_layer import HandRootPoser

    return HandRootPoser(default_hand_model())


@functools.lru_cache(maxsize=64)
def preset_sequence(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints (T, 21, 3) in hand_root and bio (T, 23): flat -> preset ``name``, then held.

    The open hand model with mean shape, re-posed as the teleop graph does
    (``HandRootPoser``); the returned arrays are shared (cached): do not modify them.
    """
    from hand_ik.pose_presets import bio_preset

    target = bio_preset(name)
    alpha = np.concatenate([np.linspace(0.0, 1.0, RAMP_FRAMES), np.ones(HOLD_FRAMES)])
    bio = alpha[:, None] * target[None]
    poser = _poser()
    keypoints = np.stack([poser(np.zeros(10), b) for b in bio])
    keypoints.flags.writeable = False
    bio.flags.writeable = False
    return keypoints, bio


def pinched_tip(pose: str) -> str | None:
    """The fingertip keypoint a preset pinches with the thumb (``pinch_<f>``, ``ok``), or None."""
    if pose == "ok":
        return "index_tip"
    return f"{pose.removeprefix('pinch_')}_tip" if pose.startswith("pinch_") else None


@dataclass
class PresetResult:
    """Robot flexion per finger and pinch tip distances after each preset sequence."""

    flex: dict[str, dict[str, float]] = field(default_factory=dict)
    """Preset -> finger -> flexion fraction."""
    tip_mm: dict[str, float] = field(default_factory=dict)
    """Pinch preset -> robot thumb-tip to finger-tip distance, mm."""


def evaluate_presets(retargeter, poses, step=None, reset=None) -> PresetResult:
    """Run each preset sequence (``preset_sequence``) and measure the final pose.

    Args:
        retargeter: a built ``Retargeter`` (its config gives ``flexion`` and the tip links).
        poses: preset names (``hand_ik.pose_presets.BIO_PRESET_NAMES``).
        step: ``step(keypoints, bio) -> q_full``; default ``retargeter.retarget``.
        reset: called before each sequence; default ``retargeter.reset``.
    """
    gauge = FlexionGauge(retargeter.robot, retargeter.config.flexion)
    step = step or (lambda kp, bio: retargeter.retarget(kp, bio).positions)
    reset = reset or retargeter.reset
    result = PresetResult()
    for pose in poses:
        keypoints, bio = preset_sequence(pose)
        reset()
        for kp, b in zip(keypoints, bio, strict=True):
            q = step(kp, b)
        result.flex[pose] = gauge(q)
        tip = pinched_tip(pose)
        if tip is not None and tip in retargeter.config.fingertips:
            result.tip_mm[pose] = tip_distance(retargeter, q, tip) * 1e3
    return result


def fidelity_misses(result: PresetResult, reach_mm: dict[str, float]) -> list[float]:
    """How far each goal is missed (0: met): flat, fist, curls, independence, pinches.

    Args:
        result: from ``evaluate_presets`` (uses the presets it holds).
        reach_mm: pinch preset -> the robot's kinematic minimum tip distance, mm; a
            pinch counts only where that is under ``PINCH_MAX_M``.
    """
    flex, misses = result.flex, []
    if "flat" in flex:
        misses += [max(0.0, v - FLAT_MAX) for v in flex["flat"].values()]
    if "fist" in flex:
        misses += [max(0.0, FIST_MIN - v) for v in flex["fist"].values()]
    for finger in flex.get("flat", {}):
        curl = flex.get(f"curl_{finger}")
        if curl is not None:
            moved = [abs(curl[o] - flex["flat"][o]) for o in curl if o != finger]
            misses.append(max(0.0, max(moved, default=0.0) - INDEPENDENCE_MAX + 1e-3))
            misses.append(max(0.0, CURL_MIN - curl[finger]))
    for pose, mm in result.tip_mm.items():
        if reach_mm.get(pose, np.inf) < PINCH_MAX_M * 1e3:
            misses.append(max(0.0, mm - PINCH_MAX_M * 1e3 + 1.0) / 10.0)  # 1 mm margin
    return misses
