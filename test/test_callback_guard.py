"""CallbackGuard on a real rclpy node: a failing callback drops the message, is counted and
logged (throttled per kind), and the node keeps processing the next ones."""

from __future__ import annotations

import pytest
from rclpy.node import Node

from hand_pose_ros.nodes.callback_guard import ERROR_LEVEL, CallbackGuard


def test_guard_isolates_failures_and_counts_them(rclpy_context):
    node = Node("guarded", context=rclpy_context)
    guard = CallbackGuard(node, "test", log_every_s=60.0)
    seen = []

    def on_message(value):
        if value < 0:
            raise ValueError(f"negative {value}")
        if value == 0:
            raise ZeroDivisionError("zero")
        seen.append(value)
        return value

    handler = guard.wrap(on_message)
    results = [handler(v) for v in (1, -1, 2, 0, -3, 4)]
    assert results == [1, None, 2, None, None, 4] and seen == [1, 2, 4]
    values, level = guard.diagnostics()
    assert values == {"errors_ValueError": 2, "errors_ZeroDivisionError": 1}
    assert level == ERROR_LEVEL == 2
    assert set(guard._last_log) == {"ValueError", "ZeroDivisionError"}  # one line per kind
    node.destroy_node()


def test_guard_lets_interrupts_and_shutdown_through(rclpy_context):
    import rclpy

    node = Node("guarded2", context=rclpy_context)
    guard = CallbackGuard(node, "test")

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        guard.wrap(interrupted)()
    assert guard.diagnostics() == ({}, 0)
    rclpy.shutdown(context=rclpy_context)

    def late_publish():
        raise RuntimeError("publisher's context is invalid")

    with pytest.raises(RuntimeError):  # after shutdown: not counted, the spin loop ends
        guard.wrap(late_publish)()
    node.destroy_node()
