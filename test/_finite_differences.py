"""Central finite differences, the reference for the closed-form Jacobians in the tests."""

from __future__ import annotations

import numpy as np


def central_differences(fn, x0: np.ndarray, step: float = 1e-6) -> np.ndarray:
    """(B, M) outputs of fn (B, P) -> (B, M, P)."""
    cols = []
    for i in range(x0.shape[-1]):
        plus, minus = x0.copy(), x0.copy()
        plus[:, i] += step
        minus[:, i] -= step
        cols.append((fn(plus) - fn(minus)).reshape(len(x0), -1) / (2 * step))
    return np.stack(cols, axis=-1)
