"""The console entry shared by every node: init, spin, clean shutdown.

A node stopped by SIGINT (Ctrl-C, ``ros2 launch`` shutting down) or SIGTERM exits with
code 0 and no traceback, whenever the signal comes: while the node module imports, while
it is constructed, while it spins, or while a callback is publishing.
"""

from __future__ import annotations

import importlib
import signal

import rclpy
from rclpy._rclpy_pybind11 import RCLError
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def run_node(module: str) -> None:
    """The installed executables' entry: import ``module`` and run its ``main()``.

    SIGTERM is handled like SIGINT (rclpy chains its own handlers to this one), so a
    node stopped while its heavy imports run still exits cleanly.
    """
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        main = importlib.import_module(module).main
    except KeyboardInterrupt:
        return  # stopped while starting
    main()


def spin_node(node_class: type[Node], args: list[str] | None = None) -> None:
    """Create ``node_class()`` and spin it until Ctrl-C, SIGTERM or an external shutdown."""
    node = None
    try:
        rclpy.init(args=args)
        node = node_class()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RCLError:
        # rclpy's signal handler shuts the context down first; a callback that was running
        # then fails to publish ("publisher's context is invalid"). That is the shutdown,
        # not an error; any other RCLError is.
        if rclpy.ok():
            raise
    finally:
        try:
            if node is not None:
                node.destroy_node()
            if rclpy.ok():
                rclpy.shutdown()
        except KeyboardInterrupt:
            pass  # a second signal while cleaning up
