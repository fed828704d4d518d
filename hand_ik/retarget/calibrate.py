"""Per-robot calibration of the retargeting targets on our human pose presets.

Nothing here is tuned per robot by hand: every number comes from the robot's URDF,
its config's ``flexion`` field and the presets of ``hand_ik.pose_presets.bio_preset``
posed on the open hand model.

1. Robot reference poses: for a preset, each finger's flexion joints are set to the
   human finger's flexion fraction of their range (open 0, closed the limit the joint
   closes toward); every other joint follows the config's joint map (e.g. the thumb's
   opposition).
2. ``scale``: one per robot, the robot's open palm point -> middle tip length over
   ``HUMAN_HAND_LENGTH_M``; every palm->fingertip (and palm->intermediate) target is the
   human vector times it, so between open and nearly closed the robot's tips move as the
   human's, scaled by one number.
3. ``target_offsets``: so that the flat human hand's targets are exactly the robot's
   open-pose vectors (a flat hand gives straight robot fingers).
4. ``closed_offsets`` and ``closed_lengths``: the human palm->tip lengths of the flat
   hand and the fist, and the offsets of a closed finger: zero (the plain scaled vector)
   where that meets the goals, else the offsets that put the human ``fist`` on the
   robot's reference fist. The retargeter moves each finger's offsets from the open to
   the closed ones by its closure to the power ``CLOSED_POWER`` (``Retargeter.closure``).
5. ``closed_offsets`` (zero, then fitted), ``intermediate_weight`` (0 drops the
   palm->intermediate vectors), ``map_weight`` and ``pinch_weight``: the first
   combination (smallest first, in that order of priority, from the closed offsets x
   ``INTERMEDIATE_WEIGHTS`` x ``MAP_WEIGHTS`` x ``PINCH_WEIGHTS``) with which the
   presets meet every fidelity goal (``hand_ik.retarget.fidelity.fidelity_misses``: flat,
   fist, curls, independence, and the pinches the robot's kinematics allow); where none
   does, the combination that misses the fewest goals, then by the least.

6. ``palm_length_m``: the presets' palm length (``hand_size.palm_length``); the
   retargeter measures each operator's palm against it (``Retargeter.hand_factor``).

``write_calibration`` replaces the calibrated fields in the robot YAML, inside a
marked block with a comment saying how they were obtained.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import yaml

from hand_ik.retarget.config import OptimizerConfig, RetargetingConfig
from hand_ik.retarget.fidelity import (
    evaluate_presets,
    fidelity_misses,
    human_flexion_fractions,
    pinch_reach,
    preset_sequence,
)
from hand_ik.retarget.hand_size import palm_length

#: Candidate weights of the palm->intermediate vectors (where a config has them), smallest
#: first; 0 leaves them out (fewer vectors: faster, and the fingers move as the old mapping).
INTERMEDIATE_WEIGHTS: tuple[float, ...] = (0.0, 0.1, 0.3)
#: Candidate weights of the pull toward the joint map (per rad^2), smallest first.
MAP_WEIGHTS: tuple[float, ...] = (0.02, 0.1, 0.3, 1.0, 3.0)
#: Candidate weights of a fully active pinch vector, smallest first.
PINCH_WEIGHTS: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0)
#: Adult human hand length (wrist crease to middle fingertip, m): ``scale`` is the robot's
#: open palm point -> middle tip over this (an operator's hand, not our 0.196 m template).
HUMAN_HAND_LENGTH_M = 0.185
#: ``closed_power`` written by the calibration: closure 0.5 gives 1/16 of the closed offset.
CLOSED_POWER = 4.0
#: Markers of the calibrated block in a robot YAML.
BEGIN, END = "# calibration-begin", "# calibration-end"


@dataclass
class Calibration:
    """Calibrated retargeting fields of one robot config, and how they scored."""

    scale: float
    """Robot-to-human size ratio: every target vector's scale."""
    target_offsets: dict[str, list[float]]
    """Fingertip / intermediate keypoint -> (3,) target offset, palm axes, metres."""
    closed_offsets: dict[str, list[float]]
    """Fingertip / intermediate keypoint -> (3,) target offset of a closed finger, metres."""
    closed_lengths: dict[str, list[float]]
    """Fingertip keypoint -> human palm->tip length (m) in the flat hand and in the fist."""
    pinch_weight: float
    """Weight of a fully active pinch vector."""
    map_weight: float
    """Pull toward the joint map (per rad^2)."""
    closed_power: float = CLOSED_POWER
    """Exponent of the closure that blends the open offsets into the closed ones."""
    palm_length_m: float = 0.0
    """Palm length (m, ``hand_size.palm_length``) of the presets' hand (operators scaled to it)."""
    intermediate_weight: float | None = None
    """Weight of the palm->intermediate vectors; None: the config has none (unchanged)."""
    pinch_mm: dict[str, float] = field(default_factory=dict)
    """Pinch preset -> robot tip distance (mm) with the chosen weight."""
    reach_mm: dict[str, float] = field(default_factory=dict)
    """Pinch preset -> smallest tip distance the robot's joints allow (mm)."""
    misses: int = 0
    """Fidelity goals still missed on the presets with these weights (0: all met)."""

    def apply(self, config: RetargetingConfig) -> RetargetingConfig:
        """A copy of ``config`` with these fields."""
        weights = {"pinch_weight": self.pinch_weight, "map_weight": self.map_weight}
        if self.intermediate_weight is not None:
            weights["intermediate_weight"] = self.intermediate_weight
        optimizer = replace(config.optimizer, **weights)
        return replace(
            config,
            scale=self.scale,
            target_scales={},
            target_offsets={k: list(v) for k, v in self.target_offsets.items()},
            closed_offsets={k: list(v) for k, v in self.closed_offsets.items()},
            closed_lengths={k: list(v) for k, v in self.closed_lengths.items()},
            closed_power=self.closed_power,
            palm_length_m=self.palm_length_m,
            optimizer=optimizer,
        )


