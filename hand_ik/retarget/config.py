"""Retargeting config: one typed dataclass per robot, loaded from ``config/robots/<name>.yaml``.

``load_retargeting_config(name_or_path, urdf=None)`` -> ``RetargetingConfig``;
``RetargetingConfig.build()`` -> ``Retargeter`` (the only place objects are wired).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hand_ik.bio_dofs import BIO_DOF_INDEX
from hand_ik.keypoints import FINGER_NAMES, KEYPOINT_NAMES
from hand_ik.yaml_io import read_yaml_mapping

if TYPE_CHECKING:
    from hand_ik.retarget.retargeter import Retargeter


def _default_config_dir() -> Path:
    """Robot configs: $HAND_POSE_ROS_ROBOT_CONFIGS, the source tree, or an install's share/."""
    if "HAND_POSE_ROS_ROBOT_CONFIGS" in os.environ:
        return Path(os.environ["HAND_POSE_ROS_ROBOT_CONFIGS"])
    here = Path(__file__).resolve()
    source_tree = here.parents[2] / "config" / "robots"
    if source_tree.is_dir():
        return source_tree
    # Installed: <prefix>/lib/pythonX.Y/site-packages/hand_ik and <prefix>/share/hand_pose_ros
    for parent in here.parents:
        candidate = parent / "share" / "hand_pose_ros" / "config" / "robots"
        if candidate.is_dir():
            return candidate
    return source_tree


#: Folder of the shipped robot configs.
ROBOT_CONFIG_DIR = _default_config_dir()


