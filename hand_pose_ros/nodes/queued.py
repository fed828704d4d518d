"""Take the messages already queued on a subscription, inside its callback.

An executor takes one message per subscription and wait. Two hands of one frame arrive
back to back as two messages; when the executor is busy (a source timer always due, a slow
solve), the next frame's pair pushes the second hand out of a newest-only queue before it
is taken, every frame: one hand starves. A callback that drains the queue sees both.
"""

from __future__ import annotations


def take_queued(subscription, limit: int) -> list:
    """Up to ``limit`` messages waiting on ``subscription``, oldest first (now taken: the
    executor will not deliver them again)."""
    messages = []
    with subscription.handle:
        for _ in range(limit):
            # What the executor does to take one message (rclpy.executors._take_subscription).
            taken = subscription.handle.take_message(subscription.msg_type, subscription.raw)
            if taken is None:
                break
            messages.append(taken[0])
    return messages
