"""QoS profiles of the teleop graph (one place)."""

from __future__ import annotations

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
)

#: Camera images: best effort, keep only the newest frame (drop stale frames, never queue).
IMAGE_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=1,
    reliability=ReliabilityPolicy.BEST_EFFORT, durability=DurabilityPolicy.VOLATILE,
)  # fmt: skip

#: Per-frame hand results published reliably, newest only.
RESULT_PUB_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)

#: Subscriptions to per-frame results: best effort matches both reliable and best-effort
#: publishers (e.g. a player using sensor-data QoS); newest only (never a backlog).
RESULT_SUB_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=1,
    reliability=ReliabilityPolicy.BEST_EFFORT, durability=DurabilityPolicy.VOLATILE,
)  # fmt: skip

#: Subscriptions to per-hand results of two hands (bimanual): newest only, but one per
#: hand, since both hands of a frame are published back to back and the second must not
#: push the first out of the queue.
PER_HAND_SUB_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=2,
    reliability=ReliabilityPolicy.BEST_EFFORT, durability=DurabilityPolicy.VOLATILE,
)  # fmt: skip

#: Robot commands: reliable, a short queue (robot_state_publisher and drivers expect reliable).
COMMAND_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)

#: Latched topics (/robot_description, /tf_static): a late subscriber still gets the last
#: message, as robot_state_publisher and tf2's static broadcaster offer them.
LATCHED_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=1,
    reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL,
)  # fmt: skip

#: /tf: tf2's default (reliable, volatile, keep the last 100).
TF_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
