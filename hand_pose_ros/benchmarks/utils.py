"""Helpers shared by the benchmarks: machine description and timing statistics."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable

import numpy as np


def machine_info() -> dict:
    """Describe the machine a benchmark ran on (CPU, cores, library versions)."""
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        pass
    return info


def time_calls(fn: Callable[[], object], *, repeats: int, warmup: int = 3) -> np.ndarray:
    """Wall-clock milliseconds of ``repeats`` calls of ``fn`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = np.empty(repeats)
    for i in range(repeats):
        start = time.perf_counter()
        fn()
        times[i] = (time.perf_counter() - start) * 1e3
    return times


def timing_row(times_ms: np.ndarray, prefix: str = "ms_per_frame") -> dict:
    """Mean, median, p90 and p95 of a timing sample, keys carrying the unit."""
    return {
        f"{prefix}_mean": float(np.mean(times_ms)),
        f"{prefix}_median": float(np.median(times_ms)),
        f"{prefix}_p90": float(np.percentile(times_ms, 90)),
        f"{prefix}_p95": float(np.percentile(times_ms, 95)),
    }
