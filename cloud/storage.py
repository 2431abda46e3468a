"""The storage interface the service is written against, and the values it exchanges.

The service never touches files or SQL: it calls a `Storage`. `SqliteSegmentStorage`
(cloud/sqlite_storage.py) is the embedded default; a distributed backend implements the same
protocol and is passed to `CloudServer` instead, with no change to the service.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol

from proto import bitstream_pb2

from .selector import Selection


class PutStatus(enum.Enum):
    STORED = "stored"
    DUPLICATE = "duplicate"  # the same content is already stored at (stream, frame index): a resend
    CONFLICT = "conflict"  # different content is stored at (stream, frame index): nothing written


@dataclass(frozen=True)
class PutResult:
    status: PutStatus
    stored_bytes: int  # bytes written for this frame (0 for a duplicate or a conflict)
    next_frame_index: int = 0  # with CONFLICT: one past the stream's highest stored frame index


@dataclass(frozen=True)
class StreamPosition:
    """Where a stream continues: what an edge needs before numbering its first frame."""

    stream_id: str
    next_frame_index: int  # one past the highest stored frame index (0: no frames)
    frames: int


@dataclass(frozen=True)
class GroupMeta:
    """A stored group's index entry: what selection and listings need, without its payload."""

    group_id: int
    label: str
    score: float
    bbox: tuple[int, int, int, int]  # x, y, width, height
    quality: float  # q in [0, 1]
    record_bytes: int  # size of the stored record (metadata + payload)
    encrypted: bool
    key_id: str
    track_id: int = 0  # GroupRecord.track_id (0 = not tracked)


@dataclass(frozen=True)
class FrameMeta:
    stream_id: str
    frame_index: int
    timestamp_us: int
    width: int
    height: int
    weights_id: str
    groups: tuple[GroupMeta, ...]


@dataclass(frozen=True)
class StreamSummary:
    stream_id: str
    frames: int
    first_frame: int
    last_frame: int
    first_timestamp_us: int
    last_timestamp_us: int
    bytes: int


@dataclass(frozen=True)
class GroupRef:
    """A selected group: enough to order, filter and report it; `location` is the backend's handle."""

    stream_id: str
    frame_index: int
    timestamp_us: int
    meta: GroupMeta
    location: object


@dataclass(frozen=True)
class StoredGroup:
    """What reading one group returns: its frame's header and its exact stored record."""

    header: bitstream_pb2.FrameHeader
    record: bitstream_pb2.GroupRecord


@dataclass(frozen=True)
class PruneResult:
    frames_deleted: int
    bytes_freed: int


def frame_digest(header: bytes, records: Iterable[bytes]) -> bytes:
    """SHA-256 of a frame's content: its serialized header and group records, each length-prefixed.

    Computed from the bytes storage keeps (the header and the records as stored), so the digest of a
    stored frame can be rebuilt from storage alone, and a resend of the same wire bytes, which parse to
    the same header and records, has the same digest."""
    h = hashlib.sha256()
    for part in (header, *records):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.digest()


class GroupGone(LookupError):
    """The group was deleted (retention) between selecting it and reading it."""


class Storage(Protocol):
    """Durable frame store. Every method is safe to call from many threads at once."""

    def submit_frame(self, frame: bitstream_pb2.EncodedFrame) -> Future[PutResult]:
        """Queue a validated frame for storage; the future resolves only once the frame is durable (survives
        a crash or power loss). A future lets one ingest stream keep several frames in flight.

        A frame whose (stream, frame index) is taken resolves DUPLICATE only when its content (see
        `frame_digest`) equals the stored frame's, else CONFLICT: an edge that lost its numbering must
        hear that its frame was not stored instead of dropping it as delivered."""
        ...

    def has_stream(self, stream_id: str) -> bool: ...

    def stream_position(self, stream_id: str) -> StreamPosition:
        """One past the stream's highest stored frame index, and its frame count (0, 0 for an unknown stream)."""
        ...

    def list_streams(self) -> list[StreamSummary]: ...

    def list_frames(self, stream_id: str, frames: tuple[int, int] | None, time: tuple[int, int] | None,
                    limit: int) -> list[FrameMeta]:
        """Frames of one stream in frame-index order."""
        ...

    def find_groups(self, selection: Selection) -> Iterator[GroupRef]:
        """Selected groups, oldest first (capture time, stream, frame index, group id). Reads no payload."""
        ...

    def background_at(self, stream_id: str, frame_index: int, include_encrypted: bool) -> GroupRef | None:
        """The most recent background group (group 0) of the stream at or before `frame_index`."""
        ...

    def read_group(self, ref: GroupRef) -> StoredGroup:
        """Read one group's bytes (and only those); raises GroupGone if retention removed it."""
        ...

    def prune(self, max_age_s: float | None, max_bytes: int | None) -> PruneResult:
        """Apply retention: drop frames stored longer ago than max_age_s, then the oldest data over max_bytes."""
        ...

    def check(self) -> None:
        """Raise `cloud.errors.DependencyUnavailable` when a service the storage needs does not answer (health
        reports NOT_SERVING until it does)."""
        ...

    def close(self) -> None:
        """Finish pending writes and release files."""
        ...
