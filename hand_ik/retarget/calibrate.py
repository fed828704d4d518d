"""Per-robot calibration of the retargeting targets on our human pose presets.

Nothing here is tuned per robot by hand: every number comes from the robot's URDF,
its config's ``flexion`` field and the presets of ``hand_ik.pose_presets.bio_preset``
posed on the open hand model.

1. Robot reference poses: for a preset, each finger's flexion joints are set to the
   human finger's flexion fraction of their range (open 0, closed the limit the joint
   closes toward); every other joint follows the config's joint map (e.g. the thumb's
   opposition).
2. ``scale``: one per robot, the robot's palm point -> middle tip length with every joint
   at 0 (clipped to the limits) over ``HUMAN_HAND_LENGTH_M``; every palm->fingertip (and
   palm->intermediate) target is the human vector times it, so between open and nearly
   closed the robot's tips move as the human's, scaled by one number.
3. ``open_pose``: the robot pose the flat human hand maps onto: every flexion joint open
   (0 clipped to the limits), the other free joints (finger spread, thumb rotation and
   abduction) fitted so the robot's palm->tip vectors come closest to ``scale`` times the
   flat hand's (``fit_open_pose``): the robot's fingers spread as the human's, so a
   human finger moving sideways moves the robot's from the middle of its range, not from
   a limit. The joint map's offsets of those joints become the open pose.
   Where the fitted open pose misses a goal, the same without the thumb's joints, then
   the straight pose (no ``open_pose``; see 6).
4. ``target_offsets``: so that the flat human hand's targets are exactly the robot's
   open-pose vectors (a flat hand gives straight robot fingers).
5. ``closed_offsets`` and ``closed_lengths``: the human palm->tip lengths of the flat
   hand and the fist, and the offsets of a closed finger. Each finger takes, from the
   open offsets moved by ``CLOSED_BLENDS`` toward the offsets that put the human ``fist``
   on the robot's reference fist or toward zero (the plain scaled vector), the one that
   changes its offsets least while it closes in the fist and in its own curl preset
   (``FIST_MIN``, ``CURL_MIN``, plus ``FIST_MARGIN``; no change where the open offsets
   do): the less the offsets change while a finger closes, the more the robot's tips
   move as the human's. Failing that, every finger's fitted fist offsets. The retargeter
   moves each finger's offsets from the open to the closed ones by its closure to the
   power ``CLOSED_POWER`` (``Retargeter.closure``).
6. ``intermediate_weight`` (0 drops the palm->intermediate vectors: fewer vectors, faster),
   the open pose (fitted, without the thumb, straight), ``closed_offsets`` (least change,
   then fitted), ``map_weight`` and ``pinch_weight``: the first combination (in that
   order of priority; weights smallest first, from ``INTERMEDIATE_WEIGHTS`` x open poses x
   closed offsets x ``MAP_WEIGHTS`` x ``PINCH_WEIGHTS``) with which the
   presets meet every fidelity goal (``hand_ik.retarget.fidelity.fidelity_misses``: flat,
   fist, curls, independence, and the pinches the robot's kinematics allow); where none
   does, the combination that misses the fewest goals, then by the least.

7. ``palm_length_m``: the presets' palm length (``hand_size.palm_length``); the
   retargeter measures each operator's palm against it (``Retargeter.hand_factor``).

``write_calibration`` replaces the calibrated fields in the robot YAML, inside a
marked block with a comment saying how they were obtained.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from itertools import product
from pathlib import Path

import numpy as np
import yaml

from hand_ik.optim import LMConfig, least_squares
from hand_ik.retarget.config import OptimizerConfig, RetargetingConfig
from hand_ik.retarget.fidelity import (
    CURL_MIN,
    FIST_MIN,
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
#: Higher powers keep mid-range motion at one scale longer (GRAB tip motion residual, choice
#: split, Allegro 8.3 -> 6.9 mm at 16) but steepen the blend near a fist: at 16 a 0.1 mm
#: keypoint change moves LEAP's targets up to 2.8 mm (0.7 mm at 4), noise a robot would show.
CLOSED_POWER = 4.0
#: Candidate closed offsets: the open offsets moved this far toward the fitted fist
#: offsets, or toward zero (``calibrate`` picks per finger; 0, no change, comes first).
CLOSED_BLENDS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
#: Flexion a finger's closed offsets must reach beyond ``FIST_MIN`` in the fist and beyond
#: ``CURL_MIN`` in its curl preset (the weights chosen afterwards move it a little).
FIST_MARGIN = 0.02
#: Pull of the open-pose fit toward 0 (per rad^2; 1 cm of tip error costs 1): joints the
#: flat hand's tips do not pin down stay at 0.
OPEN_POSE_PULL = 0.02
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
    open_pose: dict[str, float] = field(default_factory=dict)
    """Free joint -> radians of the open pose (flexion joints open, others fitted)."""
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
            open_pose=dict(self.open_pose),
            optimizer=optimizer,
        )


def reference_pose(retargeter, bio: np.ndarray | None = None) -> np.ndarray:
    """(n_free,) robot pose for a human pose: the joint map, flexion joints at the human fraction.

    Args:
        retargeter: a built ``Retargeter`` (its config must have ``flexion``).
        bio: (23,) the human pose, radians; None: the open pose (``retargeter.open_free``).
    """
    robot = retargeter.robot
    lo, hi = robot.free_lower, robot.free_upper
    if bio is None:
        return retargeter.open_free.copy()
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


def _human_vectors(retargeter, pose: str) -> np.ndarray:
    """(K, 3) a preset's human palm->link vectors (target rows), palm axes, metres."""
    pairs = retargeter._human_pairs[: len(retargeter.target_keypoints)]
    kp = preset_sequence(pose)[0][-1]
    return (kp[pairs[:, 1]] - kp[pairs[:, 0]]) @ np.asarray(retargeter.config.hand_root_to_palm).T


