"""Where encoded frames go: `MemorySink` keeps them (tests, benchmarks, the demo), `SpoolSink`
writes them to the durable outbox that an `IngestStreamer` sends to the cloud.

Every sink reports its state (`state()`: queue depth, frames dropped, outbox counters, the
streamer's counters), so the pipeline and its observers never need to know which sink they feed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from proto.transport import MAX_INGEST_REQUEST, ingest_request_size

from .spool import Spool
from .streaming import IngestStreamer, StreamerStats

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SinkState:
    depth: int = 0  # frames waiting to be sent
    dropped: int = 0  # frames the outbox dropped (size or age bound)
    spool: dict = field(default_factory=dict)  # the outbox's counters and depth ({} without an outbox)
    streamer: StreamerStats | None = None  # the cloud connection's counters (None without one)


class FrameSink(Protocol):
    def submit(self, frame, data: bytes) -> None: ...

    def state(self) -> SinkState: ...

    def index_floor(self) -> int:
        """The lowest frame index the next frame may take (the cloud holds the ones below); 0 = no bound."""
        ...


class MemorySink:
    """Keeps the serialized frames in memory (and optionally calls `callback(frame, data)`)."""

    def __init__(self, callback: Callable | None = None, keep: bool = True):
        self.frames: list[bytes] = []
        self.callback, self.keep = callback, keep

    def submit(self, frame, data: bytes) -> None:
        if self.keep:
            self.frames.append(data)
        if self.callback:
            self.callback(frame, data)

    def state(self) -> SinkState:
        return SinkState()

    def index_floor(self) -> int:
        return 0


class SpoolSink:
    """Writes frames to the spool; the streamer (if any) sends them to the cloud.

    A frame whose IngestRequest would be over the server's message limit (the streamer's
    `max_request_bytes`, else `max_request_bytes`) is never spooled: the server would refuse it at the
    RPC level on every attempt. It is counted as an `oversize` refusal in the spool and logged."""

    def __init__(self, spool: Spool, streamer: IngestStreamer | None = None,
                 max_request_bytes: int = MAX_INGEST_REQUEST):
        self.spool, self.streamer = spool, streamer
        self.max_request_bytes = streamer.max_request_bytes if streamer is not None else max_request_bytes

    def submit(self, frame, data: bytes) -> None:
        if self.streamer is not None and self.streamer.fatal_error:
            raise RuntimeError(self.streamer.fatal_error)
        h = frame.header
        size = ingest_request_size(len(data))
        if size > self.max_request_bytes:
            self.spool.count_refused("oversize")
            log.error("frame %s#%d is %d bytes, over the server's message limit of %d bytes: dropped, not spooled "
                      "(lower the qualities or the resolution)", h.stream_id, h.frame_index, size,
                      self.max_request_bytes)
            return
        self.spool.put(data, h.stream_id, h.frame_index, created_us=h.timestamp_us if h.timestamp_us > 0 else None)

    def index_floor(self) -> int:
        return self.streamer.stats.cloud_next_index if self.streamer is not None else 0

    def state(self) -> SinkState:
        return SinkState(len(self.spool), self.spool.dropped, {**self.spool.counters(), "depth": len(self.spool)},
                         self.streamer.stats if self.streamer is not None else None)
