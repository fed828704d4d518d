"""RViz markers of a hand: mesh (triangle list), skeleton (line list), keypoints (spheres)."""

from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from hand_ik.keypoints import SKELETON_EDGES


def _points(array: np.ndarray) -> list[Point]:
    return [Point(x=float(x), y=float(y), z=float(z)) for x, y, z in array]


def hand_markers(joints: np.ndarray, vertices: np.ndarray | None, faces: np.ndarray | None, *,
                 stamp: Time, frame_id: str, namespace: str = "hand", track_id: int = 0,
                 lifetime_s: float = 0.5) -> MarkerArray:  # fmt: skip
    """Markers for one hand in ``frame_id`` (metres)."""
    markers = []

    def base(kind: int, sub: str, marker_id: int) -> Marker:
        m = Marker()
        m.header.stamp = stamp
        m.header.frame_id = frame_id
        m.ns = f"{namespace}/{sub}"
        m.id = marker_id
        m.type = kind
        m.action = Marker.ADD
        m.pose.orientation.w = 1.0
        m.lifetime.sec = int(lifetime_s)
        m.lifetime.nanosec = int((lifetime_s % 1) * 1e9)
        return m

    skeleton = base(Marker.LINE_LIST, "skeleton", track_id)
    skeleton.scale.x = 0.003
    skeleton.color = ColorRGBA(r=0.1, g=0.6, b=1.0, a=1.0)
    skeleton.points = _points(np.asarray(joints)[np.array(SKELETON_EDGES).reshape(-1)])
    markers.append(skeleton)
    spheres = base(Marker.SPHERE_LIST, "keypoints", track_id)
    spheres.scale.x = spheres.scale.y = spheres.scale.z = 0.008
    spheres.color = ColorRGBA(r=1.0, g=0.3, b=0.1, a=1.0)
    spheres.points = _points(joints)
    markers.append(spheres)
    if vertices is not None and faces is not None:
        mesh = base(Marker.TRIANGLE_LIST, "mesh", track_id)
        mesh.scale.x = mesh.scale.y = mesh.scale.z = 1.0
        mesh.color = ColorRGBA(r=0.95, g=0.75, b=0.6, a=0.8)
        mesh.points = _points(np.asarray(vertices)[np.asarray(faces).reshape(-1)])
        markers.append(mesh)
    return MarkerArray(markers=markers)
