"""The soak benchmark's bookkeeping: memory reading, RSS slope, per-minute rows."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from hand_pose_ros.benchmarks.soak import SOAK_NODES, _rows, rss_mb, rss_slope_mb_per_h


def test_rss_of_this_process_and_of_an_ended_one():
    assert 10.0 < rss_mb(os.getpid()) < 24_000.0
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert rss_mb(proc.pid) is None


def test_rss_slope_in_mb_per_hour():
    t = np.arange(0.0, 600.0, 5.0)
    assert rss_slope_mb_per_h(list(t), list(100.0 + t / 3600.0 * 12.0)) == pytest.approx(12.0)
    assert rss_slope_mb_per_h([0.0, 1.0], [1.0, 2.0]) is None


def test_minute_rows_and_summary():
    class Proc:
        def __init__(self, code):
            self.code = code

        def poll(self):
            return self.code

    start = 1000.0
    commands = list(start + np.arange(0.0, 120.0, 1 / 30))  # 30 Hz, both minutes
    states = [(t, 40.0) for t in commands[::2]]  # every other frame made a hand state
    images = list(start + np.arange(0.0, 120.0, 1 / 30))
    samples = {"ik_node": [(t, 300.0 + t / 60.0) for t in np.arange(0.0, 120.0, 5.0)]}
    rows = _rows(start, start + 120.0, commands, states, images, samples,
                 {"ik_node": Proc(None), "retarget_node": Proc(-9)})  # fmt: skip
    first, second, summary = rows
    assert first["name"] == "minute_1" and first["command_rate_hz"] == pytest.approx(30.0)
    assert first["hand_states"] == 900 and first["images_without_state"] == 900
    assert first["latency_image_to_state_ms_p50"] == 40.0
    assert second["rss_mb_ik_node"] == pytest.approx(301.92, abs=0.1)
    assert summary["node_deaths"] == 1
    assert summary["rss_slope_mb_per_h_ik_node"] == pytest.approx(60.0)
    assert summary["command_rate_max_minute_change"] == pytest.approx(0.0, abs=1e-3)


def test_soak_graph_names_real_node_modules():
    import importlib

    for name, _ in SOAK_NODES:
        assert hasattr(importlib.import_module(f"hand_pose_ros.nodes.{name}"), "main")


def test_soak_is_a_registered_bench():
    from hand_pose_ros.cli.bench import BENCHMARKS

    assert BENCHMARKS["soak"] == "hand_pose_ros.benchmarks.soak"
