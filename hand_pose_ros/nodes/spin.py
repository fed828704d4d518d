"""The console entry shared by every node: init, spin, clean shutdown.

A node stopped by SIGINT (Ctrl-C, ``ros2 launch`` shutting down) or SIGTERM exits with
code 0 and no traceback, whenever the signal comes: while the node module imports, while
it is constructed, while it spins, or while a callback is publishing.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
import traceback
from pathlib import Path

import rclpy
from rclpy._rclpy_pybind11 import RCLError
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

from hand_pose_ros.dds_profile import use_package_dds_profile

#: Signals that stop a node (held back while its module imports).
STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})
#: Set once rclpy is initialised: from then on its own handlers shut the context down.
_ROS_STARTED: list[bool] = []


def _on_signal(signum, frame) -> None:
    """SIGINT/SIGTERM before rclpy runs: stop (KeyboardInterrupt). Afterwards rclpy's handler
    (which chains to this one) has already shut the context down and woken the executor;
    raising here too would interrupt whatever runs at that moment (even a ``__del__``,
    which prints "Exception ignored ... Traceback")."""
    if not _ROS_STARTED:
        raise KeyboardInterrupt


def run_node(module: str) -> None:
    """The installed executables' entry: import ``module``, run its ``main()``, exit 0.

    SIGINT and SIGTERM stop the node cleanly at any time. While the node module imports,
    they are held back and delivered right after (KeyboardInterrupt then): raised inside
    torch's import, the interrupt aborted the process (exit -6) or left it hung until
    SIGKILL. Later, rclpy shuts the context down (see ``_on_signal``).
    After a clean shutdown the process exits at once: the interpreter's own teardown (a
    garbage collection over torch's, scipy's and pinocchio's module graphs) took over
    5 s on a loaded 2-core machine, and `ros2 launch` then escalates to SIGTERM, which
    kills a finalizing interpreter (exit code -15). An error still raises (exit 1).
    """
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            main = importlib.import_module(module).main
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # a held stop lands here
        main()
    except KeyboardInterrupt:
        pass  # stopped while starting
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def spin_node(node_class: type[Node], args: list[str] | None = None) -> None:
    """Create ``node_class()`` and spin it until Ctrl-C, SIGTERM or an external shutdown."""
    node = None
    use_package_dds_profile()  # large images over shared memory (config/fastdds.xml)
    try:
        rclpy.init(args=args)
        _ROS_STARTED.append(True)
        try:
            node = node_class()
        except (ValueError, OSError) as exc:
            # A configuration the node cannot start with (bad parameter, missing file):
            # one line naming the node, the error and where it was raised; exit code 1.
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            where = f"{Path(frame.filename).name}:{frame.lineno}"
            print(f"{node_class.__name__} cannot start: {type(exc).__name__}: {exc} ({where})",
                  file=sys.stderr, flush=True)  # fmt: skip
            raise SystemExit(1) from None
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
