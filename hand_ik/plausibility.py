"""Does a set of 21 keypoints look like a human hand? The gate before anything drives a robot.

Keypoints from an estimator or a message can be finite and still absurd: a hand 10 km
away, points 100 m apart, every point on one line. :func:`check_hand_keypoints` names
the first rule a hand breaks (or None), :func:`check_fit_error` bounds the IK's residual.
Bounds are wide on purpose (children to large adults, every keypoint convention, noisy
estimators); units are metres in the camera optical frame (z forward).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from hand_ik.keypoints import NUM_KEYPOINTS, SKELETON_EDGES

#: Wrist, thumb CMC and the four finger MCPs: the nearly rigid palm.
PALM_KEYPOINTS = (0, 1, 5, 9, 13, 17)
WRIST, MIDDLE_MCP = 0, 9
_PALM = np.array(PALM_KEYPOINTS)
_EDGE_A, _EDGE_B = (np.array(ends) for ends in zip(*SKELETON_EDGES, strict=True))


@dataclass
class PlausibilityConfig:
    """Human ranges a hand must fall in (metres), with margin."""

    enabled: bool = True
    """Check at all (off: only degenerate input is refused)."""
    min_palm_length_m: float = 0.04
    """Wrist to middle finger base, shortest (adults ~0.09-0.11, small children ~0.05)."""
    max_palm_length_m: float = 0.16
    """Wrist to middle finger base, longest."""
    max_bone_length_m: float = 0.15
    """Any skeleton edge, longest."""
    max_spread_m: float = 0.35
    """Any keypoint's distance from the wrist, largest."""
    min_palm_width_m: float = 0.01
    """Palm points' spread across their main direction (rejects all points on a line)."""
    check_depth: bool = True
    """Apply the depth range: keypoints in the camera frame (estimators). Off for keypoints
    in another frame (motion capture, recorded files: their wrist sits near the origin)."""
    min_depth_m: float = 0.05
    """Wrist distance in front of the camera, nearest (z, camera frame)."""
    max_depth_m: float = 5.0
    """Wrist distance in front of the camera, farthest."""
    max_fit_error_m: float = 0.03
    """Mean distance between the fitted hand model and the keypoints, largest."""

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if name not in ("enabled", "check_depth") and not (np.isfinite(value) and value > 0):
                raise ValueError(f"PlausibilityConfig.{name} must be a positive number, "
                                 f"got {value!r}")  # fmt: skip
        if self.min_palm_length_m >= self.max_palm_length_m:
            raise ValueError("PlausibilityConfig: min_palm_length_m must be < max_palm_length_m")
        if self.min_depth_m >= self.max_depth_m:
            raise ValueError("PlausibilityConfig: min_depth_m must be < max_depth_m")


def check_hand_keypoints(joints: np.ndarray, config: PlausibilityConfig | None = None,
                         camera_frame: bool | None = None) -> str | None:  # fmt: skip
    """The first rule that (21, 3) keypoints break, or None for a plausible hand.

    Missing keypoints are NaN and only the observed ones are checked; the palm must be
    observed. ``camera_frame`` (default: the config's ``check_depth``) applies the depth
    rule.

    Raises:
        ValueError: ``joints`` is not (21, 3).
    """
    cfg = config or PlausibilityConfig()
    joints = np.asarray(joints, np.float64)
    if joints.shape != (NUM_KEYPOINTS, 3):
        raise ValueError(f"joints must be (21, 3), got {joints.shape}")
    if not cfg.enabled:
        return None
    seen = np.isfinite(joints).all(-1)
    if not seen[_PALM].all():
        return "palm not observed"
    with np.errstate(all="ignore"):
        palm_length = float(np.linalg.norm(joints[MIDDLE_MCP] - joints[WRIST]))
        if not cfg.min_palm_length_m <= palm_length <= cfg.max_palm_length_m:
            return f"palm length {palm_length:.3g} m outside [{cfg.min_palm_length_m}, " \
                   f"{cfg.max_palm_length_m}]"  # fmt: skip
        lengths = np.linalg.norm(joints[_EDGE_A] - joints[_EDGE_B], axis=-1)
        too_long = (lengths > cfg.max_bone_length_m) & seen[_EDGE_A] & seen[_EDGE_B]
        if too_long.any():
            k = int(np.argmax(too_long))  # the first such edge, in SKELETON_EDGES order
            return f"bone {_EDGE_A[k]}-{_EDGE_B[k]} {lengths[k]:.3g} m longer than " \
                   f"{cfg.max_bone_length_m}"  # fmt: skip
        spread = float(np.linalg.norm(joints[seen] - joints[WRIST], axis=-1).max())
        if spread > cfg.max_spread_m:
            return f"a keypoint {spread:.3g} m from the wrist (max {cfg.max_spread_m})"
        palm = joints[_PALM]
        centred = palm - palm.mean(0)
        # The palm's second singular value: the eigenvalues of the 3x3 scatter matrix.
        second = np.sqrt(max(float(np.linalg.eigvalsh(centred.T @ centred)[1]), 0.0))
        width = second / np.sqrt(len(palm))
        if width < cfg.min_palm_width_m:
            return f"palm points nearly on a line ({width:.3g} m across)"
    if cfg.check_depth if camera_frame is None else camera_frame:
        depth = float(joints[WRIST, 2])
        if not cfg.min_depth_m <= depth <= cfg.max_depth_m:
            return f"wrist depth {depth:.3g} m outside [{cfg.min_depth_m}, {cfg.max_depth_m}]"
    return None


def check_fit_error(fit_error_m: float, config: PlausibilityConfig | None = None) -> str | None:
    """``"fit error ..."`` when the IK's mean keypoint residual is too large, else None."""
    cfg = config or PlausibilityConfig()
    if cfg.enabled and not fit_error_m <= cfg.max_fit_error_m:  # NaN fails too
        return f"fit error {fit_error_m * 1e3:.1f} mm above {cfg.max_fit_error_m * 1e3:.0f} mm"
    return None
