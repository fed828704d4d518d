"""Estimator registry (timm style): variants are data, built by name with overrides."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields

from hand_pose_ros.estimation.config import EstimatorConfig

_REGISTRY: dict[str, Callable[[], dict]] = {}


def register_estimator(fn: Callable[[], dict]) -> Callable[[], dict]:
    """Decorator: register ``fn`` (returning EstimatorConfig keyword arguments) under its name."""
    name = fn.__name__
    if name in _REGISTRY:
        raise ValueError(f"estimator {name!r} is already registered")
    _REGISTRY[name] = fn
    return fn


def list_estimators() -> list[str]:
    """Registered variant names, in registration order."""
    return list(_REGISTRY)


def estimator_config(name: str, **overrides) -> EstimatorConfig:
    """Config of a registered variant with keyword overrides (e.g. ``num_vertices=...``).

    Raises:
        ValueError: unknown name or unknown override field.
    """
    if name not in _REGISTRY:
        raise ValueError(f"estimator {name!r} unknown; valid: {', '.join(_REGISTRY)}")
    valid = {f.name for f in fields(EstimatorConfig)}
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise ValueError(f"unknown config fields {unknown}; valid: {', '.join(sorted(valid))}")
    kwargs = {"name": name, **_REGISTRY[name](), **overrides}
    return EstimatorConfig(**kwargs)


def create_mesh_net(name: str, **overrides):
    """Build a registered variant: ``create_mesh_net("lite_effb0_dwse", num_vertices=V)``.

    Returns:
        An :class:`~hand_pose_ros.estimation.i2l.I2LMeshNet` (randomly initialised).
    """
    from hand_pose_ros.estimation.i2l import I2LMeshNet

    return I2LMeshNet(estimator_config(name, **overrides))


# --- seed 002 Table 2 ---------------------------------------------------------------------------
#: seed 002's aggregator "with upsampling": its width and depth are not given in the paper;
#: two x2 blocks of width 88 up to the input resolution, then a pointwise conv to the 3
#: channels of the (complete) mesh EfficientNet, reproduce Table 2's GMACs
#: (see hand_pose_ros.benchmarks.flops).
_LITE_AGG = dict(aggregator="upsample", aggregator_upsamples=2, aggregator_channels=88)


@register_estimator
def i2l_baseline() -> dict:
    """Original I2L MeshNet: ResNet-50 backbones, deconvolution decoders, 3x3 conv Pose2Feat."""
    return dict(backbone="resnet50", decoder_block="deconv", aggregator="conv")


@register_estimator
def lite_effb0() -> dict:
    """EfficientNet-B0 backbones, original decoders and aggregator (Table 2 'Ef-B0 Bb.')."""
    return dict(backbone="efficientnet_b0", decoder_block="deconv", aggregator="conv")


@register_estimator
def lite_effb0_dw() -> dict:
    """+ depthwise-separable deconvolution decoders and aggregator (Fig. 3A)."""
    return dict(backbone="efficientnet_b0", decoder_block="dw", **_LITE_AGG)


@register_estimator
def lite_effb0_mbconv() -> dict:
    """+ MBConv-style (depthwise deconv, SE, pointwise) decoders and aggregator (Fig. 3B)."""
    return dict(backbone="efficientnet_b0", decoder_block="mbconv", **_LITE_AGG)


@register_estimator
def lite_effb0_dwse() -> dict:
    """seed 002's Lite I2L MeshNet: depthwise deconv + SE decoders and aggregator (Fig. 3C)."""
    return dict(backbone="efficientnet_b0", decoder_block="dwse", **_LITE_AGG)


# --- CPU candidates (ours; final pick by accuracy per ms in issue 7) ----------------------------
_CPU = dict(
    backbone="efficientnet_b0",
    decoder_block="dwse",
    z_channels=32,  # light z head: 32 instead of 256 channels per depth bin
    aggregator="upsample",
    aggregator_upsamples=0,  # one pointwise conv at stride 4, no upsampling
)


@register_estimator
def cpu_effb0_w05_128() -> dict:
    """Half-width EfficientNet-B0, 128-channel dw+SE decoders, light z head, 128 px input."""
    return dict(_CPU, width_mult=0.5, decoder_channels=128, input_size=128)


@register_estimator
def cpu_effb0_w05_160() -> dict:
    """As ``cpu_effb0_w05_128`` at 160 px input (40 bins)."""
    return dict(_CPU, width_mult=0.5, decoder_channels=128, input_size=160)


@register_estimator
def cpu_effb0_128() -> dict:
    """Full-width EfficientNet-B0 (ImageNet weights load), dw+SE decoders, light z, 128 px."""
    return dict(_CPU, width_mult=1.0, decoder_channels=256, input_size=128)
