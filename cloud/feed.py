"""Notifies live subscribers of newly stored frames.

Subscribers do not get frames pushed to them: they learn (stream, frame index) of each new frame
and run their own selection against storage, so Subscribe selects exactly like GetRegions.
"""

from __future__ import annotations

import threading
from collections import deque

BACKLOG = 4096  # events kept for subscribers that fall behind; older ones are dropped for them


class FrameFeed:
    """The feed within one node: `publish` wakes this node's subscribers (cloud/nats_feed.py spans nodes)."""

    def __init__(self, backlog: int = BACKLOG):
        self._events: deque[tuple[int, str, int]] = deque(maxlen=backlog)
        self._seq = 0
        self._cond = threading.Condition()
        self._closed = False

    def publish(self, stream_id: str, frame_index: int) -> None:
        with self._cond:
            self._seq += 1
            self._events.append((self._seq, stream_id, frame_index))
            self._cond.notify_all()

    def cursor(self) -> int:
        """The position after the latest event: a new subscriber sees only frames stored from now on."""
        with self._cond:
            return self._seq

    def wait(self, cursor: int, timeout: float) -> tuple[int, list[tuple[str, int]]]:
        """Events after `cursor` (waiting up to `timeout` for one); returns the new cursor and the events."""
        with self._cond:
            self._cond.wait_for(lambda: self._seq > cursor or self._closed, timeout)
            new = min(self._seq - cursor, len(self._events))  # sequence numbers are contiguous
            return self._seq, [self._events[-k][1:] for k in range(new, 0, -1)]

    def check(self) -> None:
        """In-process: nothing remote to fail. A feed over a message bus raises DependencyUnavailable here."""

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Wake every subscriber so it can end its call (server shutdown)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
