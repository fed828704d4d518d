"""The console entry shared by every node: init, spin, clean shutdown.

A node stopped by SIGINT (Ctrl-C, ``ros2 launch`` shutting down) or SIGTERM exits with
code 0 and no traceback, whenever the signal comes: while the node module imports, while
it is constructed, while it spins, or while a callback is publishing.

The stop is bounded: a node still running ``STOP_GRACE_S`` after its first stop signal
(its shutdown stuck somewhere, e.g. in the middleware) prints every thread's Python stack
to stderr, says so, and exits 0 anyway: before ``ros2 launch`` escalates to SIGTERM (5 s)
and SIGKILL.

SIGUSR1 prints every thread's Python stack to stderr and the node goes on: for a node
that looks stuck (``kill -USR1 <pid>``), even when its main thread is blocked in C code.
"""

from __future__ import annotations

import faulthandler
import functools
import importlib
import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import rclpy
from rclpy._rclpy_pybind11 import RCLError
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

from hand_pose_ros.dds_profile import use_package_dds_profile

#: Signals that stop a node (held back while its module imports).
STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})
#: Signal that dumps every thread's Python stack to stderr (the node goes on).
DUMP_STACKS_SIGNAL = signal.SIGUSR1
#: Seconds a node may take to stop after its first stop signal (see the module docstring).
STOP_GRACE_S = 4.0
#: Seconds after a stop signal at which the watchdog wakes a node still spinning.
WAKE_AFTER_S = 0.5
#: What the stop watchdog calls then, with the node's and the signal's names.
_ON_STOP: list[Callable[[str, str], None]] = []
#: Set once rclpy is initialised: from then on its own handlers shut the context down.
_ROS_STARTED: list[bool] = []


def _on_signal(signum, frame) -> None:
    """SIGINT/SIGTERM before rclpy runs: stop (KeyboardInterrupt). Afterwards rclpy's handler
    (which chains to this one) shuts the context down and wakes the executor, and the stop
    watchdog makes sure of it (``_stop_rclpy``); raising here too would interrupt whatever
    runs at that moment (even a ``__del__``, which prints "Exception ignored ...
    Traceback")."""
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
    faulthandler.register(DUMP_STACKS_SIGNAL, all_threads=True)
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        # Started with the stop signals blocked, the watchdog thread never takes one itself:
        # a stop that lands on a thread other than the main one during the import would
        # run Python's handler (KeyboardInterrupt) in the middle of torch's import.
        _start_stop_watchdog(module.rsplit(".", 1)[-1], STOP_GRACE_S)
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


def _start_stop_watchdog(name: str, grace_s: float) -> None:
    """Bound the stop: Python's signal handler writes each signal's number to a pipe
    (``signal.set_wakeup_fd``, at once, from whatever thread the signal lands on, also
    after rclpy chains its handler to Python's); a daemon thread waits on it and, once a
    stop signal came, gives the node ``grace_s`` seconds."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    threading.Thread(target=_stop_watchdog, args=(name, read_fd, grace_s),
                     name="stop-watchdog", daemon=True).start()  # fmt: skip


def _stop_watchdog(name: str, read_fd: int, grace_s: float) -> None:
    """Wait for a stop signal, then ``grace_s`` seconds; still running then: every thread's
    stack to stderr and exit 0. The ``_ON_STOP`` hooks run in a thread of their own
    (``WAKE_AFTER_S`` after the signal), so one that blocks (``_stop_rclpy`` waits for the
    rclpy context's lock, which a shutdown stuck in the middleware holds) cannot hold the
    deadline back. If this thread cannot run (the main thread blocked in C code while
    holding the interpreter lock), faulthandler's own C thread dumps the stacks and exits
    (code 1) two seconds later."""
    while (signum := os.read(read_fd, 1)[0]) not in STOP_SIGNALS:
        pass
    signal_name = signal.Signals(signum).name
    faulthandler.dump_traceback_later(grace_s + 2.0, exit=True)
    deadline = time.monotonic() + grace_s
    time.sleep(WAKE_AFTER_S)
    threading.Thread(target=_run_stop_hooks, args=(name, signal_name), name="stop-wake",
                     daemon=True).start()  # fmt: skip
    time.sleep(max(0.0, deadline - time.monotonic()))
    print(f"[{name}] still running {grace_s:.0f} s after {signal_name}: "
          "exiting without finishing the shutdown; every thread's stack:", file=sys.stderr,
          flush=True)  # fmt: skip
    faulthandler.dump_traceback(all_threads=True)
    sys.stderr.flush()
    os._exit(0)


def _run_stop_hooks(name: str, signal_name: str) -> None:
    """Call every ``_ON_STOP`` hook (best effort: the grace period still bounds the stop)."""
    for wake in _ON_STOP:
        try:
            wake(name, signal_name)
        except Exception as exc:
            print(f"[{name}] waking the node: {type(exc).__name__}: {exc}", file=sys.stderr,
                  flush=True)  # fmt: skip


def _stop_rclpy(executor: Executor, name: str, signal_name: str) -> None:
    """Make a stop signal stop the spin, as rclpy's own handler should have.

    rclpy's handler shuts the context down and wakes the executor. Once in 40 SIGTERMs
    to the demo graph here (2026-12-07) the IK node was still asleep in the executor's
    wait 4 s later (``_wait_for_ready_callbacks``): no timer, no message, nothing woke
    it. Half a second after the signal the watchdog shuts the context down if it is
    not yet, and wakes the executor; the spin then ends as after any stop."""
    context = rclpy.get_default_context()
    if context.ok():
        print(f"[{name}] rclpy did not shut down {WAKE_AFTER_S} s after {signal_name}: "
              "shutting it down", file=sys.stderr, flush=True)  # fmt: skip
        try:
            context.try_shutdown()
        except RCLError:
            pass  # rclpy's own shutdown got there in between
    executor.wake()


def spin_node(node_class: type[Node], args: list[str] | None = None) -> None:
    """Create ``node_class()`` and spin it until Ctrl-C, SIGTERM or an external shutdown."""
    node = None
    use_package_dds_profile()  # large images over shared memory (config/fastdds.xml)
    try:
        rclpy.init(args=args)
        _ROS_STARTED.append(True)
        executor = SingleThreadedExecutor()
        _ON_STOP.append(functools.partial(_stop_rclpy, executor))
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
        rclpy.spin(node, executor)
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
