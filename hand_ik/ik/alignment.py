"""Closed-form rigid alignment (Kabsch) of point sets, batched torch and numpy."""

from __future__ import annotations

import numpy as np
import torch


def rigid_align(
    source: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotation and translation with ``target ~= source @ R.T + t`` (least squares).

    Args:
        source: (B, K, 3) points.
        target: (B, K, 3) points.
        weights: (B, K) non-negative weights (0 drops a point), or None.

    Returns:
        rotation (B, 3, 3) (proper: det +1) and translation (B, 3).
    """
    if weights is None:
        weights = source.new_ones(source.shape[:2])
    w = weights / weights.sum(-1, keepdim=True).clamp_min(1e-12)
    mu_s = (w[..., None] * source).sum(1)
    mu_t = (w[..., None] * target).sum(1)
    s = source - mu_s[:, None]
    t = target - mu_t[:, None]
    cov = torch.einsum("bk,bki,bkj->bij", w, t, s)
    u, _, vh = torch.linalg.svd(cov)
    # Flip the last axis where the optimum would be a reflection.
    d = torch.sign(torch.linalg.det(u @ vh))
    d = torch.where(d == 0, torch.ones_like(d), d)
    u = torch.cat([u[..., :2], u[..., 2:] * d[:, None, None]], dim=-1)
    rotation = u @ vh
    translation = mu_t - (rotation @ mu_s[..., None])[..., 0]
    return rotation, translation


def rigid_align_np(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`rigid_align` (equal weights) in numpy: ``target ~= source @ R.T + t``.

    Args:
        source, target: (B, K, 3) points.

    Returns:
        rotation (B, 3, 3) (proper: det +1) and translation (B, 3).
    """
    if source.shape[0] == 1:  # the per-frame case
        rotation, translation = _rigid_align_one(source[0], target[0])
        return rotation[None], translation[None]
    inv_k = 1.0 / source.shape[1]
    mu_s, mu_t = source.sum(1) * inv_k, target.sum(1) * inv_k
    cov = (target - mu_t[:, None]).transpose(0, 2, 1) @ (source - mu_s[:, None]) * inv_k
    u, _, vh = np.linalg.svd(cov)
    # Flip the last axis where the optimum would be a reflection (det 0 counts as +1).
    flip = np.linalg.det(u @ vh) < 0
    u[flip, :, 2] *= -1.0
    rotation = u @ vh
    translation = mu_t - (rotation @ mu_s[..., None])[..., 0]
    return rotation, translation


def _rigid_align_one(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`rigid_align_np` of one point set ((K, 3) each) without the batch axis (fewer,
    cheaper numpy calls; the determinant in Python floats): (3, 3), (3,)."""
    inv_k = 1.0 / len(source)
    mu_s, mu_t = source.sum(0) * inv_k, target.sum(0) * inv_k
    u, _, vh = np.linalg.svd((target - mu_t).T @ (source - mu_s) * inv_k)
    rotation = u @ vh
    (a, b, c), (d, e, f), (g, h, i) = rotation.tolist()
    if a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g) < 0:
        u[:, 2] *= -1.0  # the optimum would be a reflection: flip the last axis
        rotation = u @ vh
    return rotation, mu_t - rotation @ mu_s