def reference_pose(retargeter, bio: np.ndarray | None = None) -> np.ndarray:
    """(n_free,) robot pose for a human pose: the joint map, flexion joints at the human fraction.

    Args:
        retargeter: a built ``Retargeter`` (its config must have ``flexion``).
        bio: (23,) the human pose, radians; None: the open pose (0 clipped to the limits).
    """
    robot = retargeter.robot
    lo, hi = robot.free_lower, robot.free_upper
    if bio is None:
        return np.clip(0.0, lo, hi)
    q = retargeter.joint_map(bio)
    q_open = np.clip(0.0, lo, hi)
    fractions = human_flexion_fractions(bio)
    for finger, joints in retargeter.config.flexion.items():
        for joint, sense in joints.items():
            if joint not in robot.free_names:
                raise ValueError(f"flexion.{finger}.{joint} is not a free joint")
            j = robot.free_names.index(joint)
            closed = hi[j] if sense > 0 else lo[j]
            q[j] = q_open[j] + fractions.get(finger, 0.0) * (closed - q_open[j])
    return q


@dataclass
class _Targets:
    """The fitted target fields (see the module docstring)."""

    scale: float
    target_offsets: dict[str, list[float]]
    closed_offsets: dict[str, list[float]]
    closed_lengths: dict[str, list[float]]
    palm_length_m: float


