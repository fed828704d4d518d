"""What every source node offers the graph's runner: frames so far, the end, a way to stop.

``hand-teleop run`` (and tests) end a finite run through this protocol instead of reading
a node's internals; ``ros2 launch`` needs none of it.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class FrameSource(Protocol):
    """A node that publishes the graph's input frames (images or keypoints)."""

    @property
    def frames_published(self) -> int:
        """Frames (images or keypoint messages) published so far."""
        ...

    @property
    def expected_frames(self) -> int | None:
        """Frames it publishes before it ends by itself; None: it does not (live, looping)."""
        ...

    @property
    def finished(self) -> bool:
        """True once it publishes no more frames (end of file, ``max_frames``, ``stop()``)."""
        ...

    def stop(self) -> None:
        """Publish no more frames."""
        ...
