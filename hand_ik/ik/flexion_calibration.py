"""Operator flexion calibration: the operator's open hand and fist, as the estimator sees
them, mapped onto the hand model's flat hand and fist.

An image estimator's joint angles are biased toward a middle pose: an open, spread hand
comes out with bent fingers and a fist comes out half open (on the scripted demo, through
handtrack and the IK: a spread hand's distal joints 20-48 degrees too bent, docs/
fidelity.md), so the robot's fingers stay bent for an open hand and never close fully.
A two-pose calibration fixes both ends for one operator and camera: the median estimated
DoF over frames where the operator holds the hand open (``open``) and makes a fist
(``fist``); each flexion DoF then maps linearly so that ``open`` -> the flat hand (0) and
``fist`` -> the model's fist keyframe (:func:`hand_ik.pose_sampler.keyframe`), clipped
to the DoF's limits. A flexion DoF whose estimate hardly moves between the two poses (the
estimator does not see it close: often a distal joint) but is bent on the open hand is
shifted so that the open hand is flat, without a scale. The other DoFs (abduction, thumb
rotation) pass unchanged.

The calibration is stored in the operator profile YAML (``flexion:``,
:mod:`hand_ik.ik.calibration`) and applied to the hand state before retargeting
(``RobotStage``); the IK's own output (``/hand/state``, markers) stays the estimate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hand_ik.bio_dofs import BIO_DOF_NAMES, BIO_LOWER, BIO_UPPER
from hand_ik.pose_sampler import keyframe

#: Smallest estimated open -> fist travel (rad) a DoF needs to be calibrated, and smallest
#: flexion of the model's fist in that DoF: below, the two poses do not tell the DoF's scale.
MIN_SPAN_RAD = 0.2

#: The reference poses the operator's two poses map onto (model keyframes, radians).
OPEN_REFERENCE = "flat"
FIST_REFERENCE = "fist"


@dataclass
class FlexionCalibration:
    """Per-DoF linear map of the estimated joint angles (radians, ``BIO_DOF_NAMES``
    order): ``open`` / ``fist`` are the operator's estimated poses; ``calibrated`` marks
    the DoFs mapped through both (flexion DoFs whose open -> fist travel is at least
    :data:`MIN_SPAN_RAD`), ``shifted`` the other flexion DoFs bent by at least that on the
    open hand (moved by a constant so that it is flat)."""

    open: np.ndarray  # (23,)
    fist: np.ndarray  # (23,)

    def __post_init__(self) -> None:
        self.open = np.asarray(self.open, dtype=np.float64).reshape(-1)
        self.fist = np.asarray(self.fist, dtype=np.float64).reshape(-1)
        n = len(BIO_DOF_NAMES)
        if self.open.shape != (n,) or self.fist.shape != (n,):
            raise ValueError(f"open and fist must be ({n},) joint angles, got "
                             f"{self.open.shape} and {self.fist.shape}")  # fmt: skip
        if not (np.isfinite(self.open).all() and np.isfinite(self.fist).all()):
            raise ValueError("open and fist must be finite")
        self._open_ref = keyframe(OPEN_REFERENCE)
        self._fist_ref = keyframe(FIST_REFERENCE)
        flexion = np.array([name.endswith("_flex") for name in BIO_DOF_NAMES])
        span = self.fist - self.open
        travel = self._fist_ref - self._open_ref
        self.calibrated = flexion & (span >= MIN_SPAN_RAD) & (travel >= MIN_SPAN_RAD)
        self.shifted = flexion & ~self.calibrated & (self.open - self._open_ref >= MIN_SPAN_RAD)
        self._gain = np.where(self.calibrated, travel / np.where(self.calibrated, span, 1.0), 1.0)
        self._changed = self.calibrated | self.shifted

    def apply(self, bio: np.ndarray) -> np.ndarray:
        """(..., 23) estimated joint angles -> the calibrated ones (radians): linear per
        calibrated DoF through (open -> flat, fist -> the model's fist), a shifted DoF
        moved by its open-hand bend, both clipped to the DoF's limits; the other DoFs
        unchanged. Non-finite input passes through."""
        bio = np.asarray(bio, dtype=np.float64)
        mapped = np.clip(self._open_ref + self._gain * (bio - self.open), BIO_LOWER, BIO_UPPER)
        return np.where(self._changed, mapped, bio)

    def to_dict(self) -> dict:
        """YAML-ready: ``{"open": {dof: rad}, "fist": {dof: rad}}`` (every DoF)."""
        return {pose: {name: round(float(v), 6)
                       for name, v in zip(BIO_DOF_NAMES, values, strict=True)}
                for pose, values in (("open", self.open), ("fist", self.fist))}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict) -> FlexionCalibration:
        """The inverse of :meth:`to_dict`; every DoF must be given, by name."""
        if not isinstance(data, dict) or set(data) != {"open", "fist"}:
            raise ValueError("flexion: needs exactly the keys 'open' and 'fist'")
        poses = {}
        for pose in ("open", "fist"):
            values = data[pose]
            if not isinstance(values, dict) or set(values) != set(BIO_DOF_NAMES):
                missing = sorted(set(BIO_DOF_NAMES) - set(values or {}))
                extra = sorted(set(values or {}) - set(BIO_DOF_NAMES))
                raise ValueError(f"flexion.{pose}: one angle per DoF of hand_ik.BIO_DOF_NAMES"
                                 f" (missing {missing}, unknown {extra})")  # fmt: skip
            try:
                poses[pose] = np.array([float(values[name]) for name in BIO_DOF_NAMES])
            except (TypeError, ValueError) as error:
                raise ValueError(f"flexion.{pose}: angles must be numbers ({error})") from None
        return cls(poses["open"], poses["fist"])


def fit_flexion_calibration(open_bio: np.ndarray, fist_bio: np.ndarray,
                            min_frames: int = 5) -> FlexionCalibration:  # fmt: skip
    """The calibration from (N, 23) estimated joint angles of the open hand and (M, 23) of
    the fist (radians; rows with a non-finite value are dropped): the per-DoF medians.

    Raises:
        ValueError: fewer than ``min_frames`` usable frames of either pose, or no DoF
            moves from the open hand to the fist (the two poses were not shown).
    """
    poses = {}
    for name, bio in (("open", open_bio), ("fist", fist_bio)):
        bio = np.asarray(bio, dtype=np.float64).reshape(-1, len(BIO_DOF_NAMES))
        bio = bio[np.isfinite(bio).all(axis=1)]
        if len(bio) < min_frames:
            raise ValueError(f"{name} hand: {len(bio)} usable frames, at least {min_frames} "
                             "needed (was the hand seen and solved?)")  # fmt: skip
        poses[name] = np.median(bio, axis=0)
    calibration = FlexionCalibration(poses["open"], poses["fist"])
    if not calibration.calibrated.any():
        raise ValueError("no finger closes from the open-hand frames to the fist frames "
                         f"by {MIN_SPAN_RAD} rad: show an open hand, then a fist")  # fmt: skip
    return calibration