def _fit_targets(retargeter) -> _Targets:
    """Fit scale, offsets (open and closed) and closure lengths on the presets."""
    config, opt = retargeter.config, retargeter.optimizer
    rot = np.asarray(config.hand_root_to_palm, dtype=float)
    keypoints = retargeter.target_keypoints
    pairs = retargeter._human_pairs[: len(keypoints)]
    v_open = opt.vectors_at(reference_pose(retargeter))[0][: len(pairs)]

    def human_vectors(pose: str) -> np.ndarray:
        kp = preset_sequence(pose)[0][-1]
        return (kp[pairs[:, 1]] - kp[pairs[:, 0]]) @ rot.T

    def robot_vectors(pose: str) -> np.ndarray:
        return opt.vectors_at(reference_pose(retargeter, preset_sequence(pose)[1][-1]))[0]

    h_flat, h_fist, v_fist = human_vectors("flat"), human_vectors("fist"), robot_vectors("fist")
    middle = keypoints.index("middle_tip")
    scale = round(float(np.linalg.norm(v_open[middle]) / HUMAN_HAND_LENGTH_M), 4)
    offsets, closed, lengths = {}, {}, {}
    for k, tip in enumerate(keypoints):
        offsets[tip] = np.round(v_open[k] - scale * h_flat[k], 5).tolist()
        closed[tip] = np.round(v_fist[k] - scale * h_fist[k], 5).tolist()
        if tip in config.fingertips:
            lengths[tip] = np.round([np.linalg.norm(h_flat[k]), np.linalg.norm(h_fist[k])], 5)
            lengths[tip] = lengths[tip].tolist()
    palm = round(palm_length(preset_sequence("flat")[0][-1]), 5)
    return _Targets(scale, offsets, closed, lengths, palm)


def calibrate(config: RetargetingConfig) -> Calibration:
    """Fit the calibrated fields of one robot config (see the module docstring).

    Args:
        config: the robot's config with its URDF set and a ``flexion`` field.

    Returns:
        The calibration (``Calibration.apply`` gives the calibrated config).
    """
    if not config.flexion:
        raise ValueError(f"{config.name}: calibration needs the 'flexion' field")
    # Fitted with every intermediate vector present (weight 0 would leave them out).
    optimizer = replace(config.optimizer, intermediate_weight=max(INTERMEDIATE_WEIGHTS))
    base = replace(config, target_scales={}, target_offsets={}, closed_offsets={},
                   closed_lengths={}, optimizer=optimizer)  # fmt: skip
    retargeter = base.build()
    fit = _fit_targets(retargeter)
    fingers = [f for f in config.flexion if f != "thumb"]
    pinches = [
        f"pinch_{f}"
        for f in ("index", "middle", "ring", "little")
        if f"{f}_tip" in config.fingertips and config.pinch
    ]
    reach = {p: pinch_reach(retargeter, f"{p.removeprefix('pinch_')}_tip") * 1e3 for p in pinches}
    poses = ["flat", "fist", *(f"curl_{f}" for f in ("thumb", *fingers)), *pinches]
    inter_weights = INTERMEDIATE_WEIGHTS if config.intermediates else (None,)
    # The closed correction only where the fist needs it: first none (the plain scaled
    # vector once closed: the open offset fades out), then the fitted one.
    no_correction = {k: [0.0, 0.0, 0.0] for k in fit.closed_offsets}
    trials = [
        Calibration(
            fit.scale, fit.target_offsets, closed, fit.closed_lengths,
            pinch_weight, map_weight, palm_length_m=fit.palm_length_m,
            intermediate_weight=inter_weight,
        )
        for closed in (no_correction, fit.closed_offsets)
        for inter_weight in inter_weights
        for map_weight in MAP_WEIGHTS
        for pinch_weight in (PINCH_WEIGHTS if pinches else (config.optimizer.pinch_weight,))
    ]
    best = None
    for trial in trials:  # the first that meets every goal, else the one missing least
        result = evaluate_presets(trial.apply(config).build(), poses)
        misses = fidelity_misses(result, reach)
        score = (sum(m > 0 for m in misses), sum(misses))
        if best is None or score < best[0]:
            best = (score, trial, result)
        if score[0] == 0:
            break
    _, calibration, result = best
    calibration.pinch_mm = {p: result.tip_mm[p] for p in pinches}
    calibration.reach_mm = reach
    calibration.misses = best[0][0]
    return calibration