def robot_scale(retargeter) -> float:
    """The robot's palm point -> middle tip (joints at 0, clipped) over ``HUMAN_HAND_LENGTH_M``."""
    robot = retargeter.robot
    v = retargeter.optimizer.vectors_at(np.clip(0.0, robot.free_lower, robot.free_upper))[0]
    middle = retargeter.target_keypoints.index("middle_tip")
    return round(float(np.linalg.norm(v[middle]) / HUMAN_HAND_LENGTH_M), 4)


def fit_open_pose(retargeter, scale: float) -> dict[str, float]:
    """The open pose's non-flexion joints (step 3 of the module docstring), radians.

    Flexion joints (the config's ``flexion``) stay open (0 clipped to the limits); the
    other free joints minimise ``|v_k(q) - scale * h_k|^2 / (1 cm)^2 + OPEN_POSE_PULL
    |q|^2`` over the fingertip vectors of the flat preset, within the limits. Only joints
    that move from 0 are returned.
    """
    robot, opt = retargeter.robot, retargeter.optimizer
    tips = len(retargeter.config.fingertips)
    target = scale * _human_vectors(retargeter, "flat")[:tips]
    q0 = np.clip(0.0, robot.free_lower, robot.free_upper)
    flexion = {j for joints in retargeter.config.flexion.values() for j in joints}
    held = np.array([name in flexion for name in robot.free_names])
    lower = np.where(held, q0, robot.free_lower)
    upper = np.where(held, q0, robot.free_upper)
    pull, unit = np.sqrt(OPEN_POSE_PULL), 0.01

    def residuals(q: np.ndarray, jacobian: bool) -> tuple[np.ndarray, np.ndarray | None]:
        v, jac = opt.vectors_at(q, jacobians=jacobian)
        r = np.concatenate([((v[:tips] - target) / unit).ravel(), pull * (q - q0)])
        if not jacobian:
            return r, None
        n = len(q)
        return r, np.concatenate([(jac[:tips] / unit).reshape(-1, n), pull * np.eye(n)])

    result = least_squares(residuals, q0, LMConfig(max_iterations=200), lower=lower, upper=upper)
    q = np.clip(result.x, lower, upper)
    return {name: round(float(q[j]), 4) for j, name in enumerate(robot.free_names)
            if not held[j] and abs(q[j] - q0[j]) > 1e-4}  # fmt: skip


