"""Shared test fixtures: repository paths, real-data paths, an isolated ROS 2 domain."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
REALDATA = SHARED / "realdata"

# Keep DDS discovery on this machine and away from other test runs: a random
# domain id per pytest session, inherited by the subprocesses tests start.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 100)))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


def realdata_path(*parts: str) -> Path:
    """Path under ../shared/realdata, or skip the test with the reason."""
    path = REALDATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} (../shared is absent outside CI)")
    return path


@pytest.fixture
def rclpy_context():
    """A fresh rclpy context, shut down after the test."""
    rclpy = pytest.importorskip("rclpy")
    context = rclpy.context.Context()
    rclpy.init(context=context)
    yield context
    if context.ok():
        rclpy.shutdown(context=context)
