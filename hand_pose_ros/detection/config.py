"""Typed configuration of the hand detector and its registered variants."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

#: Names of the network outputs in eval mode / ONNX (per anchor, input pixels).
OUTPUT_NAMES: tuple[str, ...] = ("boxes", "scores", "keypoints")
INPUT_NAME = "image"
CLASS_NAMES: tuple[str, ...] = ("right", "left")


def config_from_dict(cls, data: dict, what: str):
    """``cls(**data)`` for a config dataclass; ValueError naming unknown keys."""
    unknown = sorted(set(data) - set(cls.__dataclass_fields__))
    if unknown:
        raise ValueError(f"unknown {what} config keys {unknown}")
    return cls(**data)


@dataclass
class DetectorConfig:
    """Architecture, seed 000 options and decoding of one detector variant.

    Outputs in eval mode, A = sum over strides of (S / stride)^2 anchors:
    ``boxes`` (B, A, 4) xyxy input pixels; ``scores`` (B, A, 2) probabilities of a right /
    a left hand at the anchor (their sum is the hand probability); ``keypoints`` (B, A, K, 3):
    x, y input pixels and a confidence in [0, 1] (sigmoid of the visibility logit, or
    1 - mean sigma with RLE).
    """

    name: str = "custom"
    input_size: int = 256
    """Square letterboxed input side, pixels; a multiple of 32."""
    widths: tuple[int, ...] = (16, 32, 64, 96, 128)
    """Channels of the stem (stride 2) and stages 1-4 (strides 4, 8, 16, 32)."""
    depths: tuple[int, ...] = (1, 2, 2, 1)
    """Bottlenecks in the C2f block of stages 1-4."""
    neck_width: int = 64
    """Channels of the PAN neck outputs (strides 8, 16, 32)."""
    head_width: int = 32
    """Hidden channels of each head branch."""
    strides: tuple[int, ...] = (8, 16, 32)
    num_keypoints: int = 21
    num_classes: int = 2
    handedness_head: bool = True
    """Class channels are a hand logit and a left-vs-right logit (P(left | hand), trained
    on positive anchors only), so ``scores = P(hand) * (P(right | hand), P(left | hand))``.
    False: one independent sigmoid per class, as YOLOv8 (handedness was not learned that
    way in our CPU runs: see docs/detector.md)."""
    focused_attention: bool = True
    """CSPDarkNet-VT: focused linear attention blocks after the stride-16 and -32 stages."""
    attention_heads: int = 4
    focusing_factor: float = 3.0
    """p of the focused mapping phi_p (Han et al., FLatten Transformer)."""
    kpa: bool = True
    """Keypoint alignment: the assigner's alignment metric includes keypoint OKS."""
    rle: bool = True
    """Residual log-likelihood keypoint loss with a RealNVP flow (training only)."""
    flow_hidden: int = 64
    flow_layers: int = 3
    """RealNVP coupling layer pairs."""

    def __post_init__(self) -> None:
        self.widths = tuple(int(w) for w in self.widths)
        self.depths = tuple(int(d) for d in self.depths)
        self.strides = tuple(int(s) for s in self.strides)
        if self.input_size < 64 or self.input_size % 32:
            raise ValueError(f"input_size: a multiple of 32 >= 64, got {self.input_size}")
        if len(self.widths) != 5 or min(self.widths) < 1:
            raise ValueError(f"widths: 5 positive channel counts, got {self.widths}")
        if len(self.depths) != 4 or min(self.depths) < 1:
            raise ValueError(f"depths: 4 positive block counts, got {self.depths}")
        if self.strides != (8, 16, 32):
            raise ValueError(f"strides: only (8, 16, 32) is supported, got {self.strides}")
        if self.num_keypoints < 1 or self.num_classes < 1:
            raise ValueError("num_keypoints, num_classes: must be >= 1")
        if self.handedness_head and self.num_classes != 2:
            raise ValueError("handedness_head needs num_classes == 2 (right, left)")
        if self.widths[3] % self.attention_heads or self.widths[4] % self.attention_heads:
            raise ValueError("attention_heads must divide the stride-16 and -32 widths")

    @property
    def num_anchors(self) -> int:
        return sum((self.input_size // s) ** 2 for s in self.strides)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> DetectorConfig:
        return config_from_dict(cls, data, "detector")


@dataclass
class _Registry:
    variants: dict[str, DetectorConfig] = field(default_factory=dict)


_REGISTRY = _Registry()


def register(cfg: DetectorConfig) -> DetectorConfig:
    _REGISTRY.variants[cfg.name] = cfg
    return cfg


#: FAR-HandNet with every seed 000 option, sized for a CPU (0.39 GMACs = 0.79 GFLOPs and
#: 1.2 M parameters at 256 px).
register(DetectorConfig(name="far_handnet_cpu_256"))
#: The YOLOv8-pose-style baseline of seed 000 Table 5 (no FLA, no KPA, no RLE).
register(
    DetectorConfig(name="yolo_pose_cpu_256", focused_attention=False, kpa=False, rle=False)
)
#: A wider variant for GPU users (train with --device cuda).
register(
    DetectorConfig(
        name="far_handnet_s_320",
        input_size=320,
        widths=(32, 64, 128, 256, 512),
        depths=(1, 2, 2, 1),
        neck_width=128,
        head_width=128,
    )
)


def list_detectors() -> list[str]:
    """Registered detector variant names."""
    return sorted(_REGISTRY.variants)


def create_detector_config(name: str, **overrides) -> DetectorConfig:
    """The registered config ``name`` with ``overrides`` applied (ValueError if unknown)."""
    if name not in _REGISTRY.variants:
        raise ValueError(f"unknown detector {name!r}; registered: {', '.join(list_detectors())}")
    return replace(_REGISTRY.variants[name], **overrides)
