"""Lixel (1D heatmap) maths: soft-argmax, peak confidence, Gaussian 3D joint heatmaps, and
the conversion between lixel coordinates and crop pixels / root-relative depth.

Conventions (one place): a model input of S px has ``D = S / 4`` bins per axis.
x, y bin ``i`` is centred on input pixel ``(i + 0.5) * S / D - 0.5`` (pixel centres at
integer coordinates). z bin ``i`` is centred on root-relative depth
``((i + 0.5) / D * 2 - 1) * depth_range`` metres (camera z, positive away from the camera).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_argmax_1d(heatmap: torch.Tensor, radius: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Expected bin and peak mass of 1D heatmaps.

    Args:
        heatmap: (..., D) logits.
        radius: half width (bins) of the window around the expectation whose
            probability mass is returned as confidence.

    Returns:
        coord: (...,) expected bin index in [0, D-1].
        mass: (...,) softmax mass within ``radius`` bins of ``coord``, in [0, 1]
            (1: a sharp peak; ~(2 radius + 1) / D: a flat heatmap).
    """
    prob = F.softmax(heatmap, dim=-1)
    idx = torch.arange(heatmap.shape[-1], dtype=heatmap.dtype, device=heatmap.device)
    coord = (prob * idx).sum(-1)
    near = ((idx - coord.unsqueeze(-1)).abs() <= radius).to(prob.dtype)
    return coord, (prob * near).sum(-1)


def gaussian_heatmap_3d(coords: torch.Tensor, bins: int, sigma: float) -> torch.Tensor:
    """Gaussian 3D heatmaps of lixel coordinates (I2L MeshNet ``make_gaussian_heatmap``).

    Args:
        coords: (B, J, 3) lixel x, y, z in bins.
        bins: D, the heatmap side.
        sigma: Gaussian std in bins.

    Returns:
        (B, J, D, D, D) heatmaps indexed [z, y, x], peak value 1.
    """
    grid = torch.arange(bins, dtype=coords.dtype, device=coords.device)
    gx = torch.exp(-0.5 * ((grid - coords[..., 0:1]) / sigma) ** 2)  # (B,J,D)
    gy = torch.exp(-0.5 * ((grid - coords[..., 1:2]) / sigma) ** 2)
    gz = torch.exp(-0.5 * ((grid - coords[..., 2:3]) / sigma) ** 2)
    # Separable: exp(a+b+c) = exp(a) exp(b) exp(c); broadcast to (B,J,Dz,Dy,Dx).
    return gz[..., :, None, None] * gy[..., None, :, None] * gx[..., None, None, :]


def lixel_to_input_pixels(xy: torch.Tensor, input_size: int, bins: int) -> torch.Tensor:
    """(..., 2) lixel x, y -> model-input pixel coordinates (same shape)."""
    stride = input_size / bins
    return (xy + 0.5) * stride - 0.5


def input_pixels_to_lixel(uv: torch.Tensor, input_size: int, bins: int) -> torch.Tensor:
    """(..., 2) model-input pixel coordinates -> lixel x, y (inverse of the above)."""
    stride = input_size / bins
    return (uv + 0.5) / stride - 0.5


def lixel_to_depth(z: torch.Tensor, bins: int, depth_range: float) -> torch.Tensor:
    """(...,) lixel z -> root-relative depth in metres."""
    return ((z + 0.5) / bins * 2.0 - 1.0) * depth_range


def depth_to_lixel(depth: torch.Tensor, bins: int, depth_range: float) -> torch.Tensor:
    """(...,) root-relative depth in metres -> lixel z (inverse of the above)."""
    return (depth / depth_range + 1.0) * 0.5 * bins - 0.5
