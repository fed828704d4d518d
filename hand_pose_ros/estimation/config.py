"""Typed configuration of one I2L MeshNet-family estimator (a registry entry is one of these)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

#: Upsampling block kinds: I2L MeshNet's plain deconvolution and seed 002 Fig. 3 (A, B, C).
BLOCK_KINDS: tuple[str, ...] = ("deconv", "dw", "mbconv", "dwse")
_BACKBONES = ("resnet50", "efficientnet_b0")
_AGGREGATORS = ("conv", "upsample")


@dataclass
class EstimatorConfig:
    """Architecture and decoding of an I2L MeshNet-style estimator (seed 002 §3.2).

    The lixel grid has ``input_size // 4`` bins on every axis (64 at 256 px, as in
    I2L MeshNet): x, y bins cover the model input; z bins cover
    ``[-depth_range_m, +depth_range_m]`` around the root (wrist) depth.
    """

    name: str = "custom"
    """Registry name (informational)."""
    backbone: str = "efficientnet_b0"
    """``resnet50`` or ``efficientnet_b0``; the pose and mesh backbones are the same kind."""
    width_mult: float = 1.0
    """EfficientNet channel multiplier (1.0 keeps torchvision shapes, so ImageNet weights load)."""
    input_size: int = 256
    """Square model input, pixels; a multiple of 32."""
    decoder_block: str = "deconv"
    """Upsampling block of the decoders: ``deconv`` | ``dw`` | ``mbconv`` | ``dwse``."""
    decoder_channels: int = 256
    """Width of the decoders (I2L MeshNet: 256)."""
    z_channels: int = 256
    """Hidden channels per depth bin of the z head (I2L MeshNet: 256; light head: 32)."""
    aggregator: str = "conv"
    """Heatmap aggregation: ``conv`` (I2L MeshNet Pose2Feat: one 3x3 conv at stride 4) or
    ``upsample`` (seed 002: pointwise conv + ``aggregator_upsamples`` blocks of
    ``decoder_block`` kind, entering the mesh backbone at the upsampled stride)."""
    aggregator_channels: int = 64
    """Width of the ``upsample`` aggregator's blocks."""
    aggregator_upsamples: int = 0
    """Number of x2 upsampling blocks in the ``upsample`` aggregator (0, 1 or 2); the mesh
    backbone is entered at stride ``4 / 2**aggregator_upsamples`` (2: a 3-channel map at the
    input resolution feeds the whole mesh backbone)."""
    se_reduction: int = 16
    """SE hidden width = channels // se_reduction in decoder/aggregator blocks (Hu et al.'s
    default 16; seed 002 does not give it)."""
    num_joints: int = 21
    """Keypoints (FreiHAND order)."""
    num_vertices: int = 778
    """Mesh vertices of the hand model in use."""
    heatmap_sigma: float = 2.5
    """Std of the Gaussian joint heatmap fed to the aggregator, in bins at 64 bins (scaled
    with the bin count)."""
    depth_range_m: float = 0.15
    """Half range of the root-relative depth bins, metres."""
    confidence_radius_bins: float = 2.0
    """Joint confidence = softmax mass within this many bins of the soft-argmax, per axis."""

    def __post_init__(self) -> None:
        if self.backbone not in _BACKBONES:
            raise ValueError(f"backbone: {self.backbone!r} not in {_BACKBONES}")
        if self.decoder_block not in BLOCK_KINDS:
            raise ValueError(f"decoder_block: {self.decoder_block!r} not in {BLOCK_KINDS}")
        if self.aggregator not in _AGGREGATORS:
            raise ValueError(f"aggregator: {self.aggregator!r} not in {_AGGREGATORS}")
        if self.input_size < 64 or self.input_size % 32:
            raise ValueError(f"input_size: must be a multiple of 32 >= 64, got {self.input_size}")
        if self.width_mult <= 0:
            raise ValueError(f"width_mult: must be > 0, got {self.width_mult}")
        if self.backbone == "resnet50" and self.width_mult != 1.0:
            raise ValueError("width_mult: ResNet-50 supports only 1.0")
        for field in ("decoder_channels", "z_channels", "aggregator_channels", "num_joints",
                      "num_vertices", "se_reduction"):  # fmt: skip
            if getattr(self, field) < 1:
                raise ValueError(f"{field}: must be >= 1, got {getattr(self, field)}")
        if self.aggregator_upsamples not in (0, 1, 2):
            raise ValueError(f"aggregator_upsamples: 0, 1 or 2, got {self.aggregator_upsamples}")
        if self.backbone == "resnet50" and self.aggregator_upsamples == 1:
            raise ValueError("aggregator_upsamples: ResNet-50 cannot be entered at stride 2")
        if self.heatmap_sigma <= 0 or self.depth_range_m <= 0 or self.confidence_radius_bins <= 0:
            raise ValueError("heatmap_sigma, depth_range_m, confidence_radius_bins: must be > 0")

    @property
    def bins(self) -> int:
        """Lixel bins per axis (= heatmap side = input_size / 4)."""
        return self.input_size // 4

    def to_dict(self) -> dict:
        """Plain dict (for manifests and bench rows)."""
        return asdict(self)
