"""Spin groups of nodes in their own threads (one single-threaded executor per group).

The in-process runner puts the camera, the image estimator and the IK / robot side in
separate groups: video decoding, ONNX Runtime inference and DDS transfers release the
GIL, so one group's heavy call overlaps another's work on a second core, while the
callbacks inside a group keep their order. rclpy's MultiThreadedExecutor was measured
slower here (futures and locks per callback).
"""

from __future__ import annotations

import logging
import threading

from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

log = logging.getLogger(__name__)


class StageThreads:
    """Spin each group of ``nodes`` in a daemon thread until :meth:`shutdown`.

    Args:
        groups: lists of nodes; each list gets one executor and one thread.
        context: the rclpy context of the nodes.
    """

    def __init__(self, groups: list[list[Node]], context) -> None:
        self.executors = []
        for group in groups:
            if not group:
                continue
            executor = SingleThreadedExecutor(context=context)
            for node in group:
                executor.add_node(node)
            self.executors.append(executor)
        self.errors: list[BaseException] = []
        self._threads = [threading.Thread(target=self._spin, args=(e,), daemon=True,
                                          name=f"stage-{i}")
                         for i, e in enumerate(self.executors)]  # fmt: skip

    def _spin(self, executor: SingleThreadedExecutor) -> None:
        try:
            executor.spin()
        except ExternalShutdownException:
            pass
        except Exception as exc:  # reported by the caller through `errors`
            if executor.context.ok():
                log.exception("a stage thread stopped")
                self.errors.append(exc)

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def alive(self) -> bool:
        """All stage threads still spinning."""
        return all(t.is_alive() for t in self._threads)

    def shutdown(self, timeout_s: float = 2.0) -> None:
        """Stop every executor and wait for its thread."""
        for executor in self.executors:
            executor.shutdown(timeout_sec=timeout_s)
        for thread in self._threads:
            thread.join(timeout_s)
