"""Per-robot calibration of the retargeting targets on our human pose presets.

Nothing here is tuned per robot by hand: every number comes from the robot's URDF,
its config's ``flexion`` field and the presets of ``hand_ik.pose_presets.bio_preset``
posed on the open hand model.

1. Robot reference poses: for a preset, each finger's flexion joints are set to the
   human finger's flexion fraction of their range (open 0, closed the limit the joint
   closes toward); every other joint follows the config's joint map (e.g. the thumb's
   opposition).
2. ``target_scales``: per fingertip and palm axis, the weighted least-squares ratio of the
   robot's fingertip displacement from the open pose (palm->tip vector, palm axes) to
   the human's displacement from the flat hand, over ``FIT_POSES`` and
   ``curl_<finger>``, shrunk toward the one-number ratio on axes the human tip hardly
   moves along.
3. ``target_offsets``: so that the flat human hand's palm->tip targets are exactly the
   robot's open-pose vectors (a flat hand gives straight robot fingers).
4. ``scale``: the median of the long fingers' scales (pinch and intermediate vectors).
5. ``intermediate_weight``, ``map_weight`` and ``pinch_weight``: the first combination
   (smallest first, in that order of priority, from ``INTERMEDIATE_WEIGHTS`` x
   ``MAP_WEIGHTS`` x ``PINCH_WEIGHTS``) with which the presets meet every fidelity goal
   (``hand_ik.retarget.fidelity.fidelity_misses``: flat, fist, curls, independence, and
   the pinches the robot's kinematics allow); where none does, the combination that
   misses the fewest goals, then by the least.

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

#: Candidate weights of the palm->intermediate vectors (where a config has them), smallest first.
INTERMEDIATE_WEIGHTS: tuple[float, ...] = (0.1, 0.3)
#: Candidate weights of the pull toward the joint map (per rad^2), smallest first.
MAP_WEIGHTS: tuple[float, ...] = (0.02, 0.1, 0.3, 1.0, 3.0)
#: Candidate weights of a fully active pinch vector, smallest first.
PINCH_WEIGHTS: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0)
#: Per-axis scales are shrunk toward one scale with this share of the squared displacement.
AXIS_RIDGE = 0.1
#: Presets the target scales are fitted on, with their weights (plus ``curl_<finger>``, 1):
#: the fist, the end of the range, counts most; a tip path is curved, a linear map is not.
FIT_POSES: tuple[tuple[str, float], ...] = (("fist", 1.0), ("point", 1.0), ("relaxed", 0.3))
#: Markers of the calibrated block in a robot YAML.
BEGIN, END = "# calibration-begin", "# calibration-end"


@dataclass
class Calibration:
    """Calibrated retargeting fields of one robot config, and how they scored."""

    scale: float
    """Median of the long fingers' scales (the pinch vectors)."""
    target_scales: dict[str, list[float]]
    """Fingertip / intermediate keypoint -> (3,) palm vector scale per palm axis."""
    target_offsets: dict[str, list[float]]
    """Fingertip / intermediate keypoint -> (3,) target offset, palm axes, metres."""
    pinch_weight: float
    """Weight of a fully active pinch vector."""
    map_weight: float
    """Pull toward the joint map (per rad^2)."""
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
            target_scales={k: list(v) for k, v in self.target_scales.items()},
            target_offsets={k: list(v) for k, v in self.target_offsets.items()},
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


