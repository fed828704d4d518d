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


# Hypothesis profiles for the fuzz tests (test_fuzz_*.py): "ci", the default, keeps the
# whole fuzz suite well under a minute; HYPOTHESIS_PROFILE=nightly runs 25x more examples.
NIGHTLY_FACTOR = 25
try:
    from hypothesis import HealthCheck, settings
except ImportError:  # the fuzz tests skip themselves without hypothesis
    pass
else:
    settings.register_profile("ci", max_examples=40, deadline=None, derandomize=True,
                              suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
    settings.register_profile("nightly", max_examples=40 * NIGHTLY_FACTOR, deadline=None,
                              suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def fuzz_examples(ci: int) -> int:
    """Examples for an expensive property: ``ci`` in the ci profile, 25x that in nightly."""
    return ci * NIGHTLY_FACTOR if os.environ.get("HYPOTHESIS_PROFILE") == "nightly" else ci


def realdata_path(*parts: str) -> Path:
    """Path under ../shared/realdata, or skip the test with the reason."""
    path = REALDATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} (../shared is absent outside CI)")
    return path


def spin_until(executor, seconds: float, until=None) -> None:
    """Spin ``executor`` for up to ``seconds``, returning early once ``until()`` is true."""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.02)
        if until is not None and until():
            return


@pytest.fixture
def rclpy_context():
    """A fresh rclpy context, shut down after the test."""
    rclpy = pytest.importorskip("rclpy")
    context = rclpy.context.Context()
    rclpy.init(context=context)
    yield context
    if context.ok():
        rclpy.shutdown(context=context)


def _render_synth(tmp_path_factory, folder: str, count: int, seed: int, shard_size: int,
                  source=None, **config):
    """A synthetic dataset (``SynthConfig(**config)``; ``source``: a hand source object)
    rendered into a fresh temp folder; skips without headless OpenGL."""
    pytest.importorskip("moderngl")
    from hand_pose_ros.research.synth.dataset import generate_dataset
    from hand_pose_ros.research.synth.generator import SynthConfig
    from hand_pose_ros.research.synth.gl_renderer import create_egl_context

    try:
        create_egl_context().release()
    except RuntimeError as exc:
        pytest.skip(f"no headless OpenGL: {exc}")
    out = tmp_path_factory.mktemp(folder) / config["kind"]
    generate_dataset(out, SynthConfig(**config), count=count, seed=seed, workers=0,
                     shard_size=shard_size, masks=False, progress=False,
                     **({"hand_source": source} if source is not None else {}))  # fmt: skip
    return out


@pytest.fixture(scope="session")
def detection_frames_dir(tmp_path_factory):
    """A tiny synthetic frames set (procedural stand-in hand, 160 x 120, no masks)."""
    from hand_pose_ros.research.synth.hand_source import StandinHandSource

    return _render_synth(tmp_path_factory, "det", 12, 0, 6, source=StandinHandSource(),
                         kind="frames", num_skin_textures=2, texture_size=128,
                         frame_size=(160, 120), hand_source="standin")  # fmt: skip


def _two_hand_frames(tmp_path_factory, folder: str, count: int,
                     frame_distance: tuple[float, float]):
    """``count`` 320 x 240 frames with two hands each (our open hand model), ``frame_distance``
    metres from the camera, from the test seed range (never trained on)."""
    return _render_synth(tmp_path_factory, folder, count, 1234567, count, kind="frames",
                         num_skin_textures=2, texture_size=256, frame_size=(320, 240),
                         hand_source="open", hand_count_probs=(0.0, 0.0, 1.0),
                         frame_distance=frame_distance)  # fmt: skip


@pytest.fixture(scope="session")
def open_hand_frames_dir(tmp_path_factory):
    """Six 320 x 240 synthetic frames with two hands each (our open hand model), drawn from
    the test seed range (never trained on); for checks of the shipped detector."""
    return _two_hand_frames(tmp_path_factory, "det_open", 6, (0.35, 0.6))


@pytest.fixture(scope="session")
def two_hand_frames_dir(tmp_path_factory):
    """Forty-eight 320 x 240 synthetic frames with two hands each, 0.5-0.9 m from the camera
    (our open hand model), from the test seed range; for two-hand checks of the shipped
    detector."""
    return _two_hand_frames(tmp_path_factory, "det_two", 48, (0.5, 0.9))


@pytest.fixture(scope="session")
def probe_crops_dir(tmp_path_factory):
    """96 synthetic crops from the test seed range (never trained on), the shipped synth
    config: the handedness probe's accuracy."""
    return _render_synth(tmp_path_factory, "crops_probe", 96, 1500000, 96, kind="crops")


@pytest.fixture(scope="session")
def open_hand_crops_dir(tmp_path_factory):
    """Twenty-four 256 x 256 synthetic crops of our open hand model, left and right, from
    the test seed range (never trained on); for the handedness classifier."""
    return _render_synth(tmp_path_factory, "crops_open", 24, 1234567, 24, kind="crops",
                         num_skin_textures=2, texture_size=256, hand_source="open")
