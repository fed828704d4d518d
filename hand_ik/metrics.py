"""Pose and mesh accuracy metrics used across the papers (numpy, batch first)."""

from __future__ import annotations

import numpy as np


def procrustes_align(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Align ``pred`` to ``target`` with the best similarity transform (scale, rotation, shift).

    Args:
        pred: (N, K, 3) points.
        target: (N, K, 3) points.

    Returns:
        (N, K, 3) ``pred`` after alignment (Umeyama 1991; reflections excluded).
    """
    pred = np.asarray(pred, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    mu_p = pred.mean(axis=1, keepdims=True)
    mu_t = target.mean(axis=1, keepdims=True)
    p, t = pred - mu_p, target - mu_t
    cov = np.einsum("nki,nkj->nij", t, p)
    u, s, vt = np.linalg.svd(cov)
    # Flip the last axis where the best rotation would be a reflection.
    d = np.sign(np.linalg.det(u @ vt))
    s = s.copy()
    s[:, -1] *= d
    u = u.copy()
    u[:, :, -1] *= d[:, None]
    rot = u @ vt
    var_p = (p**2).sum(axis=(1, 2))
    # A degenerate prediction (all points equal) has zero variance: keep scale 1.
    scale = np.where(var_p > 0, s.sum(axis=1) / np.maximum(var_p, 1e-30), 1.0)
    return scale[:, None, None] * np.einsum("nij,nkj->nki", rot, p) + mu_t


def mpjpe(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-sample mean Euclidean distance (N,), same units as the input."""
    return np.linalg.norm(np.asarray(pred) - np.asarray(target), axis=-1).mean(axis=-1)


def pa_mpjpe(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-sample mean distance after Procrustes alignment (N,)."""
    return mpjpe(procrustes_align(pred, target), target)


def root_relative_mpjpe(pred: np.ndarray, target: np.ndarray, root: int = 0) -> np.ndarray:
    """Per-sample mean distance after subtracting each set's root point (N,)."""
    pred = np.asarray(pred)
    target = np.asarray(target)
    return mpjpe(pred - pred[:, root : root + 1], target - target[:, root : root + 1])


def f_score(pred: np.ndarray, target: np.ndarray, threshold: float) -> np.ndarray:
    """Per-sample F-score of two point sets at a distance threshold (FreiHAND protocol).

    Precision: share of predicted points within ``threshold`` of some target point;
    recall: the converse; F = 2PR / (P + R). Inputs (N, K, 3) and (N, M, 3).
    """
    pred = np.asarray(pred, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    out = np.empty(len(pred))
    for i in range(len(pred)):
        dist = np.linalg.norm(pred[i][:, None] - target[i][None], axis=-1)
        precision = (dist.min(axis=1) < threshold).mean()
        recall = (dist.min(axis=0) < threshold).mean()
        out[i] = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return out


def pck(pred_2d: np.ndarray, target_2d: np.ndarray, thresholds, normalizer) -> dict[float, float]:
    """Percentage of correct 2D keypoints at normalised thresholds.

    Args:
        pred_2d, target_2d: (N, K, 2) pixels.
        thresholds: iterable of fractions (e.g. 0.04 .. 0.12).
        normalizer: (N,) or scalar pixel length the thresholds are fractions of
            (crop or box size).
    """
    dist = np.linalg.norm(np.asarray(pred_2d) - np.asarray(target_2d), axis=-1)
    norm = np.broadcast_to(np.asarray(normalizer, dtype=np.float64), (dist.shape[0],))
    rel = dist / norm[:, None]
    return {float(t): float((rel <= t).mean()) for t in thresholds}


def auc(pred_2d: np.ndarray, target_2d: np.ndarray, normalizer, max_threshold: float = 0.12,
        steps: int = 100) -> float:
    """Area under the PCK curve on [0, max_threshold], normalised to [0, 1]."""
    thresholds = np.linspace(0.0, max_threshold, steps + 1)
    values = np.array(list(pck(pred_2d, target_2d, thresholds, normalizer).values()))
    return float(np.trapezoid(values, thresholds) / max_threshold)