def _fit_targets(retargeter) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    config, opt = retargeter.config, retargeter.optimizer
    rot = np.asarray(config.hand_root_to_palm, dtype=float)
    keypoints = (*config.fingertips, *config.intermediates)
    pairs = retargeter._human_pairs[: len(keypoints)]
    q_open = reference_pose(retargeter)
    v_open = opt.vectors_at(q_open)[0][: len(pairs)]

    def human_vectors(pose: str) -> np.ndarray:
        kp = preset_sequence(pose)[0][-1]
        return (kp[pairs[:, 1]] - kp[pairs[:, 0]]) @ rot.T

    h_flat = human_vectors("flat")
    scales, offsets = {}, {}
    for k, tip in enumerate(keypoints):
        finger = tip.split("_")[0]
        dh, dv, w = [], [], []
        for pose, weight in (*FIT_POSES, (f"curl_{finger}", 1.0)):
            dh.append(human_vectors(pose)[k] - h_flat[k])
            ref = reference_pose(retargeter, preset_sequence(pose)[1][-1])
            dv.append(opt.vectors_at(ref)[0][k] - v_open[k])
            w.append(weight)
        dh, dv, w = np.array(dh), np.array(dv), np.array(w)[:, None]  # (P, 3) palm axes
        den = float((w * dh * dh).sum())
        uniform = float((w * dh * dv).sum()) / den if den > 0 else 0.0
        if not uniform > 0:
            raise ValueError(f"{config.name}: cannot fit a scale for {tip} (no displacement)")
        # Per palm axis, shrunk toward the uniform scale where the human barely moves on that
        # axis (ridge: AXIS_RIDGE of the total weighted squared displacement); kept positive.
        ridge = AXIS_RIDGE * den
        per_axis = ((w * dh * dv).sum(0) + ridge * uniform) / ((w * dh * dh).sum(0) + ridge)
        scales[tip] = per_axis.clip(0.1 * uniform, 10.0 * uniform)
        # Rounded as the YAML stores them, so the weights are chosen for what ships.
        scales[tip] = np.round(scales[tip], 4)
        offsets[tip] = np.round(v_open[k] - scales[tip] * h_flat[k], 5).tolist()
        scales[tip] = scales[tip].tolist()
    return scales, offsets


def calibrate(config: RetargetingConfig) -> Calibration:
    """Fit the calibrated fields of one robot config (see the module docstring).

    Args:
        config: the robot's config with its URDF set and a ``flexion`` field.

    Returns:
        The calibration (``Calibration.apply`` gives the calibrated config).
    """
    if not config.flexion:
        raise ValueError(f"{config.name}: calibration needs the 'flexion' field")
    base = replace(config, target_scales={}, target_offsets={})
    retargeter = base.build()
    scales, offsets = _fit_targets(retargeter)
    scale = round(float(np.median([v for k, v in scales.items() if not k.startswith("thumb_")])), 4)
    fingers = [f for f in config.flexion if f != "thumb"]
    pinches = [
        f"pinch_{f}"
        for f in ("index", "middle", "ring", "little")
        if f"{f}_tip" in config.fingertips and config.pinch
    ]
    reach = {p: pinch_reach(retargeter, f"{p.removeprefix('pinch_')}_tip") * 1e3 for p in pinches}
    poses = ["flat", "fist", *(f"curl_{f}" for f in ("thumb", *fingers)), *pinches]
    inter_weights = INTERMEDIATE_WEIGHTS if config.intermediates else (None,)
    trials = [
        Calibration(scale, scales, offsets, pinch_weight, map_weight, inter_weight)
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
        "# from our human pose presets, not tuned by hand: target_scales fit the robot's",
        "# fingertip motion (each finger's flexion joints bent by the human's flexion fraction)",
        "# to the human's; target_offsets put the flat human hand on the robot's open pose;",
        "# the optimizer weights are the smallest that meet the fidelity goals on the",
        f"# presets ({calibration.misses} missed). Pinch presets, robot tip distance / kinematic",
        "# minimum (mm): "
        + ", ".join(
            f"{p.removeprefix('pinch_')} {mm:.1f}/{calibration.reach_mm[p]:.1f}"
            for p, mm in calibration.pinch_mm.items()
        ),
        f"scale: {calibration.scale:.4f}",
        "target_scales:",
        *(
            f"  {k}: [{', '.join(f'{x:.4f}' for x in v)}]"
            for k, v in calibration.target_scales.items()
        ),
        "target_offsets:",
        *(
            f"  {k}: [{', '.join(f'{x:.5f}' for x in v)}]"
            for k, v in calibration.target_offsets.items()
        ),
        "optimizer: " + _flow(optimizer),
        END,
    ]
    return "\n".join(lines) + "\n"


_CALIBRATED_KEYS = re.compile(r"^(scale|target_scales|target_offsets|optimizer):")


def write_calibration(path: str | Path, calibration: Calibration, name: str) -> None:
    """Replace the calibrated fields of the robot YAML ``path`` (other lines are kept).

    An earlier calibration block and top-level ``scale`` / ``target_scales`` /
    ``target_offsets`` / ``optimizer`` entries are removed (other optimizer settings are
    carried into the new block); the new block is appended.
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