def _thumb_joints(retargeter) -> set[str]:
    """Free joints that move the thumb tip (at joints 0, clipped)."""
    robot = retargeter.robot
    if "thumb_tip" not in retargeter.config.fingertips:
        return set()
    q0 = np.clip(0.0, robot.free_lower, robot.free_upper)
    jac = retargeter.optimizer.vectors_at(q0, jacobians=True)[1]
    row = list(retargeter.config.fingertips).index("thumb_tip")
    return {robot.free_names[j] for j in np.flatnonzero(np.abs(jac[row]).sum(axis=0) > 1e-9)}


def _fit_targets(retargeter, scale: float) -> _Targets:
    """Fit offsets (open and closed) and closure lengths on the presets (open pose given)."""
    config, opt = retargeter.config, retargeter.optimizer
    keypoints = retargeter.target_keypoints
    v_open = opt.vectors_at(reference_pose(retargeter))[0][: len(keypoints)]
    fist_pose = reference_pose(retargeter, preset_sequence("fist")[1][-1])
    v_fist = opt.vectors_at(fist_pose)[0]
    h_flat, h_fist = _human_vectors(retargeter, "flat"), _human_vectors(retargeter, "fist")
    offsets, closed, lengths = {}, {}, {}
    for k, tip in enumerate(keypoints):
        offsets[tip] = np.round(v_open[k] - scale * h_flat[k], 5).tolist()
        closed[tip] = np.round(v_fist[k] - scale * h_fist[k], 5).tolist()
        if tip in config.fingertips:
            lengths[tip] = np.round([np.linalg.norm(h_flat[k]), np.linalg.norm(h_fist[k])], 5)
            lengths[tip] = lengths[tip].tolist()
    palm = round(palm_length(preset_sequence("flat")[0][-1]), 5)
    return _Targets(scale, offsets, closed, lengths, palm)


