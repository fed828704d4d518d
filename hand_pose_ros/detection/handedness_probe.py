"""Handedness from the mesh estimator's own features: a mirror-antisymmetric linear probe.

The shipped mesh estimator is a right-hand expert (left hands reach it mirrored), so its
features respond differently to a hand and to the mirror image of that hand. The probe reads
``d(x) = phi(x) - phi(mirror x)``, where ``phi`` concatenates the global-average-pooled
features of its pose backbone, its mesh backbone and its early (stride 4) stage, and its 21
per-joint confidences; then ``P(left) = sigmoid(w . (d / scale))``, no bias. Since
``d(mirror x) = -d(x)``, ``P(left | mirror x) = 1 - P(left | x)`` holds exactly: mirroring a
crop always flips the answer, as it flips the side of the hand.

The estimator stays frozen; only ``w`` (one weight per feature) is fitted, by L2-regularised
logistic regression on our synthetic crops (``hand-teleop train handedness-probe``,
:mod:`hand_pose_ros.research.detection.handedness_probe_fit`), with the
L2 weight picked on a held-out part of the training crops. A single left-vs-right logit
trained end to end stayed at chance in our CPU runs (see
:mod:`hand_pose_ros.detection.handedness`); these frozen features carry the side.

The probe is tied to the exact estimator weights it was fitted on: the manifest records their
SHA-256 and loading refuses other weights.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from hand_pose_ros.detection.config import config_from_dict
from hand_pose_ros.estimation.mesh_estimator import SHIPPED_ESTIMATOR, build_network
from hand_pose_ros.runtime.weights import WEIGHTS_DIR

#: Shipped probe weights (``{name}.pt`` and its ``{name}.json`` manifest in the weights folder).
DEFAULT_PROBE = f"handedness_probe_{SHIPPED_ESTIMATOR}"
#: ``format`` of a probe manifest.
PROBE_FORMAT = "hand_pose_ros.handedness_probe/1"


@dataclass
class HandednessProbeConfig:
    """A probe: which mesh estimator it reads, its input side and feature count."""

    name: str = DEFAULT_PROBE
    estimator: str = SHIPPED_ESTIMATOR
    """Registered mesh estimator variant whose frozen features the probe reads."""
    input_size: int = 128
    """Square crop side, pixels (the estimator's input size)."""
    features: int = 0
    """Length of ``phi`` (set from the estimator when built)."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> HandednessProbeConfig:
        return config_from_dict(cls, data, "handedness probe")


def create_handedness_probe(cfg: HandednessProbeConfig | None = None, net=None):
    """A probe around ``net`` (default: the mesh estimator ``cfg.estimator`` with its shipped
    weights), with zero weights (P(left) = 0.5) until fitted or loaded."""
    from hand_pose_ros.detection.handedness_model import HandednessProbe

    cfg = cfg or HandednessProbeConfig()
    if net is None:
        net = build_network(cfg.estimator, WEIGHTS_DIR / f"{cfg.estimator}.pt")
    return HandednessProbe(cfg, net)


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def default_probe_weights() -> Path:
    return WEIGHTS_DIR / f"{DEFAULT_PROBE}.pt"


def build_handedness_probe(weights: str | Path):
    """The probe of ``weights`` (``{"weight", "scale"}``) and the manifest beside it, around
    the estimator weights the manifest names; ValueError if those are not the ones it was
    fitted on."""
    import torch

    weights = Path(weights)
    manifest_path = weights.with_suffix(".json")
    if not weights.is_file() or not manifest_path.is_file():
        raise FileNotFoundError(f"handedness probe weights or manifest not found: {weights} "
                                "(hand-teleop train handedness-probe)")  # fmt: skip
    manifest = json.loads(manifest_path.read_text())
    cfg = HandednessProbeConfig.from_dict(manifest["config"])
    estimator_path = WEIGHTS_DIR / f"{cfg.estimator}.pt"
    if file_sha256(estimator_path) != manifest["estimator_sha256"]:
        raise ValueError(f"{weights}: fitted on other {cfg.estimator} weights than "
                         f"{estimator_path}; refit it (hand-teleop train handedness-probe)")
    probe = create_handedness_probe(cfg)
    state = torch.load(weights, map_location="cpu", weights_only=True)
    probe.weight.copy_(state["weight"].float())
    probe.scale.copy_(state["scale"].float())
    return probe.eval()
