"""Record ROS 2 messages to a rosbag2-compatible MCAP file (Foxglove, ``ros2 bag``).

This module imports ROS (``rclpy``) although it lives outside ``hand_pose_ros/nodes``:
it is used by the in-process CLI runner (``hand-teleop run --record``), which already
runs rclpy, and recording needs rclpy's CDR serializer. Nothing ROS-free imports it.

The file follows the MCAP ``ros2`` profile, as ``ros2 bag record -s mcap`` writes it:
one schema per message type named ``pkg/msg/Type`` with encoding ``ros2msg`` whose data
is the complete message definition (the type's ``.msg`` text, then every nested type's
text after a line of 80 ``=`` and ``MSG: pkg/Type``, depth first, the way rosbag2's
``LocalMessageDefinitionSource`` builds it); one channel per topic with message
encoding ``cdr``; message bytes from ``rclpy.serialization.serialize_message``. The
``.msg`` files come from the interface packages' share folders (ament index, then the
Python environment's ``share/``), so our own ``hand_pose_ros/msg`` types work too.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from mcap.reader import make_reader
from mcap.writer import CompressionType, Writer
from rclpy.serialization import deserialize_message, serialize_message

_log = logging.getLogger(__name__)

PROFILE = "ros2"
SCHEMA_ENCODING = "ros2msg"
MESSAGE_ENCODING = "cdr"
_SEPARATOR = "=" * 80 + "\n"

# First token of each .msg line (the field or constant type), as rosbag2 matches it.
_MSG_FIELD_TYPE = re.compile(r"(?:^|\n)\s*([a-zA-Z0-9_/]+)(?:\[[^\]]*\])?\s+")
_PRIMITIVES = frozenset(
    "bool byte char float32 float64 int8 uint8 int16 uint16 int32 uint32 int64 uint64 "
    "string wstring".split()
)


def message_type_name(msg_or_type: Any) -> str:
    """``pkg/msg/Type`` of an rclpy message instance or class.

    Raises:
        TypeError: not a ROS 2 (rosidl-generated) message.
    """
    cls = msg_or_type if isinstance(msg_or_type, type) else type(msg_or_type)
    parts = cls.__module__.split(".")
    if (
        len(parts) < 3
        or parts[1] != "msg"
        or not hasattr(cls, "_TYPE_SUPPORT")
        or not hasattr(cls, "get_fields_and_field_types")
    ):
        raise TypeError(f"not a ROS 2 message: {cls.__module__}.{cls.__qualname__}")
    return f"{parts[0]}/msg/{cls.__name__}"


def _split_type(name: str) -> tuple[str, str, str]:
    parts = name.split("/")
    if len(parts) == 2:
        return parts[0], "msg", parts[1]
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    raise ValueError(f"not a ROS 2 type name: {name!r} (want pkg/Type or pkg/msg/Type)")


def _share_candidates(package: str) -> list[Path]:
    candidates = []
    try:  # the ament index, when AMENT_PREFIX_PATH is set (a sourced ROS 2 install)
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory(package)))
    except (ImportError, LookupError, OSError, ValueError):
        pass
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    prefixes += [sys.prefix]  # pip-installed ROS 2 and colcon --install-base into the venv
    candidates += [Path(p) / "share" / package for p in prefixes]
    try:  # next to the Python package: <prefix>/lib/pythonX.Y/site-packages/<package>
        module = importlib.import_module(package)
        for entry in getattr(module, "__path__", []):
            path = Path(entry).resolve()
            candidates += [parent / "share" / package for parent in path.parents[:5]]
    except ImportError:
        pass
    return candidates


def find_interface_file(type_name: str) -> Path:
    """Path of the ``.msg`` file of ``pkg/Type`` or ``pkg/msg/Type``.

    Raises:
        FileNotFoundError: naming every folder searched.
    """
    package, namespace, name = _split_type(type_name)
    candidates = _share_candidates(package)
    for share in candidates:
        path = share / namespace / f"{name}.msg"
        if path.is_file():
            return path
    searched = ", ".join(str(c / namespace) for c in dict.fromkeys(candidates))
    raise FileNotFoundError(
        f"no {namespace}/{name}.msg for {type_name!r}; searched: {searched}. "
        "Install the interface package or set AMENT_PREFIX_PATH (source your ROS 2 setup)."
    )


def _msg_dependencies(text: str, package: str) -> list[str]:
    deps = set()
    for match in _MSG_FIELD_TYPE.finditer(text):
        kind = match.group(1)
        if kind in _PRIMITIVES:
            continue
        deps.add(kind if "/" in kind else f"{package}/{kind}")
    return sorted(deps)  # rosbag2 keeps them in a std::set: sorted


def full_message_definition(type_name: str, max_depth: int = 50) -> str:
    """The complete ``ros2msg`` definition of a message type, as rosbag2 writes it.

    Args:
        type_name: ``pkg/msg/Type`` (or ``pkg/Type``).
        max_depth: nesting limit (guards against a cyclic definition).

    Returns:
        The type's ``.msg`` text followed by each nested type, depth first and each
        once: ``"\\n" + "=" * 80 + "\\nMSG: pkg/Type\\n" + text``.
    """
    cache: dict[str, str] = {}
    seen: set[str] = set()

    def text_of(name: str) -> str:
        key = "/".join(_split_type(name))
        if key not in cache:
            cache[key] = find_interface_file(name).read_text(encoding="utf-8")
        return cache[key]

    def append(name: str, depth: int) -> str:
        if depth <= 0:
            raise RecursionError(f"message definition of {type_name} nests too deep")
        text = text_of(name)
        out = text
        for dep in _msg_dependencies(text, _split_type(name)[0]):
            key = "/".join(_split_type(dep))
            if key not in seen:
                seen.add(key)
                out += "\n" + _SEPARATOR + f"MSG: {dep}\n" + append(dep, depth - 1)
        return out

    return append(type_name, max_depth)


class McapRecorder:
    """Writes ROS 2 messages to an MCAP file that ``ros2 bag`` and Foxglove open.

    Schemas and channels are registered on first use of a type / topic. Use as a
    context manager: the summary (index, statistics) is written on ``close``.

    Args:
        path: output ``.mcap`` file; parent folders are created; an existing file is
            replaced.
        compression: MCAP chunk compression (zstd by default; rosbag2's MCAP plugin and
            Foxglove read zstd, lz4 and uncompressed chunks).

    Attributes:
        message_count: messages written so far.
    """

    def __init__(self, path: str | Path, compression: CompressionType = CompressionType.ZSTD):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._stream = open(self.path, "wb")  # closed in close()
        self._writer = Writer(self._stream, compression=compression)
        self._writer.start(profile=PROFILE, library="hand_pose_ros McapRecorder")
        self._schemas: dict[str, int] = {}
        self._channels: dict[str, tuple[int, str]] = {}
        self._sequence: dict[str, int] = {}
        self.message_count = 0
        self._closed = False

    def __enter__(self) -> McapRecorder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _channel(self, topic: str, type_name: str) -> int:
        if topic in self._channels:
            channel_id, known = self._channels[topic]
            if known != type_name:
                raise ValueError(f"topic {topic!r} already records {known}, got a {type_name}")
            return channel_id
        if type_name not in self._schemas:
            self._schemas[type_name] = self._writer.register_schema(
                name=type_name,
                encoding=SCHEMA_ENCODING,
                data=full_message_definition(type_name).encode("utf-8"),
            )
        # rosbag2 reads an empty QoS string as "no recorded offers" (playback defaults).
        channel_id = self._writer.register_channel(
            topic=topic,
            message_encoding=MESSAGE_ENCODING,
            schema_id=self._schemas[type_name],
            metadata={"offered_qos_profiles": ""},
        )
        self._channels[topic] = (channel_id, type_name)
        self._sequence[topic] = 0
        return channel_id

    def write(self, topic: str, msg: Any, stamp_ns: int) -> None:
        """Record one message.

        Args:
            topic: fully qualified topic name, e.g. ``/hand/joint_states``.
            msg: any rclpy message object.
            stamp_ns: receive / publish time, nanoseconds since the epoch (the bag's
                log time; use the node clock, not the header stamp, for live data).

        Raises:
            RuntimeError: the recorder is closed.
            ValueError: bad topic or stamp, or a topic reused with another type.
            TypeError: ``msg`` is not a ROS 2 message.
        """
        if self._closed:
            raise RuntimeError(f"McapRecorder({self.path}) is closed")
        if not isinstance(topic, str) or not topic.startswith("/") or len(topic) < 2:
            raise ValueError(f"topic must be a fully qualified name like '/a/b', got {topic!r}")
        if isinstance(stamp_ns, bool) or not isinstance(stamp_ns, int) or stamp_ns < 0:
            raise ValueError(f"stamp_ns must be a non-negative int (nanoseconds), got {stamp_ns!r}")
        channel_id = self._channel(topic, message_type_name(msg))
        self._writer.add_message(
            channel_id=channel_id,
            log_time=stamp_ns,
            data=serialize_message(msg),
            publish_time=stamp_ns,
            sequence=self._sequence[topic],
        )
        self._sequence[topic] += 1
        self.message_count += 1

    def close(self) -> None:
        """Write the summary and close the file (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._writer.finish()
        finally:
            self._stream.close()
        _log.info("recorded %d messages on %d topics to %s", self.message_count,
                  len(self._channels), self.path)  # fmt: skip


@dataclass(frozen=True)
class RecordedMessage:
    """One message read back from a recording.

    Attributes:
        topic: topic name.
        type_name: ``pkg/msg/Type``.
        stamp_ns: log time, nanoseconds.
        msg: the rclpy message (deserialized with rclpy from the CDR bytes).
    """

    topic: str
    type_name: str
    stamp_ns: int
    msg: Any


def message_class(type_name: str) -> type:
    """The rclpy message class of ``pkg/msg/Type`` (imports ``pkg.msg``)."""
    package, namespace, name = _split_type(type_name)
    try:
        return getattr(importlib.import_module(f"{package}.{namespace}"), name)
    except (ImportError, AttributeError) as err:
        raise LookupError(f"cannot import the message class for {type_name!r}: {err}") from err


def read_messages(
    path: str | Path, topics: Iterable[str] | None = None
) -> Iterator[RecordedMessage]:
    """Read a ROS 2 MCAP file back as rclpy messages, in log-time order.

    For reading without the message packages installed, use
    ``mcap_ros2.reader.read_ros2_messages``, which decodes from the stored schemas.

    Args:
        path: an ``.mcap`` file.
        topics: only these topics; None: all.
    """
    classes: dict[str, type] = {}
    with open(path, "rb") as stream:
        reader = make_reader(stream)
        wanted = None if topics is None else list(topics)
        for schema, channel, message in reader.iter_messages(topics=wanted, log_time_order=True):
            if channel.message_encoding != MESSAGE_ENCODING:
                raise ValueError(f"{path}: topic {channel.topic} is {channel.message_encoding!r}")
            if schema.name not in classes:
                classes[schema.name] = message_class(schema.name)
            yield RecordedMessage(
                topic=channel.topic,
                type_name=schema.name,
                stamp_ns=message.log_time,
                msg=deserialize_message(message.data, classes[schema.name]),
            )