def _least_closed_offsets(config: RetargetingConfig, trial: Calibration) -> dict:
    """Per finger, the closed offsets that change its open ones least while it closes.

    Candidates: the open offsets (``trial.target_offsets``) moved by each of
    ``CLOSED_BLENDS`` toward ``trial.closed_offsets`` (the fitted fist) or toward zero. A
    finger closes when its flexion in the ``fist`` and in its ``curl_<finger>`` preset
    passes ``FIST_MIN`` and ``CURL_MIN`` by ``FIST_MARGIN``; one that closes with none takes
    the candidate that closes it most. Evaluated with ``trial``'s weights.
    """
    opened = {k: np.asarray(v) for k, v in trial.target_offsets.items()}
    fitted = {k: np.asarray(v) for k, v in trial.closed_offsets.items()}
    candidates = [opened]
    for t in CLOSED_BLENDS:
        candidates.append({k: v + t * (fitted[k] - v) for k, v in opened.items()})
        candidates.append({k: (1.0 - t) * v for k, v in opened.items()})
    poses = ["fist", *(f"curl_{f}" for f in config.flexion)]
    closing = []  # per candidate: finger -> how far its fist and curl close beyond the goals
    for candidate in candidates:
        closed = {k: v.tolist() for k, v in candidate.items()}
        flex = evaluate_presets(replace(trial, closed_offsets=closed).apply(config).build(),
                                poses).flex  # fmt: skip
        closing.append({f: min(flex["fist"][f] - FIST_MIN, flex[f"curl_{f}"][f] - CURL_MIN)
                        for f in config.flexion})  # fmt: skip
    chosen = {}
    for finger in {k.split("_")[0] for k in opened}:
        rows = [k for k in opened if k.split("_")[0] == finger]
        if finger not in config.flexion:
            chosen.update({k: fitted[k].tolist() for k in rows})
            continue

        def change(i: int, rows=rows) -> float:
            return float(sum(np.linalg.norm(candidates[i][k] - opened[k]) for k in rows))

        closes = [i for i, c in enumerate(closing) if c[finger] >= FIST_MARGIN]
        best = min(closes, key=change) if closes else max(
            range(len(candidates)), key=lambda i: closing[i][finger])  # fmt: skip
        chosen.update({k: np.round(candidates[best][k], 5).tolist() for k in rows})
    return {k: chosen[k] for k in opened}


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
                   closed_lengths={}, open_pose={}, optimizer=optimizer)  # fmt: skip
    straight = base.build()
    scale = robot_scale(straight)
    fingers = [f for f in config.flexion if f != "thumb"]
    pinches = [
        f"pinch_{f}"
        for f in ("index", "middle", "ring", "little")
        if f"{f}_tip" in config.fingertips and config.pinch
    ]
    reach = {p: pinch_reach(straight, f"{p.removeprefix('pinch_')}_tip") * 1e3 for p in pinches}
    poses = ["flat", "fist", *(f"curl_{f}" for f in ("thumb", *fingers)), *pinches]
    inter_weights = INTERMEDIATE_WEIGHTS if config.intermediates else (None,)
    fitted = fit_open_pose(straight, scale)
    thumb = _thumb_joints(straight)
    candidates = [fitted, {k: v for k, v in fitted.items() if k not in thumb}, {}]
    open_poses = [c for i, c in enumerate(candidates) if c not in candidates[:i]]
    fits = [_fit_targets(replace(base, open_pose=pose).build(), scale) for pose in open_poses]
    pinch_weights = PINCH_WEIGHTS if pinches else (config.optimizer.pinch_weight,)
    best = None
    # Priority: fewer vectors (intermediate weight), then the open pose, then the closed
    # offsets, then the weights; the first trial that meets every goal ends the search.
    fitted_poses = list(zip(open_poses, fits, strict=True))
    for inter_weight, (open_pose, fit) in product(inter_weights, fitted_poses):
        first = Calibration(
            fit.scale, fit.target_offsets, fit.closed_offsets, fit.closed_lengths,
            pinch_weights[0], MAP_WEIGHTS[0], palm_length_m=fit.palm_length_m,
            intermediate_weight=inter_weight, open_pose=open_pose,
        )  # fmt: skip
        least = _least_closed_offsets(config, first)
        for closed, map_weight, pinch_weight in product(
            (least, fit.closed_offsets), MAP_WEIGHTS, pinch_weights
        ):
            trial = replace(first, closed_offsets=closed, pinch_weight=pinch_weight,
                            map_weight=map_weight)  # fmt: skip
            result = evaluate_presets(trial.apply(config).build(), poses)
            misses = fidelity_misses(result, reach)
            score = (sum(m > 0 for m in misses), sum(misses))
            if best is None or score < best[0]:
                best = (score, trial, result)
            if score[0] == 0:
                break
        if best[0][0] == 0:
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
        "# from our human pose presets, not tuned by hand: scale is the robot's straight",
        f"# palm -> middle tip over a {HUMAN_HAND_LENGTH_M} m adult hand; open_pose has the",
        "# flexion joints open, the others fitted to the flat human hand (spread, thumb);",
        "# target_offsets put the flat human hand on it; closed_offsets are, per finger, the",
        "# least change from those with which it closes (toward the human fist on the robot's",
        "# or toward zero), blended in by the finger's closure (palm->tip length between",
        "# closed_lengths) to the power closed_power; palm_length_m is the presets' palm (mean",
        "# wrist -> finger MCP), the size each operator's hand is measured against; the",
        "# optimizer weights are the smallest that meet the fidelity goals on the presets",
        f"# ({calibration.misses} missed). Pinch presets, robot tip distance / kinematic minimum",
        "# (mm): "
        + ", ".join(
            f"{p.removeprefix('pinch_')} {mm:.1f}/{calibration.reach_mm[p]:.1f}"
            for p, mm in calibration.pinch_mm.items()
        ),
        f"scale: {calibration.scale:.4f}",
        "open_pose: " + _flow({f'"{k}"': f"{v:.4f}" for k, v in calibration.open_pose.items()}),
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
    r"palm_length_m|open_pose|optimizer):"
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
