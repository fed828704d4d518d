"""A lixel mesh head on the real-trained landmark network's feature maps (issue 21).

The landmark network (:mod:`hand_pose_ros.handnets`, ``landmark_full``) stays frozen; this
head reads three of its intermediate maps (:data:`FEATURE_TAPS`) and predicts the open hand
model's 21 joints and 778 vertices (``P = 799`` points, joints first) for the upright 224 px
ROI crop the tracking graph feeds the network (:mod:`hand_pose_ros.handtrack.rois`).

Per point it gives Lite-I2L-style 1D heatmaps ("lixels", :mod:`hand_pose_ros.estimation.lixel`):
x, y over the crop (``bins`` per axis, marginals of a 56 x 56 decoded map built from the
28 x 28 and 14 x 14 taps) and z = camera depth relative to the wrist joint (``bins`` over
+-``depth_range`` m, from the globally pooled 7 x 7 map), plus one metric scale ``s``
(metres per crop pixel at the wrist's depth). :func:`lift_to_camera` turns them into camera
metres with the crop's geometry (perspective-correct), and :func:`to_crop_frame` into the
head's documented output frame: **root-relative (wrist joint at 0), metres, axes of the
upright crop** (x right, y down in the crop, z away from the camera) - the frame of the
landmark network's own world landmarks, turned into camera axes the same way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
from torch import nn

from hand_pose_ros.estimation._layers import conv1d_bn_relu, conv_bn_act, upsample_block
from hand_pose_ros.estimation.lixel import (
    input_pixels_to_lixel,
    lixel_to_depth,
    lixel_to_input_pixels,
    soft_argmax_1d,
)

#: Feature maps of ``landmark_full`` the head reads (TFLite tensor names -> (C, H, W)):
#: the last 28x28 residual output, the last 14x14 residual output, and the last 7x7 map
#: (the one the network's own world-landmark layer pools).
FEATURE_TAPS: dict[str, dict[str, tuple[str, tuple[int, int, int]]]] = {
    "landmark_full": {
        "f28": ("model_1/model/add_1/add", (40, 28, 28)),
        "f14": ("model_1/model/add_5/add", (112, 14, 14)),
        "f7": (
            "model_1/model/re_lu_31/Relu6;model_1/model/batch_normalization_46/"
            "FusedBatchNormV3;model_1/model/depthwise_conv2d_15/depthwise",
            (1152, 7, 7),
        ),
    },
}

#: Crop side of the landmark network's input, pixels.
CROP_SIZE = 224


@dataclass
class LandmarkMeshHeadConfig:
    """Head architecture (all sizes in the crop's pixels / metres)."""

    backbone: str = "landmark_full"
    """Landmark network whose features are read (a key of :data:`FEATURE_TAPS`)."""
    channels: int = 96
    """Width of the decoder that fuses the 28x28 and 14x14 taps."""
    bins: int = 56
    """Lixel bins per axis (x, y over the 224 px crop: 4 px per bin; z over the depth range)."""
    z_channels: int = 8
    """Hidden 1D channels of the z branch (I2L ``conv_z_1`` makes z_channels * bins)."""
    depth_range: float = 0.2
    """z bins cover wrist-relative depth in [-depth_range, depth_range] metres."""
    scale_prior: float = 1.2e-3
    """Typical metres per crop pixel at the wrist's depth (the scale output's centre)."""
    num_joints: int = 21
    """Joints (our keypoint order), first in the point list."""
    num_vertices: int = 778
    """Vertices of the open hand model, after the joints."""
    confidence_radius_bins: float = 2.0
    """Half window (bins) of the heatmap mass reported as confidence."""
    z_source: str = "pooled"
    """Input of the z / scale branch: ``"pooled"`` (I2L: the globally pooled 7x7 map) or
    ``"spatial"`` (also the 14x14 tap reduced to ``z_spatial_channels`` x 7 x 7, flattened,
    so depth can depend on where things are)."""
    z_spatial_channels: int = 32
    """Channels of the reduced 14x14 tap for ``z_source: spatial``."""
    landmark_inputs: bool = False
    """Also read the landmark network's own outputs (I2L's PoseNet -> Pose2Feat with the
    real-trained network as PoseNet): Gaussian heatmaps of its 21 2D landmarks join the
    28x28 map, and its landmarks and world landmarks join the z / scale input."""
    landmark_sigma_bins: float = 1.0
    """Std of those 28x28 Gaussian heatmaps, in 28x28 cells (8 crop px each)."""

    def __post_init__(self) -> None:
        if self.backbone not in FEATURE_TAPS:
            raise ValueError(f"backbone: one of {sorted(FEATURE_TAPS)}, got {self.backbone!r}")
        for name in ("channels", "bins", "z_channels", "num_joints", "num_vertices"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"{name}: must be positive, got {getattr(self, name)}")
        if self.bins < 28:
            raise ValueError(f"bins: at least 28 (the 28x28 tap's side), got {self.bins}")
        if not 0.0 < self.depth_range < 1.0:
            raise ValueError(f"depth_range: in (0, 1) metres, got {self.depth_range}")
        if not 0.0 < self.scale_prior < 0.1:
            raise ValueError(f"scale_prior: in (0, 0.1) metres per pixel, got {self.scale_prior}")
        if self.z_source not in ("pooled", "spatial"):
            raise ValueError(f"z_source: 'pooled' or 'spatial', got {self.z_source!r}")
        if self.z_spatial_channels <= 0:
            raise ValueError(f"z_spatial_channels: positive, got {self.z_spatial_channels}")
        if self.landmark_sigma_bins <= 0:
            raise ValueError(f"landmark_sigma_bins: positive, got {self.landmark_sigma_bins}")
        if self.confidence_radius_bins <= 0:
            raise ValueError(f"confidence_radius_bins: positive, got {self.confidence_radius_bins}")

    @property
    def num_points(self) -> int:
        return self.num_joints + self.num_vertices

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> LandmarkMeshHeadConfig:
        return cls(**data)


class MeshHeadOutput(NamedTuple):
    """Head output for a batch of B crops, P = joints + vertices points.

    Attributes:
        uv: (B, P, 2) crop pixels of the 224 px input.
        z: (B, P) camera depth relative to the wrist joint, metres (positive: farther).
        scale: (B,) metres per crop pixel at the wrist's depth.
        confidence: (B, P) mean x / y / z heatmap mass near the peak, [0, 1].
    """

    uv: torch.Tensor
    z: torch.Tensor
    scale: torch.Tensor
    confidence: torch.Tensor


def _upsample_1d(ch: int) -> nn.Sequential:
    """x2 upsampling of 1D marginals: depthwise 4-tap transposed conv -> BN -> ReLU -> 1x1."""
    return nn.Sequential(nn.ConvTranspose1d(ch, ch, 4, 2, 1, groups=ch, bias=False),
                         nn.BatchNorm1d(ch), nn.ReLU(inplace=True), nn.Conv1d(ch, ch, 1))


class LandmarkMeshHead(nn.Module):
    """Lixel head: (f28, f14, f7) landmark-network features -> :class:`MeshHeadOutput`.

    x / y: f14 -> 1x1 conv -> x2 upsample (dwse block) + f28 -> 1x1 conv, a 3x3 depthwise +
    1x1 refinement at 28 x 28, marginalised over y / x, then 1D x2 upsampling to ``bins``
    and a 1x1 Conv1d to P heatmaps (marginalising before upsampling instead of after, as
    I2L does, costs ~1/56 of the 2D decoder: it keeps training on cached features cheap).
    z and scale: global mean of f7 (and, with ``z_source: spatial``, the flattened reduced
    14x14 tap) -> I2L's ``conv_z_1`` / ``conv_z_2``, and a linear layer for
    log(scale / scale_prior).
    """

    def __init__(self, cfg: LandmarkMeshHeadConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or LandmarkMeshHeadConfig()
        taps = FEATURE_TAPS[cfg.backbone]
        c28, c14, c7 = (taps[k][1][0] for k in ("f28", "f14", "f7"))
        ch = cfg.channels
        self.lateral14 = conv_bn_act(c14, ch, 1)
        self.up14 = upsample_block("dwse", ch, ch)
        self.lateral28 = conv_bn_act(c28, ch, 1)
        if cfg.landmark_inputs:
            self.pose2feat = conv_bn_act(ch + cfg.num_joints, ch, 1)
        self.refine = nn.Sequential(conv_bn_act(ch, ch, 3, groups=ch), conv_bn_act(ch, ch, 1))
        ups, side = [], 28
        while side * 2 <= cfg.bins:  # 1D x2 steps of the marginals towards the lixel bins
            ups.append(_upsample_1d(ch))
            side *= 2
        self.up_x = nn.Sequential(*ups)
        self.up_y = nn.Sequential(*(_upsample_1d(ch) for _ in ups))
        self.conv_x = nn.Conv1d(ch, cfg.num_points, 1)
        self.conv_y = nn.Conv1d(ch, cfg.num_points, 1)
        z_in = c7
        if cfg.z_source == "spatial":
            self.z_reduce = conv_bn_act(c14, cfg.z_spatial_channels, 3, stride=2)
            h = taps["f14"][1][1]
            z_in += cfg.z_spatial_channels * ((h + 1) // 2) ** 2
        if cfg.landmark_inputs:
            z_in += 2 * 3 * cfg.num_joints
        self.conv_z_1 = conv1d_bn_relu(z_in, cfg.z_channels * cfg.bins)
        self.conv_z_2 = nn.Conv1d(cfg.z_channels, cfg.num_points, 1)
        self.scale = nn.Linear(z_in, 1)
        nn.init.zeros_(self.scale.weight)
        nn.init.zeros_(self.scale.bias)

    def forward(self, f28: torch.Tensor, f14: torch.Tensor, f7: torch.Tensor,
                landmarks: torch.Tensor | None = None,
                world: torch.Tensor | None = None) -> MeshHeadOutput:  # fmt: skip
        """Features (B, C, H, W) of the taps; f7 may be given pooled, (B, C). With
        ``landmark_inputs``: the network's ``landmarks`` (B, 21, 3) crop px and ``world``
        landmarks (B, 21, 3) m."""
        cfg = self.cfg
        x = self.up14(self.lateral14(f14)) + self.lateral28(f28)  # (B, C, 28, 28)
        if cfg.landmark_inputs:
            if landmarks is None or world is None:
                raise ValueError("landmark_inputs: pass the network's landmarks and world")
            x = self.pose2feat(torch.cat((x, self._heatmaps(landmarks, x.shape[-1])), 1))
        x = self.refine(x)
        mx, my = self.up_x(x.mean(2)), self.up_y(x.mean(3))  # marginals (B, C, D')
        if mx.shape[-1] != cfg.bins:
            mx = nn.functional.interpolate(mx, size=cfg.bins, mode="linear", align_corners=False)
            my = nn.functional.interpolate(my, size=cfg.bins, mode="linear", align_corners=False)
        hx, hy = self.conv_x(mx), self.conv_y(my)
        g = f7 if f7.dim() == 2 else f7.mean((2, 3))
        if cfg.z_source == "spatial":
            g = torch.cat((g, self.z_reduce(f14).flatten(1)), 1)
        if cfg.landmark_inputs:
            g = torch.cat((g, landmarks.flatten(1) / CROP_SIZE, 10.0 * world.flatten(1)), 1)
        z = self.conv_z_1(g.unsqueeze(-1)).reshape(-1, cfg.z_channels, cfg.bins)
        hz = self.conv_z_2(z)
        coord, mass = soft_argmax_1d(torch.stack((hx, hy, hz), dim=-2),
                                     cfg.confidence_radius_bins)  # fmt: skip
        uv = lixel_to_input_pixels(coord[..., :2], CROP_SIZE, cfg.bins)
        depth = lixel_to_depth(coord[..., 2], cfg.bins, cfg.depth_range)
        scale = cfg.scale_prior * torch.exp(self.scale(g).squeeze(-1).clamp(-3.0, 3.0))
        return MeshHeadOutput(uv, depth, scale, mass.mean(-1))

    def _heatmaps(self, landmarks: torch.Tensor, side: int) -> torch.Tensor:
        with torch.no_grad():  # as I2L's Pose2Feat: no gradient through the rendering
            return _gaussian_2d(landmarks[..., :2].detach(), side, self.cfg.landmark_sigma_bins)


def _gaussian_2d(uv: torch.Tensor, side: int, sigma: float) -> torch.Tensor:
    """(B, J, 2) crop px -> (B, J, side, side) Gaussians (peak 1) on a side x side grid."""
    cell = (uv + 0.5) * side / CROP_SIZE - 0.5
    grid = torch.arange(side, dtype=uv.dtype, device=uv.device)
    gx = torch.exp(-0.5 * ((grid - cell[..., 0:1]) / sigma) ** 2)
    gy = torch.exp(-0.5 * ((grid - cell[..., 1:2]) / sigma) ** 2)
    return gy[..., :, None] * gx[..., None, :]


def pixels_to_lixel(uv: torch.Tensor, cfg: LandmarkMeshHeadConfig) -> torch.Tensor:
    """(..., 2) crop pixels -> lixel x, y of this head."""
    return input_pixels_to_lixel(uv, CROP_SIZE, cfg.bins)


def lift_to_camera(uv: torch.Tensor, z: torch.Tensor, scale: torch.Tensor,
                   crop_to_frame: torch.Tensor, K: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """Head output -> camera-frame points, metres (perspective-correct).

    The wrist's depth is ``scale * f * k`` (``k``: crop pixels per frame pixel, ``f``: the
    mean focal length); each point lies on the ray through its frame pixel at the wrist's
    depth plus its ``z``.

    Args:
        uv: (B, P, 2) crop pixels. z: (B, P) wrist-relative depth, m. scale: (B,) m per crop px.
        crop_to_frame: (B, 2, 3) affine crop pixels -> frame pixels (inverse of the crop matrix).
        K: (B, 3, 3) frame intrinsics.

    Returns:
        (B, P, 3) camera frame (x right, y down, z forward), metres.
    """
    a, b = crop_to_frame[..., :2], crop_to_frame[..., 2]
    k = 1.0 / torch.sqrt(torch.det(a).abs())  # crop px per frame px (similarity crop)
    fx, fy, cx, cy = K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2]
    root_depth = scale * 0.5 * (fx + fy) * k
    p = uv @ a.transpose(1, 2) + b[:, None, :]
    depth = root_depth[:, None] + z
    x = (p[..., 0] - cx[:, None]) / fx[:, None] * depth
    y = (p[..., 1] - cy[:, None]) / fy[:, None] * depth
    return torch.stack((x, y, depth), -1)


def to_crop_frame(points: torch.Tensor, crop_to_frame: torch.Tensor) -> torch.Tensor:
    """(B, P, 3) camera-frame points -> the head's output frame: minus point 0 (the wrist
    joint), x / y turned into the upright crop's axes, metres."""
    a = crop_to_frame[..., :2]
    rot = a / torch.sqrt(torch.det(a).abs())[:, None, None]  # crop axes -> frame axes
    rel = points - points[:, :1]
    xy = rel[..., :2] @ rot  # frame -> crop axes: R^T applied per row
    return torch.cat((xy, rel[..., 2:]), -1)


def crop_frame_to_camera_axes(points: torch.Tensor, crop_to_frame: torch.Tensor) -> torch.Tensor:
    """Inverse rotation of :func:`to_crop_frame` (no translation): crop axes -> camera axes."""
    a = crop_to_frame[..., :2]
    rot = a / torch.sqrt(torch.det(a).abs())[:, None, None]
    return torch.cat((points[..., :2] @ rot.transpose(1, 2), points[..., 2:]), -1)