def _flow(mapping: dict) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in mapping.items()) + "}"


def _vectors_yaml(key: str, mapping: dict[str, list[float]], digits: int) -> list[str]:
    """``key:`` then one ``  name: [x, y, ...]`` line per entry."""
    return [f"{key}:", *(f"  {k}: [{', '.join(f'{x:.{digits}f}' for x in v)}]"
                         for k, v in mapping.items())]  # fmt: skip


def calibration_yaml(calibration: Calibration, name: str, optimizer: dict | None = None) -> str:
    """The YAML block (with its comment and markers) holding ``calibration``'s fields."""
    optimizer = {
        **(optimizer or {}),
        "pinch_weight": calibration.pinch_weight,
        "map_weight": calibration.map_weight,
    }
    if calibration.intermediate_weight is not None:
        optimizer["intermediate_weight"] = calibration.intermediate_weight
    OptimizerConfig(**optimizer)  # validate the merged section
    lines = [
        BEGIN,
        f"# Written by `hand-teleop calibrate-robot --robot {name}` (hand_ik.retarget.calibrate)",
        "# from our human pose presets, not tuned by hand: scale is the robot's open palm",
        f"# -> middle tip over a {HUMAN_HAND_LENGTH_M} m adult hand; target_offsets put the flat",
        "# human hand on the robot's open pose, closed_offsets the human fist on the robot's",
        "# (each finger's flexion joints bent by the human's flexion fraction), blended by the",
        "# finger's closure (palm->tip length between closed_lengths) to the power",
        "# closed_power; palm_length_m is the presets' palm (mean wrist -> finger MCP), the",
        "# size each operator's hand is measured against; the optimizer weights are the",
        "# smallest that meet the fidelity goals on the presets",
        f"# ({calibration.misses} missed). Pinch presets, robot tip distance / kinematic minimum",
        "# (mm): "
        + ", ".join(
            f"{p.removeprefix('pinch_')} {mm:.1f}/{calibration.reach_mm[p]:.1f}"
            for p, mm in calibration.pinch_mm.items()
        ),
        f"scale: {calibration.scale:.4f}",
        *_vectors_yaml("target_offsets", calibration.target_offsets, 5),
        *_vectors_yaml("closed_offsets", calibration.closed_offsets, 5),
        *_vectors_yaml("closed_lengths", calibration.closed_lengths, 5),
        f"closed_power: {calibration.closed_power}",
        f"palm_length_m: {calibration.palm_length_m:.5f}",
        "optimizer: " + _flow(optimizer),
        END,
    ]
    return "\n".join(lines) + "\n"


_CALIBRATED_KEYS = re.compile(
    r"^(scale|target_scales|target_offsets|closed_offsets|closed_lengths|closed_power|"
    r"palm_length_m|optimizer):"
)


def write_calibration(path: str | Path, calibration: Calibration, name: str) -> None:
    """Replace the calibrated fields of the robot YAML ``path`` (other lines are kept).

    An earlier calibration block and top-level calibrated entries (``scale``,
    ``target_scales``, ``target_offsets``, ``closed_*``, ``optimizer``) are removed (other
    optimizer settings are carried into the new block); the new block is appended.
    """
    path = Path(path)
    text = path.read_text()
    optimizer = dict((yaml.safe_load(text) or {}).get("optimizer") or {})
    kept, skipping, in_block = [], False, False
    for line in text.splitlines():
        if line.strip() == BEGIN:
            in_block = True
            continue
        if in_block:
            in_block = line.strip() != END
            continue
        if _CALIBRATED_KEYS.match(line):
            skipping = True
            continue
        if skipping and (line.startswith((" ", "\t")) or not line.strip()):
            continue  # the removed key's nested lines
        skipping = False
        kept.append(line)
    body = "\n".join(kept).rstrip("\n") + "\n"
    path.write_text(body + calibration_yaml(calibration, name, optimizer))
