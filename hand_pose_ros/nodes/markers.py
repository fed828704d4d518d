"""RViz markers of a hand: mesh (triangle list), skeleton (line list), keypoints (spheres).

Two hands per track can be shown on ``/hand/markers``: the IK's fitted hand (namespace
``hand``, :data:`FITTED_COLOURS`) and the estimator's own mesh when it gives one
(namespace ``estimated``, :data:`ESTIMATED_COLOURS`)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from hand_ik.keypoints import SKELETON_EDGES

#: Marker layouts (frame id, namespace, lifetime, sizes) whose serialized template is kept.
MAX_TEMPLATES = 8
#: A template: (CDR bytes, stamp offsets, marker id offsets, (offset, count) per point block).
_Template = tuple[bytes, list[int], list[int], list[tuple[int, int]]]


RGBA = tuple[float, float, float, float]


@dataclass(frozen=True)
class MarkerColours:
    """Colours (RGBA in [0, 1]) of one hand's markers."""

    skeleton: RGBA
    keypoints: RGBA
    mesh: RGBA


#: The IK's fitted hand: blue skeleton, orange keypoints, skin-coloured mesh.
FITTED_COLOURS = MarkerColours((0.1, 0.6, 1.0, 1.0), (1.0, 0.3, 0.1, 1.0), (0.95, 0.75, 0.6, 0.8))
#: The estimator's own hand (handtrack_mesh): green, more transparent.
ESTIMATED_COLOURS = MarkerColours((0.2, 0.8, 0.3, 1.0), (0.1, 0.6, 0.2, 1.0),
                                  (0.3, 0.85, 0.45, 0.5))  # fmt: skip
#: Marker namespaces (prefixes) of the two hands.
FITTED_NAMESPACE, ESTIMATED_NAMESPACE = "hand", "estimated"
#: The estimator's hand beside the fitted one: joints (21, 3) and vertices (V, 3), metres.
EstimatedHand = tuple[np.ndarray, np.ndarray]


def _points(array: np.ndarray) -> list[Point]:
    return [Point(x=float(x), y=float(y), z=float(z)) for x, y, z in array]


def hand_markers(joints: np.ndarray, vertices: np.ndarray | None, faces: np.ndarray | None, *,
                 stamp: Time, frame_id: str, namespace: str = FITTED_NAMESPACE,
                 track_id: int = 0, lifetime_s: float = 0.5,
                 colours: MarkerColours = FITTED_COLOURS,
                 estimated: EstimatedHand | None = None) -> MarkerArray:  # fmt: skip
    """Markers for one hand in ``frame_id`` (metres): skeleton, keypoints and (with
    ``vertices`` and ``faces``) mesh under ``namespace/``; with ``estimated`` (joints
    (21, 3), vertices (V, 3), same faces) also the estimator's hand under
    ``estimated/`` in :data:`ESTIMATED_COLOURS`, in the same array (a depth-1 subscriber
    gets both)."""
    layers = [(joints, vertices, namespace, colours)]
    if estimated is not None:
        layers.append((*estimated, ESTIMATED_NAMESPACE, ESTIMATED_COLOURS))
    markers = []
    for layer_joints, layer_vertices, layer_ns, layer_colours in layers:
        markers += _layer_markers(layer_joints, layer_vertices, faces, stamp, frame_id,
                                  layer_ns, track_id, lifetime_s, layer_colours)  # fmt: skip
    return MarkerArray(markers=markers)


def _layer_markers(joints, vertices, faces, stamp, frame_id, namespace, track_id, lifetime_s,
                   colours: MarkerColours) -> list[Marker]:  # fmt: skip
    """Skeleton, keypoints and (with vertices and faces) mesh markers of one hand."""
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
    skeleton.color = _colour(colours.skeleton)
    skeleton.points = _points(np.asarray(joints)[np.array(SKELETON_EDGES).reshape(-1)])
    markers.append(skeleton)
    spheres = base(Marker.SPHERE_LIST, "keypoints", track_id)
    spheres.scale.x = spheres.scale.y = spheres.scale.z = 0.008
    spheres.color = _colour(colours.keypoints)
    spheres.points = _points(joints)
    markers.append(spheres)
    if vertices is not None and faces is not None:
        mesh = base(Marker.TRIANGLE_LIST, "mesh", track_id)
        mesh.scale.x = mesh.scale.y = mesh.scale.z = 1.0
        mesh.color = _colour(colours.mesh)
        mesh.points = _points(np.asarray(vertices)[np.asarray(faces).reshape(-1)])
        markers.append(mesh)
    return markers


def _colour(rgba: RGBA) -> ColorRGBA:
    r, g, b, a = (float(c) for c in rgba)
    return ColorRGBA(r=r, g=g, b=b, a=a)