@dataclass
class OptimizerConfig:
    """Weights and iteration budget of the task-space vector optimizer."""

    iterations: int = 3
    """Damped Gauss-Newton steps per frame (warm started from the previous frame)."""
    cold_iterations: int = 30
    """Steps for the first frame after ``reset()`` (no warm start), and for a restart."""
    restart_miss_m: float = 0.03
    """Restart threshold D, metres: when a warm-started frame leaves a fingertip vector D or
    more from its target (a finger stuck in a local minimum, e.g. at its joint limits), the
    frame is also solved from the open pose (``cold_iterations`` steps), kept when its task
    cost is lower by at least that of one fingertip D / 2 off; 0 disables. GRAB
    teapot_pour_1: Shadow's little finger stayed at its limits for ~900 frames (76.8 mm
    mean miss) without it (docs/fidelity.md)."""
    max_step_rad: float = 0.3
    """Trust region: the largest joint change of one step, radians."""
    residual_scale_m: float = 0.01
    """Vector residuals are divided by this before squaring (1 cm of error costs 1)."""
    intermediate_weight: float = 0.3
    """Weight of the wrist->intermediate vectors relative to wrist->fingertip (1)."""
    pinch_weight: float = 0.5
    """Weight of a thumb-tip->fingertip vector once the human tips are within ``pinch_close_m``."""
    pinch_close_m: float = 0.015
    """Human tip distance (m) at or below which the robot's target is the tips touching."""
    pinch_open_m: float = 0.025
    """Human tip distance (m) at or above which a pinch vector has no weight (fingers free)."""
    map_weight: float = 0.02
    """Pull toward the joint-mapping result (per rad^2), used when bio DoF are given."""
    # dex-retargeting's vector optimizer weighs |q - q_last|^2 by 4e-3 against a mean Huber
    # loss of ~25 d^2 / K (d in m, K vectors); with K = 5 that is 8 in our units (1 cm = 1).
    prev_weight: float = 8.0
    """Pull toward the previous frame's solution (per rad^2)."""
    damping: float = 1e-3
    """Levenberg-Marquardt damping added to the normal equations."""
    tolerance_rad: float = 1e-5
    """Stop iterating once the largest joint step is below this."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            kind = int if f.type == "int" else (int, float)
            if isinstance(value, bool) or not isinstance(value, kind):
                raise ValueError(f"optimizer.{f.name} must be a number ({f.type}), got {value!r}")
        if self.iterations < 1:
            raise ValueError(f"optimizer.iterations must be >= 1, got {self.iterations}")
        if self.cold_iterations < self.iterations:
            raise ValueError(
                f"optimizer.cold_iterations must be >= iterations, got {self.cold_iterations}"
            )
        if not 0 <= self.pinch_close_m < self.pinch_open_m:
            raise ValueError(
                f"optimizer.pinch_close_m must be >= 0 and < pinch_open_m, got "
                f"{self.pinch_close_m}, {self.pinch_open_m}"
            )
        for name in ("residual_scale_m", "max_step_rad"):
            if not getattr(self, name) > 0:
                raise ValueError(f"optimizer.{name} must be > 0, got {getattr(self, name)}")
        for name in (
            "intermediate_weight",
            "pinch_weight",
            "map_weight",
            "prev_weight",
            "damping",
            "tolerance_rad",
            "restart_miss_m",
        ):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"optimizer.{name} must be finite and >= 0, got {value}")


@dataclass
class RetargetingConfig:
    """How the human hand (hand_root frame, 23 bio DoF) drives one robot hand."""

    name: str
    """Config name (the YAML file stem)."""
    palm_link: str
    """URDF link whose frame the task vectors are expressed in; no free joint may move it."""
    fingertips: dict[str, str]
    """Human keypoint name (e.g. ``thumb_tip``) -> robot fingertip link."""
    urdf: str | None = None
    """URDF path (relative paths resolve against the YAML's folder); None: give one when loading."""
    urdf_hint: str | None = None
    """Where the URDF lives in the dex-urdf layout (``<hand>/<file>.urdf``), for a robots folder."""
    side: str = "right"
    """Robot hand side, ``right`` or ``left`` (left: ``hand_root_to_palm`` must reflect)."""
    intermediates: dict[str, str] = field(default_factory=dict)
    """Optional human keypoint (e.g. ``index_pip``) -> robot link (``intermediate_weight``)."""
    hand_root_to_palm: list[list[float]] = field(default_factory=lambda: np.eye(3).tolist())
    """3x3 matrix taking human hand_root vectors (right canonical form) to palm-link axes."""
    palm_offset: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    """Point of the palm link (its frame, metres) matched to the human wrist."""
    scale: float = 1.0
    """Robot-to-human size ratio applied to human vectors (pinch and intermediate vectors)."""
    target_scales: dict[str, float | list[float]] = field(default_factory=dict)
    """Fingertip/intermediate keypoint -> scale of its palm vector, one or per palm axis (3)."""
    target_offsets: dict[str, list[float]] = field(default_factory=dict)
    """Fingertip/intermediate keypoint -> (3,) metres added to its scaled target (palm axes)."""
    closed_offsets: dict[str, list[float]] = field(default_factory=dict)
    """Keypoint -> (3,) metres: its offset once its finger is closed (``closed_lengths``)."""
    closed_lengths: dict[str, list[float]] = field(default_factory=dict)
    """Fingertip keypoint -> [open, closed] human palm->tip length (m): the finger's closure."""
    closed_power: float = 2.0
    """Offsets go from open to closed by closure ** this (>= 1: mid-range moves at one scale)."""
    palm_length_m: float = 0.0
    """Palm length (m, ``hand_size.palm_length``) of the hand the calibration used; the
    operator's keypoints are scaled to it (running estimate per track); 0: not scaled."""
    open_pose: dict[str, float] = field(default_factory=dict)
    """Free joint -> radians: the robot pose the flat human hand maps onto (unlisted: 0
    clipped to the limits); the joint map's offset of each listed joint is this value, so
    the flat hand's DoF (all 0) map onto it too. Written by the calibration."""
    locked_joints: dict[str, float] = field(default_factory=dict)
    """Joints held constant (e.g. a wrist), excluded from retargeting."""
    joint_map: dict[str, dict[str, float]] = field(default_factory=dict)
    """Free joint -> {bio DoF name: coefficient, ``offset``: radians}; unlisted joints map to 0."""
    neutral: dict[str, float] = field(default_factory=dict)
    """Neutral pose (free joints; unlisted 0, clipped to limits) for the hand-lost policy."""
    pinch: bool = True
    """Add thumb-tip -> fingertip vectors (weight ``optimizer.pinch_weight``)."""
    flexion: dict[str, dict[str, float]] = field(default_factory=dict)
    """Finger -> {free joint: +1 (closes toward its upper limit) or -1}: the finger's flexion."""
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    """Optimizer weights and iterations."""

    def __post_init__(self) -> None:
        self._check_types()
        if isinstance(self.optimizer, dict):
            known = {f.name for f in fields(OptimizerConfig)}
            unknown = sorted(set(self.optimizer) - known, key=str)
            if unknown:
                raise ValueError(f"optimizer: unknown keys {unknown}; valid: {sorted(known)}")
            self.optimizer = OptimizerConfig(**self.optimizer)
        if self.side not in ("right", "left"):
            raise ValueError(f"side must be 'right' or 'left', got {self.side!r}")
        if not self.fingertips:
            raise ValueError("fingertips must map at least one human keypoint to a robot link")
        for field_name in ("fingertips", "intermediates"):
            for key in getattr(self, field_name):
                if key not in KEYPOINT_NAMES:
                    raise ValueError(
                        f"{field_name}: unknown human keypoint {key!r}; valid: {KEYPOINT_NAMES}"
                    )
        if self.pinch and "thumb_tip" not in self.fingertips:
            raise ValueError("pinch needs a 'thumb_tip' entry in fingertips")
        rot = np.asarray(self.hand_root_to_palm, dtype=float)
        if rot.shape != (3, 3) or not np.allclose(rot @ rot.T, np.eye(3), atol=1e-6):
            raise ValueError(
                f"hand_root_to_palm must be an orthonormal 3x3 matrix, got {self.hand_root_to_palm}"
            )
        # A left robot is the mirror image of a right one: the map from the right
        # canonical human hand must reflect (det -1), a right robot's must not.
        if (np.linalg.det(rot) > 0) != (self.side == "right"):
            raise ValueError(
                f"hand_root_to_palm has det {np.linalg.det(rot):+.0f}: a {self.side} robot needs "
                f"det {'+1' if self.side == 'right' else '-1 (a reflection)'}"
            )
        if np.asarray(self.palm_offset, dtype=float).shape != (3,):
            raise ValueError(f"palm_offset must have 3 values, got {self.palm_offset}")
        if not (np.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"scale must be > 0, got {self.scale}")
        for field_name in ("target_scales", "target_offsets", "closed_offsets"):
            known = {*self.fingertips, *self.intermediates}
            unknown = sorted(set(getattr(self, field_name)) - known)
            if unknown:
                raise ValueError(f"{field_name}: {unknown} are not fingertips or intermediates")
        for key, value in self.target_scales.items():
            value = np.asarray(value, dtype=float)
            if value.shape not in ((), (3,)) or not np.all(np.isfinite(value) & (value > 0)):
                raise ValueError(f"target_scales.{key} must be one or 3 values > 0, got {value}")
        for field_name in ("target_offsets", "closed_offsets"):
            for key, value in getattr(self, field_name).items():
                if np.asarray(value, dtype=float).shape != (3,):
                    raise ValueError(f"{field_name}.{key} must have 3 values, got {value}")
        for key in self.closed_offsets:
            if _finger_tip(key) not in self.closed_lengths:
                raise ValueError(f"closed_offsets.{key} needs closed_lengths.{_finger_tip(key)}")
        for key, value in self.closed_lengths.items():
            if key not in self.fingertips:
                raise ValueError(f"closed_lengths: {key!r} is not a fingertip")
            value = np.asarray(value, dtype=float)
            if value.shape != (2,) or not value[0] > value[1] > 0:
                raise ValueError(
                    f"closed_lengths.{key} must be [open, closed] with open > closed > 0, got "
                    f"{value.tolist()}"
                )
        if not (np.isfinite(self.palm_length_m) and self.palm_length_m >= 0):
            raise ValueError(f"palm_length_m must be >= 0 (0: off), got {self.palm_length_m}")
        if not (np.isfinite(self.closed_power) and self.closed_power >= 1):
            raise ValueError(f"closed_power must be >= 1, got {self.closed_power}")
        for finger, joints in self.flexion.items():
            if finger not in FINGER_NAMES:
                raise ValueError(f"flexion: unknown finger {finger!r}; valid: {FINGER_NAMES}")
            for joint, sense in joints.items():
                if sense not in (1, -1):
                    raise ValueError(f"flexion.{finger}.{joint} must be +1 or -1, got {sense}")
        for joint, terms in self.joint_map.items():
            for dof in terms:
                if dof != "offset" and dof not in BIO_DOF_INDEX:
                    raise ValueError(
                        f"joint_map.{joint}: unknown bio DoF {dof!r}; valid: {tuple(BIO_DOF_INDEX)}"
                    )

    def _check_types(self) -> None:
        """ValueError naming the field for a value of the wrong type (YAML gives anything)."""
        for name in ("name", "palm_link", "side"):
            _require(isinstance(getattr(self, name), str), name, "a string", getattr(self, name))
        for name in ("urdf", "urdf_hint"):
            value = getattr(self, name)
            _require(value is None or isinstance(value, str), name, "a path string", value)
        _require(isinstance(self.pinch, bool), "pinch", "true or false", self.pinch)
        _require(_is_number(self.scale), "scale", "a number", self.scale)
        _require(isinstance(self.optimizer, (dict, OptimizerConfig)), "optimizer", "a mapping",
                 self.optimizer)  # fmt: skip
        for name in ("fingertips", "intermediates"):
            _check_mapping(getattr(self, name), name, lambda v: isinstance(v, str), "link names")
        for name in ("locked_joints", "neutral", "open_pose"):
            _check_mapping(getattr(self, name), name, _is_number, "numbers (radians)")
        _check_mapping(self.target_scales, "target_scales", _is_numbers, "numbers")
        _check_mapping(self.target_offsets, "target_offsets", _is_numbers, "numbers")
        _check_mapping(self.closed_offsets, "closed_offsets", _is_numbers, "numbers")
        _check_mapping(self.closed_lengths, "closed_lengths", _is_numbers, "numbers")
        _require(_is_number(self.closed_power), "closed_power", "a number", self.closed_power)
        _require(_is_number(self.palm_length_m), "palm_length_m", "a number", self.palm_length_m)
        for name in ("joint_map", "flexion"):
            _check_mapping(getattr(self, name), name, lambda v: isinstance(v, dict), "mappings")
            for key, terms in getattr(self, name).items():
                _check_mapping(terms, f"{name}.{key}", _is_number, "numbers")
        for name in ("hand_root_to_palm", "palm_offset"):
            value = getattr(self, name)
            _require(_is_numbers(value), name, "a list of numbers", value)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RetargetingConfig:
        """Build from a YAML mapping, rejecting unknown keys by name."""
        if not isinstance(data, dict):
            raise ValueError(f"a retargeting config must be a mapping, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known, key=str)
        if unknown:
            raise ValueError(f"unknown retargeting config keys {unknown}; valid: {sorted(known)}")
        required = {f.name for f in fields(cls) if f.default is MISSING
                    and f.default_factory is MISSING}  # fmt: skip
        missing = sorted(required - set(data))
        if missing:
            raise ValueError(f"retargeting config {data.get('name')!r} misses keys {missing}")
        return cls(**data)

    def build(self) -> Retargeter:
        """Load the URDF and return a ready ``Retargeter``."""
        from hand_ik.retarget.retargeter import Retargeter

        return Retargeter(self)

    def require_urdf(self) -> str:
        """The URDF path, or a ValueError saying how to give one."""
        if self.urdf is None:
            raise ValueError(
                f"robot config {self.name!r} has no URDF: pass urdf=PATH (--urdf), the robot's "
                f"URDF file or a dex-urdf robots folder holding {self.urdf_hint}"
            )
        return self.urdf


def _finger_tip(keypoint: str) -> str:
    """The fingertip keypoint of a keypoint's finger (``index_dip`` -> ``index_tip``)."""
    return keypoint.split("_")[0] + "_tip"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_numbers(value: Any) -> bool:
    """A number or a (nested) list of numbers."""
    if isinstance(value, (list, tuple)):
        return all(_is_numbers(v) for v in value)
    return _is_number(value)


def _require(ok: bool, name: str, what: str, value: Any) -> None:
    if not ok:
        raise ValueError(f"{name} must be {what}, got {value!r}")


def _check_mapping(value: Any, name: str, check: Callable[[Any], bool], what: str) -> None:
    """``value`` is a mapping from strings to values that pass ``check``."""
    _require(isinstance(value, dict), name, "a mapping", value)
    for key, item in value.items():
        _require(isinstance(key, str), f"{name} keys", "strings", key)
        _require(check(item), f"{name}.{key}", what, item)


def available_robot_configs(config_dir: Path = ROBOT_CONFIG_DIR) -> list[str]:
    """Names of the shipped robot configs (YAML stems)."""
    return sorted(p.stem for p in Path(config_dir).glob("*.yaml"))


def load_retargeting_config(
    name_or_path: str | Path, urdf: str | Path | None = None, **overrides: Any
) -> RetargetingConfig:
    """Load a robot config by name (``config/robots/<name>.yaml``) or YAML path.

    Args:
        name_or_path: a shipped config name (see ``available_robot_configs``) or a YAML file.
        urdf: the robot's URDF file, or a folder in the dex-urdf layout
            (``<hand>/<file>.urdf``, resolved with the config's ``urdf_hint``);
            overrides the YAML's ``urdf``.
        **overrides: top-level config fields to replace.

    Raises:
        ValueError: unknown name, bad field, or a URDF that cannot be found.
    """
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = ROBOT_CONFIG_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise ValueError(
                f"unknown robot config {str(name_or_path)!r}; valid: {available_robot_configs()} "
                "(or a path to a .yaml file)"
            )
    elif not path.is_file():
        raise FileNotFoundError(f"robot config not found: {path}")
    data = read_yaml_mapping(path, "robot config")
    data.setdefault("name", path.stem)
    data.update(overrides)
    for name in ("urdf", "urdf_hint"):
        if data.get(name) is not None and not isinstance(data[name], (str, Path)):
            raise ValueError(f"robot config {path}: {name} must be a path, got {data[name]!r}")
    if data.get("urdf") is not None and not Path(data["urdf"]).is_absolute():
        data["urdf"] = str((path.parent / data["urdf"]).resolve())
    if urdf is not None and Path(urdf).is_dir() and data.get("urdf_hint") is None:
        if data.get("urdf") is None:
            raise ValueError(
                f"robot config {data['name']!r} has no urdf_hint; pass the URDF file itself"
            )
        urdf = None  # a robots folder does not override a config that ships its own URDF
    if urdf is not None:
        urdf = Path(urdf)
        if urdf.is_dir():
            urdf = urdf / data["urdf_hint"]
        if not urdf.is_file():
            raise FileNotFoundError(f"URDF for robot config {data['name']!r} not found: {urdf}")
        data["urdf"] = str(urdf)
    return RetargetingConfig.from_dict(data)
