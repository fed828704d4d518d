"""McapRecorder: real rclpy messages written to MCAP and read back two ways."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("rclpy")

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point
from hand_pose_ros.msg import HandKeypoints
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from hand_pose_ros.io.mcap_recorder import (
    McapRecorder,
    find_interface_file,
    full_message_definition,
    message_type_name,
    read_messages,
)

T0 = 1_763_780_000_000_000_000  # ns since the epoch


def header(i: int, frame: str = "camera_optical_frame") -> Header:
    return Header(stamp=Time(sec=1_763_780_000 + i, nanosec=1000 * i), frame_id=frame)


def joint_state(i: int) -> JointState:
    return JointState(
        header=header(i, ""),
        name=["FFJ4", "FFJ3", "THJ1"],
        position=[0.125 * i, -0.5, 1.0 / 3.0],
        velocity=[],
        effort=[],
    )


def hand_keypoints(i: int) -> HandKeypoints:
    msg = HandKeypoints(header=header(i), handedness="left", track_id=7, score=0.875)
    # float32 fields hold values exactly representable in float32, so == holds after CDR.
    msg.image_points = [Point(x=10.0 * k, y=20.5 + k, z=0.0) for k in range(21)]
    msg.camera_points = [Point(x=0.01 * k, y=-0.02 * k, z=0.5) for k in range(21)]
    msg.confidence = np.linspace(0.0, 1.0, 21, dtype=np.float32)
    return msg


def marker_array(i: int) -> MarkerArray:
    line = Marker(
        header=header(i), ns="skeleton", id=1, type=Marker.LINE_LIST, action=Marker.ADD,
        points=[Point(x=0.1 * k, y=0.0, z=0.4) for k in range(6)],
        colors=[ColorRGBA(r=1.0, g=0.5, b=0.25, a=1.0)] * 6,
    )  # fmt: skip
    line.scale.x = 0.005
    line.pose.orientation.w = 1.0
    mesh = Marker(header=header(i), ns="mesh", id=2, type=Marker.TRIANGLE_LIST, text="hand")
    mesh.points = [Point(x=float(k), y=float(k % 2), z=1.0) for k in range(9)]
    return MarkerArray(markers=[line, mesh])


def diagnostics(i: int) -> DiagnosticArray:
    status = DiagnosticStatus(
        level=DiagnosticStatus.WARN, name="hand_teleop: estimator", message="hand lost",
        hardware_id="cpu", values=[KeyValue(key="latency_ms", value=f"{12.5 + i}")],
    )  # fmt: skip
    return DiagnosticArray(header=header(i), status=[status])


def image(i: int) -> Image:
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) + i
    return Image(
        header=header(i), height=2, width=3, encoding="rgb8", is_bigendian=0, step=9,
        data=rgb.tobytes(),
    )  # fmt: skip


MAKERS = {
    "/hand/joint_states": joint_state,
    "/hand/keypoints": hand_keypoints,
    "/hand/markers": marker_array,
    "/diagnostics": diagnostics,
    "/camera/image_raw": image,
}


@pytest.fixture
def recording(tmp_path: Path) -> tuple[Path, list[tuple[str, Any, int]]]:
    """Three rounds of every message type, interleaved, with increasing stamps."""
    written = []
    for i in range(3):
        for k, (topic, make) in enumerate(MAKERS.items()):
            written.append((topic, make(i), T0 + i * 33_000_000 + k * 1_000))
    path = tmp_path / "out" / "run.mcap"
    with McapRecorder(path) as rec:
        for topic, msg, stamp in written:
            rec.write(topic, msg, stamp)
    assert rec.message_count == len(written)
    return path, written


def test_round_trip_with_rclpy(recording) -> None:
    path, written = recording
    read = list(read_messages(path))
    assert [(m.topic, m.stamp_ns) for m in read] == [(t, s) for t, _, s in written]
    for got, (_, msg, _) in zip(read, written, strict=True):
        assert type(got.msg) is type(msg)
        assert got.msg == msg
        assert got.type_name == message_type_name(msg)
    only = list(read_messages(path, topics=["/hand/joint_states"]))
    assert [m.msg for m in only] == [msg for t, msg, _ in written if t == "/hand/joint_states"]


def assert_same_fields(decoded: Any, msg: Any, where: str = "") -> None:
    """Compare an mcap_ros2 (schema-decoded) message with the rclpy original, recursively."""
    for name, kind in msg.get_fields_and_field_types().items():
        a, b = getattr(decoded, name), getattr(msg, name)
        here = f"{where}.{name}"
        if kind == "octet":  # rclpy holds a ROS `byte` as bytes of length 1
            assert a == b[0], here
        elif hasattr(b, "get_fields_and_field_types"):
            assert_same_fields(a, b, here)
        elif isinstance(b, list | tuple) and b and hasattr(b[0], "get_fields_and_field_types"):
            assert len(a) == len(b), here
            for k, (x, y) in enumerate(zip(a, b, strict=True)):
                assert_same_fields(x, y, f"{here}[{k}]")
        elif isinstance(b, str | int | float | bool):
            assert a == b, here
        else:  # numeric / string sequences: numpy arrays, array.array, bytes, lists
            np.testing.assert_array_equal(np.asarray(list(a)), np.asarray(list(b)), err_msg=here)


def test_schemas_decode_without_the_message_classes(recording) -> None:
    """mcap_ros2 decodes from the stored ros2msg definitions only: they are complete."""
    path, written = recording
    with open(path, "rb") as stream:
        reader = make_reader(stream, decoder_factories=[DecoderFactory()])
        decoded = list(reader.iter_decoded_messages(log_time_order=True))
    assert len(decoded) == len(written)
    for (schema, channel, message, ros_msg), (topic, msg, stamp) in zip(
        decoded, written, strict=True
    ):
        assert channel.topic == topic
        assert message.log_time == stamp and message.publish_time == stamp
        assert schema.name == message_type_name(msg)
        assert_same_fields(ros_msg, msg, topic)


def test_file_follows_the_ros2_profile(recording) -> None:
    path, written = recording
    with open(path, "rb") as stream:
        reader = make_reader(stream)
        assert reader.get_header().profile == "ros2"
        summary = reader.get_summary()
    assert summary.statistics.message_count == len(written)
    assert summary.statistics.message_start_time == written[0][2]
    assert summary.statistics.message_end_time == written[-1][2]
    schemas = {s.name: s for s in summary.schemas.values()}
    assert set(schemas) == {
        "sensor_msgs/msg/JointState", "hand_pose_ros/msg/HandKeypoints",
        "visualization_msgs/msg/MarkerArray", "diagnostic_msgs/msg/DiagnosticArray",
        "sensor_msgs/msg/Image",
    }  # fmt: skip
    assert {s.encoding for s in schemas.values()} == {"ros2msg"}
    channels = {c.topic: c for c in summary.channels.values()}
    assert set(channels) == set(MAKERS)
    for channel in channels.values():
        assert channel.message_encoding == "cdr"
        assert "offered_qos_profiles" in channel.metadata
    counts = summary.statistics.channel_message_counts
    assert all(counts[c.id] == 3 for c in channels.values())
    # The JointState definition is the rosbag2 concatenation, depth first.
    expected = (
        find_interface_file("sensor_msgs/msg/JointState").read_text()
        + "\n" + "=" * 80 + "\nMSG: std_msgs/Header\n"
        + find_interface_file("std_msgs/msg/Header").read_text()
        + "\n" + "=" * 80 + "\nMSG: builtin_interfaces/Time\n"
        + find_interface_file("builtin_interfaces/msg/Time").read_text()
    )  # fmt: skip
    assert schemas["sensor_msgs/msg/JointState"].data.decode() == expected


def test_nested_definitions_are_complete_and_unique() -> None:
    text = full_message_definition("visualization_msgs/msg/MarkerArray")
    names = [line[5:] for line in text.splitlines() if line.startswith("MSG: ")]
    assert len(names) == len(set(names))
    for needed in (
        "visualization_msgs/Marker",
        "std_msgs/Header",
        "builtin_interfaces/Time",
        "builtin_interfaces/Duration",
        "geometry_msgs/Pose",
        "std_msgs/ColorRGBA",
    ):
        assert needed in names  # fmt: skip
    ours = full_message_definition("hand_pose_ros/msg/HandState")
    assert "float32[23] dof_positions" in ours and "MSG: geometry_msgs/Quaternion" in ours


def test_bad_use_is_rejected(tmp_path: Path) -> None:
    rec = McapRecorder(tmp_path / "bad.mcap")
    with pytest.raises(TypeError, match="not a ROS 2 message"):
        rec.write("/x", {"position": [1.0]}, T0)
    with pytest.raises(ValueError, match="fully qualified"):
        rec.write("hand/joint_states", joint_state(0), T0)
    with pytest.raises(ValueError, match="stamp_ns"):
        rec.write("/hand/joint_states", joint_state(0), -1)
    with pytest.raises(ValueError, match="stamp_ns"):
        rec.write("/hand/joint_states", joint_state(0), 1.5)
    rec.write("/hand/joint_states", joint_state(0), T0)
    with pytest.raises(ValueError, match="already records sensor_msgs/msg/JointState"):
        rec.write("/hand/joint_states", image(0), T0)
    rec.close()
    rec.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        rec.write("/hand/joint_states", joint_state(1), T0)
    assert [m.msg for m in read_messages(tmp_path / "bad.mcap")] == [joint_state(0)]
    with pytest.raises(FileNotFoundError, match=r"no msg/Nope\.msg"):
        find_interface_file("std_msgs/msg/Nope")
