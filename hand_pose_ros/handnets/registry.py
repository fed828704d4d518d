"""The four real-image-trained hand networks: where their .tflite lives, their I/O and the
sha256 pinned to the ``mediapipe==0.10.21`` wheel, and locating / checking a file.

Source: the networks ship (Apache-2.0) in the ``mediapipe`` 0.10.21 wheel from Google.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path

WHEEL = "mediapipe"
WHEEL_VERSION = "0.10.21"
INSTALL_HINT = f"scripts/setup.sh installs it, or `pip install --no-deps {WHEEL}=={WHEEL_VERSION}`"


@dataclass(frozen=True)
class OutputSpec:
    """One network output: our name, the marker that identifies the TFLite output and the
    per-sample shape we return (``()``: one value per image)."""

    name: str
    marker: str
    """Substring of the TFLite output's name or of its producing op's input names."""
    shape: tuple[int, ...]


@dataclass(frozen=True)
class HandNetSpec:
    """A registered network."""

    name: str
    wheel_file: str
    """Path of the .tflite inside the installed ``mediapipe`` package."""
    input_size: int
    """Side S of the square RGB input in [0, 1], pixels."""
    outputs: tuple[OutputSpec, ...]
    sha256: str
    """sha256 of the file in mediapipe 0.10.21."""

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.outputs)


_REGISTRY: dict[str, HandNetSpec] = {}


def register(spec: HandNetSpec) -> HandNetSpec:
    """Add ``spec`` to the registry; ValueError on a duplicate name."""
    if spec.name in _REGISTRY:
        raise ValueError(f"hand network {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


LANDMARK_OUTPUTS = (
    OutputSpec("landmarks", "conv_landmarks", (21, 3)),  # pixels of the 224 input (x, y, z)
    OutputSpec("presence", "conv_handflag", ()),  # probability (sigmoid applied)
    OutputSpec("handedness", "conv_handedness", ()),  # probability, mirrored-image convention
    OutputSpec("world_landmarks", "conv_world_landmarks", (21, 3)),  # metres
)
PALM_OUTPUTS = (
    OutputSpec("palm_regressors", "regressor_palm", (2016, 18)),  # anchor-relative, pixels
    OutputSpec("palm_logits", "classifier_palm", (2016,)),  # raw score logits
)

for _name, _file, _size, _outputs, _sha in (
    (
        "landmark_full",
        "modules/hand_landmark/hand_landmark_full.tflite",
        224,
        LANDMARK_OUTPUTS,
        "11c272b891e1a99ab034208e23937a8008388cf11ed2a9d776ed3d01d0ba00e3",
    ),
    (
        "landmark_lite",
        "modules/hand_landmark/hand_landmark_lite.tflite",
        224,
        LANDMARK_OUTPUTS,
        "048edd3645c9bf7397d19a9f6e3a42957d6e414c9bea6598030a2e9b624156e6",
    ),
    (
        "palm_full",
        "modules/palm_detection/palm_detection_full.tflite",
        192,
        PALM_OUTPUTS,
        "1b14e9422c6ad006cde6581a46c8b90dd573c07ab7f3934b5589e7cea3f89a54",
    ),
    (
        "palm_lite",
        "modules/palm_detection/palm_detection_lite.tflite",
        192,
        PALM_OUTPUTS,
        "e9a4aaddf90dda56a87235303cf00e4c2d3fb28725f68fd88772997dac905c18",
    ),
):
    register(HandNetSpec(_name, _file, _size, _outputs, _sha))


def list_networks() -> list[str]:
    """Registered network names, sorted."""
    return sorted(_REGISTRY)


def get_spec(name: str) -> HandNetSpec:
    """The spec of ``name``; ValueError listing the valid names otherwise."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown hand network {name!r}; valid: {', '.join(list_networks())}")
    return _REGISTRY[name]


class WheelNotInstalledError(ImportError):
    """The wheel that ships the networks is not installed."""


class Sha256MismatchError(ValueError):
    """A .tflite file is not the pinned one."""


@dataclass(frozen=True)
class TfliteSource:
    """A located, checked .tflite file."""

    name: str
    path: Path
    sha256: str
    pinned: bool
    """True when ``sha256`` is the pinned one."""


def wheel_dir() -> Path:
    """Folder of the installed ``mediapipe`` package (found without importing it)."""
    spec = importlib.util.find_spec(WHEEL)
    if spec is None or not spec.submodule_search_locations:
        raise WheelNotInstalledError(
            f"the {WHEEL}=={WHEEL_VERSION} wheel (Apache-2.0), which ships the hand networks, "
            f"is not installed: {INSTALL_HINT}; or pass the path of a .tflite file"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def wheel_version() -> str | None:
    """Installed version of the wheel, None when not installed."""
    try:
        return importlib.metadata.version(WHEEL)
    except importlib.metadata.PackageNotFoundError:
        return None


def file_sha256(path: Path) -> str:
    """sha256 (64 hex) of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def locate_tflite(
    name: str, tflite_path: str | Path | None = None, allow_sha_mismatch: bool = False
) -> TfliteSource:
    """Find and check the .tflite of ``name``: the installed wheel's, or ``tflite_path``.

    Args:
        name: a registered network.
        tflite_path: a user-given file instead of the wheel's.
        allow_sha_mismatch: accept a ``tflite_path`` whose sha256 is not the pinned one
            (your own build of the network); never applies to the wheel's file.

    Raises:
        ValueError: unknown name.
        WheelNotInstalledError: no ``tflite_path`` and the wheel is not installed.
        FileNotFoundError / OSError: the file is missing or unreadable.
        Sha256MismatchError: the file is not the pinned one (and no override).
    """
    spec = get_spec(name)
    from_wheel = tflite_path is None
    path = wheel_dir() / spec.wheel_file if from_wheel else Path(tflite_path)
    reinstall = (
        f"reinstall the wheel: `pip install --force-reinstall --no-deps {WHEEL}=={WHEEL_VERSION}`"
    )
    if not path.is_file():
        fix = reinstall if from_wheel else "check the path"
        raise FileNotFoundError(f"{name}: {path} does not exist; {fix}")
    try:
        sha = file_sha256(path)
    except OSError as exc:
        fix = reinstall if from_wheel else "check its permissions"
        raise OSError(f"{name}: cannot read {path} ({exc.strerror or exc}); {fix}") from exc
    if sha == spec.sha256:
        return TfliteSource(name, path, sha, True)
    if allow_sha_mismatch and not from_wheel:
        return TfliteSource(name, path, sha, False)
    installed = wheel_version()
    if from_wheel:
        fix = (
            f"the installed {WHEEL} is {installed}; we expect {WHEEL}=={WHEEL_VERSION}: "
            f"`pip install --force-reinstall --no-deps {WHEEL}=={WHEEL_VERSION}`"
        )
    else:
        fix = (
            f"expected the file of {WHEEL}=={WHEEL_VERSION}; to use your own file on "
            "purpose, pass allow_sha_mismatch=True (hand-teleop export: --allow-sha-mismatch)"
        )
    raise Sha256MismatchError(
        f"{name}: {path} has sha256 {sha[:16]}..., not the pinned {spec.sha256[:16]}...; {fix}"
    )
