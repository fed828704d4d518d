"""``bench ik_tracks``: registered, and refuses bad arguments before starting a node."""

from __future__ import annotations

import argparse

import pytest

from hand_pose_ros.benchmarks import ik_tracks


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    ik_tracks.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_ik_tracks_is_a_registered_bench():
    from hand_pose_ros.cli.bench import BENCHMARKS

    assert BENCHMARKS["ik_tracks"] == "hand_pose_ros.benchmarks.ik_tracks"


@pytest.mark.parametrize("argv", [("--tracks", "0"), ("--per-track", "0"),
                                  ("--warmup-tracks", "-1")])  # fmt: skip
def test_bad_counts_are_refused(argv):
    with pytest.raises(ValueError, match="--tracks"):
        ik_tracks.run(_args(*argv))
