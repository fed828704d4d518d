"""The console entry shared by every node: init, spin, clean shutdown."""

from __future__ import annotations

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node


def spin_node(node_class: type[Node], args: list[str] | None = None) -> None:
    """Create ``node_class()`` and spin it until Ctrl-C or an external shutdown."""
    rclpy.init(args=args)
    node = None
    try:
        node = node_class()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