class SerializedHandMarkers:
    """:func:`hand_markers` as serialized CDR bytes, built in well under a millisecond.

    Converting a mesh marker (thousands of ``geometry_msgs/Point`` objects) to a ROS
    message costs about 50 ms per frame in rclpy (Python object per point, then C
    conversion): more than the whole estimator. The CDR layout of a MarkerArray is fixed
    once its strings and sequence lengths are, so this serializes one template message
    per layout (frame id, namespace, lifetime, sizes) with rclpy and, per frame, writes
    the new stamps, marker ids (the track id) and coordinates into a copy of it with
    numpy. The bytes go straight to ``Publisher.publish``, which accepts serialized
    messages. The track id is not part of the layout: a template per track (~115 KB
    with the hand mesh) grew the IK node by ~34 MB/h as tracks came and went. The
    colours and an estimated hand beside the fitted one are (a few layouts). At most
    ``MAX_TEMPLATES`` layouts are kept (the least recently used is dropped).
    """

    _SEC, _NANOSEC = 0x5EC0AB1E, 0x1ABE11ED  # template stamp, found back in the bytes
    _ID = 0x1D5EED01  # template marker id (int32), found back in the bytes

    def __init__(self) -> None:
        self._templates: OrderedDict[tuple, _Template] = OrderedDict()

    def __call__(self, joints: np.ndarray, vertices: np.ndarray | None,
                 faces: np.ndarray | None, *, stamp: Time, frame_id: str,
                 namespace: str = FITTED_NAMESPACE, track_id: int = 0,
                 lifetime_s: float = 0.5, colours: MarkerColours = FITTED_COLOURS,
                 estimated: EstimatedHand | None = None) -> bytes:  # fmt: skip
        """Same arguments as :func:`hand_markers`; returns the serialized MarkerArray."""
        blocks = self._point_blocks(joints, vertices, faces, estimated)
        key = (frame_id, namespace, lifetime_s, colours, estimated is not None,
               tuple(len(b) for b in blocks))  # fmt: skip
        if key in self._templates:
            self._templates.move_to_end(key)
        else:
            self._templates[key] = self._template(joints, vertices, faces, frame_id, namespace,
                                                  lifetime_s, colours, estimated)  # fmt: skip
            if len(self._templates) > MAX_TEMPLATES:
                self._templates.popitem(last=False)
        template, stamp_offsets, id_offsets, point_offsets = self._templates[key]
        buf = bytearray(template)
        stamp_bytes = np.array([stamp.sec], "<i4").tobytes() + \
            np.array([stamp.nanosec], "<u4").tobytes()  # fmt: skip
        for off in stamp_offsets:
            buf[off:off + 8] = stamp_bytes
        id_bytes = np.array([track_id], "<i4").tobytes()
        for off in id_offsets:
            buf[off:off + 4] = id_bytes
        for (off, n), block in zip(point_offsets, blocks, strict=True):
            np.frombuffer(buf, "<f8", 3 * n, off)[:] = block.reshape(-1)
        return bytes(buf)

    @staticmethod
    def _point_blocks(joints, vertices, faces, estimated=None) -> list[np.ndarray]:
        """Point arrays in message order (skeleton, keypoints, mesh; then the estimated
        hand's), as float64."""
        blocks = []
        for j, v in [(joints, vertices)] + ([] if estimated is None else [estimated]):
            j = np.asarray(j, np.float64)
            blocks += [j[np.array(SKELETON_EDGES).reshape(-1)], j]
            if v is not None and faces is not None:
                blocks.append(np.asarray(v, np.float64)[np.asarray(faces).reshape(-1)])
        return blocks

    def _template(self, joints, vertices, faces, frame_id, namespace, lifetime_s,
                  colours, estimated) -> _Template:  # fmt: skip
        from rclpy.serialization import serialize_message

        # Distinct, exactly representable values mark where each point block lies.
        def marked(array, offset: float, sign: float) -> np.ndarray | None:
            if array is None:
                return None
            return offset + sign * np.arange(np.asarray(array).size,
                                             dtype=np.float64).reshape(np.shape(array))

        marked_joints = marked(joints, 1000.0, 1.0)
        marked_vertices = marked(vertices if faces is not None else None, -1000.0, -1.0)
        marked_estimated = None
        if estimated is not None:
            marked_estimated = (marked(estimated[0], 1e5, 1.0),
                                marked(estimated[1] if faces is not None else None, -1e5, -1.0))
        stamp = Time(sec=self._SEC, nanosec=self._NANOSEC)
        msg = hand_markers(marked_joints, marked_vertices, faces, stamp=stamp,
                           frame_id=frame_id, namespace=namespace, track_id=self._ID,
                           lifetime_s=lifetime_s, colours=colours,
                           estimated=marked_estimated)  # fmt: skip
        data = serialize_message(msg)
        if data[:2] != b"\x00\x01":
            raise RuntimeError("expected little-endian CDR from rclpy's serializer")
        stamp_key = np.array([self._SEC], "<i4").tobytes() + \
            np.array([self._NANOSEC], "<u4").tobytes()  # fmt: skip
        stamp_offsets = _find_all(data, stamp_key)
        point_offsets = []
        start = 0
        for block in self._point_blocks(marked_joints, marked_vertices, faces,
                                        marked_estimated):  # fmt: skip
            raw = block.astype("<f8").tobytes()
            off = data.find(raw, start)
            if off < 0:
                raise RuntimeError("marker template: point block not found")
            point_offsets.append((off, len(block)))
            start = off + len(raw)
        if len(stamp_offsets) != len(msg.markers):
            raise RuntimeError("marker template: stamps not found")
        id_offsets = _find_all(data, np.array([self._ID], "<i4").tobytes())
        if len(id_offsets) != len(msg.markers):
            raise RuntimeError("marker template: marker ids not found")
        return data, stamp_offsets, id_offsets, point_offsets


def _find_all(data: bytes, key: bytes) -> list[int]:
    out, start = [], 0
    while (off := data.find(key, start)) >= 0:
        out.append(off)
        start = off + 1
    return out
