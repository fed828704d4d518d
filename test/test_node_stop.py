"""The nodes' process entry (`hand_pose_ros.nodes.spin.run_node`): a real rclpy node whose
executor rclpy's own signal handling does not wake still stops at once, exit 0; a node
whose main thread never returns is ended by a stop signal within the grace period, exit 0,
saying why and where it was stuck; SIGUSR1 prints the stacks and the node goes on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hand_pose_ros.nodes.spin import STOP_GRACE_S, WAKE_AFTER_S

STUCK_NODE = '''
import threading
from hand_pose_ros.nodes import spin

def wait_forever():
    threading.Event().wait()  # a shutdown that never finishes

def main():
    spin._ROS_STARTED.append(True)  # as after rclpy.init: the stop is left to the node
    print("running", flush=True)
    wait_forever()
'''

#: A node with nothing to wake its executor (no timer, no subscription) and rclpy's signal
#: handlers removed after rclpy.init: a stop signal reaches only Python's handler, as when
#: rclpy's wake-up was lost (nodes/spin.py, _stop_rclpy).
QUIET_NODE = '''
import rclpy.signals
from rclpy.node import Node
from hand_pose_ros.nodes.spin import spin_node

class QuietNode(Node):
    def __init__(self):
        rclpy.signals.uninstall_signal_handlers()
        super().__init__("quiet_node")
        print("running", flush=True)

def main():
    spin_node(QuietNode)
'''

#: A node whose shutdown is stuck while it holds the rclpy context's lock (as rclpy's
#: ``try_shutdown`` does while the middleware tears down): the stop watchdog's wake-up of
#: the context (``_stop_rclpy``) waits for that lock for ever.
LOCKED_NODE = '''
import threading
import rclpy
from rclpy.node import Node
from hand_pose_ros.nodes.spin import spin_node

def wait_forever():
    threading.Event().wait()

class LockedNode(Node):
    def __init__(self):
        super().__init__("locked_node")
        rclpy.get_default_context()._lock.acquire()
        print("running", flush=True)
        wait_forever()

def main():
    spin_node(LockedNode)
'''

#: A node module whose import takes two seconds (as torch's does).
SLOW_IMPORT_NODE = '''
import time
print("importing", flush=True)
time.sleep(2.0)
print("imported", flush=True)

def main():
    raise AssertionError("a stop held back during the import must stop the node before main")
'''


def _start(tmp_path: Path, module: str = "stuck_node", text: str = STUCK_NODE,
           env: dict | None = None) -> subprocess.Popen:  # fmt: skip
    (tmp_path / f"{module}.py").write_text(text)
    proc = subprocess.Popen([sys.executable, "-c", "from hand_pose_ros.nodes.spin import "
                             f"run_node; run_node({module!r})"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout.readline().strip() == "running", proc.stderr.read()
    return proc


def test_a_stop_during_the_import_is_held_until_the_import_is_done(tmp_path):
    """Not interrupted half-way (KeyboardInterrupt inside torch's import aborted the process,
    exit -6): the stop lands after the import, then the node exits 0. No other thread may
    take the signal meanwhile (the stop watchdog is started with it blocked)."""
    (tmp_path / "slow_node.py").write_text(SLOW_IMPORT_NODE)
    proc = subprocess.Popen([sys.executable, "-c", "from hand_pose_ros.nodes.spin import "
                             "run_node; run_node('slow_node')"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout.readline().strip() == "importing"
    out, err, _ = _stop(proc, signal.SIGTERM)
    assert proc.returncode == 0, err
    assert out.strip() == "imported", err
    assert "Traceback" not in err, err


def _stop(proc: subprocess.Popen, stop: signal.Signals) -> tuple[str, str, float]:
    """Send ``stop``; the process's remaining stdout, its stderr and the seconds it took to
    exit (killed if it is still running long after the grace period)."""
    try:
        sent = time.monotonic()
        proc.send_signal(stop)
        out, err = proc.communicate(timeout=STOP_GRACE_S + 20)
        return out, err, time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_stop_signal_ends_the_spin_when_rclpys_wake_up_is_lost(tmp_path):
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    proc = _start(tmp_path, "quiet_node", QUIET_NODE, env)
    _, err, took = _stop(proc, signal.SIGTERM)
    assert proc.returncode == 0, err
    assert f"[quiet_node] rclpy did not shut down {WAKE_AFTER_S} s after SIGTERM" in err
    assert "still running" not in err and "Traceback" not in err, err
    assert took < STOP_GRACE_S, took  # the spin ended: the grace period was not needed


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_a_node_stuck_after_a_stop_signal_exits_0_within_the_grace_period(tmp_path, stop):
    proc = _start(tmp_path)
    _, err, took = _stop(proc, stop)
    assert proc.returncode == 0, err
    assert STOP_GRACE_S - 0.5 <= took, took  # not before the grace period is over
    assert f"[stuck_node] still running {STOP_GRACE_S:.0f} s after {stop.name}" in err
    assert "in wait_forever" in err  # where the main thread was stuck
    assert "Traceback" not in err


def test_a_blocked_wake_up_does_not_hold_back_the_grace_period(tmp_path):
    """Before, the watchdog called the wake-up itself and waited with it: faulthandler's
    backstop ended the node two seconds after the grace period, exit 1 (a launch test
    failed so: demo_source, exit 1, 6 s after SIGINT)."""
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    proc = _start(tmp_path, "locked_node", LOCKED_NODE, env)
    _, err, took = _stop(proc, signal.SIGINT)
    assert proc.returncode == 0, err
    assert STOP_GRACE_S - 0.5 <= took < STOP_GRACE_S + 1.5, took
    assert f"[locked_node] still running {STOP_GRACE_S:.0f} s after SIGINT" in err, err
    assert "in wait_forever" in err and "Traceback" not in err, err


def test_sigusr1_prints_the_stacks_and_the_node_goes_on(tmp_path):
    proc = _start(tmp_path)
    proc.send_signal(signal.SIGUSR1)
    time.sleep(1.0)
    running = proc.poll() is None
    _, err, _ = _stop(proc, signal.SIGTERM)
    assert running and proc.returncode == 0, err
    # Two dumps: the one asked for (SIGUSR1; the main thread somewhere in the node), then
    # the stop watchdog's.
    asked, _, at_stop = err.partition("[stuck_node] still running")
    assert "stuck_node.py" in asked and "Current thread" in asked, err
    assert "in wait_forever" in at_stop, err
