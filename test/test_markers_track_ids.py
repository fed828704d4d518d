"""Serialized hand markers across hand tracks: the marker ids follow the track id, and
new track ids add no template (one per track grew the IK node by ~34 MB/h in the soak,
docs/reliability.md)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

pytest.importorskip("rclpy")

from builtin_interfaces.msg import Time
from rclpy.serialization import deserialize_message, serialize_message
from visualization_msgs.msg import MarkerArray

from hand_pose_ros.nodes.markers import MAX_TEMPLATES, SerializedHandMarkers, hand_markers

#: The hand model's mesh size (778 vertices, 1,534 faces): ~115 KB per template.
NUM_VERTICES, NUM_FACES = 778, 1534


def _hand(rng):
    return rng.normal(size=(21, 3)), rng.normal(size=(NUM_VERTICES, 3))


def test_marker_ids_follow_the_track_id_with_one_template():
    rng = np.random.default_rng(2)
    faces = rng.integers(0, NUM_VERTICES, (NUM_FACES, 3))
    serializer = SerializedHandMarkers()
    for i, track_id in enumerate([0, 7, 123456, 7, 2**31 - 1]):
        joints, verts = _hand(rng)
        kwargs = dict(stamp=Time(sec=10 + i, nanosec=3 * i), frame_id="camera",
                      track_id=track_id)  # fmt: skip
        fast = deserialize_message(serializer(joints, verts, faces, **kwargs), MarkerArray)
        built = hand_markers(joints, verts, faces, **kwargs)
        assert fast == deserialize_message(serialize_message(built), MarkerArray)
        assert [m.id for m in fast.markers] == [track_id] * 3
    assert len(serializer._templates) == 1


def test_new_track_ids_keep_no_memory():
    """200 new tracks: the old per-track templates kept ~23 MB; now nothing is kept."""
    rng = np.random.default_rng(3)
    faces = rng.integers(0, NUM_VERTICES, (NUM_FACES, 3))
    joints, verts = _hand(rng)
    serializer = SerializedHandMarkers()
    serializer(joints, verts, faces, stamp=Time(sec=1), frame_id="camera", track_id=0)
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for track_id in range(1, 201):
            serializer(joints, verts, faces, stamp=Time(sec=1), frame_id="camera",
                       track_id=track_id)  # fmt: skip
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    kept = sum(d.size_diff for d in after.compare_to(before, "filename"))
    assert kept < 1_000_000, f"{kept} bytes kept over 200 new track ids"


def test_layouts_beyond_the_bound_are_rebuilt_correctly():
    rng = np.random.default_rng(4)
    serializer = SerializedHandMarkers()
    for i in range(3 * MAX_TEMPLATES):
        joints = rng.normal(size=(21, 3))
        kwargs = dict(stamp=Time(sec=i), frame_id=f"cam{i % (2 * MAX_TEMPLATES)}", track_id=i)
        fast = deserialize_message(serializer(joints, None, None, **kwargs), MarkerArray)
        built = hand_markers(joints, None, None, **kwargs)
        assert fast == deserialize_message(serialize_message(built), MarkerArray)
        assert len(serializer._templates) <= MAX_TEMPLATES
