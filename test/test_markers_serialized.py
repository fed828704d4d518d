"""The fast serialized hand markers decode (real rclpy deserializer) to exactly what
rclpy's own serialization of :func:`hand_markers`' MarkerArray decodes to."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy")

from builtin_interfaces.msg import Time
from rclpy.serialization import deserialize_message, serialize_message
from visualization_msgs.msg import MarkerArray

from hand_pose_ros.nodes.markers import SerializedHandMarkers, hand_markers


@pytest.mark.parametrize("with_mesh", [True, False])
def test_serialized_markers_decode_to_the_built_message(with_mesh):
    rng = np.random.default_rng(1)
    faces = rng.integers(0, 50, (80, 3)) if with_mesh else None
    serializer = SerializedHandMarkers()
    for i in range(4):  # templates are reused: stamps and points must change every frame
        joints = rng.normal(size=(21, 3))
        verts = rng.normal(size=(50, 3)) if with_mesh else None
        kwargs = dict(stamp=Time(sec=100 + i, nanosec=7 * i), frame_id=f"cam{i % 2}",
                      track_id=2 + i % 2)  # fmt: skip
        fast = deserialize_message(serializer(joints, verts, faces, **kwargs), MarkerArray)
        built = hand_markers(joints, verts, faces, **kwargs)  # through rclpy (float32 colours)
        assert fast == deserialize_message(serialize_message(built), MarkerArray)
    assert len(serializer._templates) == 2  # one per layout (here: per frame id)


def test_missing_keypoints_travel_as_nan():
    joints = np.ones((21, 3))
    joints[4] = np.nan
    data = SerializedHandMarkers()(joints, None, None, stamp=Time(sec=1), frame_id="c")
    spheres = deserialize_message(data, MarkerArray).markers[1]
    assert np.isnan(spheres.points[4].x) and spheres.points[3].x == 1.0
