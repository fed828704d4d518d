"""Keep a node alive when one message breaks its stage.

A teleop node must not die on one bad message. :class:`CallbackGuard` wraps a node's
callbacks: an exception drops that message, is counted by kind (exception type), logged
once per kind every ``log_every_s`` seconds, and reported on ``/diagnostics`` at ERROR
level by the node (:meth:`CallbackGuard.diagnostics`). Interrupts and the shutdown
itself (a publish after the context ended) still propagate.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from functools import wraps

from diagnostic_msgs.msg import DiagnosticStatus

ERROR_LEVEL = int.from_bytes(DiagnosticStatus.ERROR, "little")


class CallbackGuard:
    """Failure isolation for the callbacks of one node.

    Args:
        node: the rclpy node (its logger and context are used).
        stage: name used in the log lines.
        log_every_s: least seconds between two log lines of one kind.
    """

    def __init__(self, node, stage: str, log_every_s: float = 5.0) -> None:
        self.node, self.stage, self.log_every_s = node, stage, log_every_s
        self.errors: Counter[str] = Counter()
        self._last_log: dict[str, float] = {}

    def wrap(self, callback: Callable) -> Callable:
        """``callback`` that never raises an ``Exception`` while the node runs."""

        @wraps(callback)
        def guarded(*args, **kwargs):
            try:
                return callback(*args, **kwargs)
            except Exception as exc:
                if not self.node.context.ok():
                    raise  # shutting down: the spin loop handles it
                self.record(exc)
                return None

        return guarded

    def record(self, exc: BaseException) -> None:
        """Count ``exc`` and log it unless its kind was logged in the last ``log_every_s``."""
        kind = type(exc).__name__
        self.errors[kind] += 1
        now = time.monotonic()
        if now - self._last_log.get(kind, -float("inf")) >= self.log_every_s:
            self._last_log[kind] = now
            self.node.get_logger().error(
                f"{self.stage}: dropped a message ({kind}: {exc}); "
                f"{self.errors[kind]} so far, the node keeps running")

    def diagnostics(self) -> tuple[dict[str, int], int]:
        """(``{"errors_<Kind>": count}``, diagnostic level: ERROR if any error, else 0)."""
        values = {f"errors_{k}": int(v) for k, v in sorted(self.errors.items())}
        return values, ERROR_LEVEL if self.errors else 0
