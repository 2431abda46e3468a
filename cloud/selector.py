"""RegionQuery -> a validated, backend-neutral description of which groups to read and how.

Validation happens here, once, so that storage backends and the region builder can trust their
input and every bad query gets the same INVALID_ARGUMENT message whichever RPC carried it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import grpc

from codec.crypto import EncryptionKey, Keyring
from proto import service_pb2

from .errors import ServiceError

MAX_INT64 = 2**63 - 1  # SQLite integers are signed 64-bit; larger frame indexes are refused at ingest
NO_FRAMES = (1, 0)  # an inclusive range no index satisfies: what a range starting past MAX_INT64 selects
MAX_LIST_ITEMS = 1024  # labels / group ids / keys per query
KEY_BYTES = 32  # AES-256

Output = service_pb2.RegionQuery.Output
Encrypted = service_pb2.RegionQuery.Encrypted


@dataclass(frozen=True)
class Selection:
    """Which stored groups a query selects; all conditions must hold (empty set = any)."""

    stream_id: str = ""  # "" = every stream
    streams: frozenset[str] | None = None  # only these streams (a scoped token's); None = no such bound
    frames: tuple[int, int] | None = None  # inclusive frame index range
    time: tuple[int, int] | None = None  # inclusive capture time range, microseconds
    labels: frozenset[str] = frozenset()
    group_ids: frozenset[int] = frozenset()
    intersects: tuple[int, int, int, int] | None = None  # x, y, width, height
    include_background: bool = False
    include_encrypted: bool = True
    limit: int = 0  # 0 = no limit

    def wants_group(self, group_id: int) -> bool:
        """The background (group 0) is selected only when asked for, by flag or by id."""
        return group_id != 0 or self.include_background or 0 in self.group_ids

    def for_frame(self, stream_id: str, frame_index: int) -> "Selection":
        """The same conditions restricted to one frame (used by Subscribe for each new frame)."""
        return replace(self, stream_id=stream_id, streams=None, frames=(frame_index, frame_index), time=None, limit=0)


@dataclass(frozen=True)
class RegionRequest:
    """A parsed RegionQuery: the selection plus how to render the selected groups."""

    selection: Selection
    output: int  # Output enum value
    encrypted: int  # Encrypted enum value
    keys: Keyring
    composite: bool
    limit: int  # regions (or composite frames) to return; 0 = all


def _invalid(message: str) -> ServiceError:
    return ServiceError(grpc.StatusCode.INVALID_ARGUMENT, message)


def frame_range(msg: service_pb2.FrameRange, present: bool) -> tuple[int, int] | None:
    if not present:
        return None
    if msg.first > msg.last:
        raise _invalid(f"frame range {msg.first}:{msg.last} is empty (first > last)")
    if msg.first > MAX_INT64:
        return NO_FRAMES  # no stored index can be this large; binding it would overflow SQLite
    return msg.first, min(msg.last, MAX_INT64)


def time_range(msg: service_pb2.TimeRange, present: bool) -> tuple[int, int] | None:
    if not present:
        return None
    if msg.start_us > msg.end_us:
        raise _invalid(f"time range {msg.start_us}:{msg.end_us} is empty (start > end)")
    return msg.start_us, msg.end_us


def _keys(query: service_pb2.RegionQuery) -> Keyring:
    keys = []
    for k in query.keys:
        if len(k.key) != KEY_BYTES:
            raise _invalid(f"key {k.key_id!r} has {len(k.key)} bytes; AES-256-GCM keys have {KEY_BYTES}")
        keys.append(EncryptionKey(k.key_id, bytes(k.key)))
    return Keyring(keys)


def parse_query(query: service_pb2.RegionQuery) -> RegionRequest:
    """Validate a RegionQuery; raises ServiceError(INVALID_ARGUMENT) with a message that says what is wrong."""
    if max(len(query.labels), len(query.group_ids), len(query.keys)) > MAX_LIST_ITEMS:
        raise _invalid(f"at most {MAX_LIST_ITEMS} labels, group ids or keys per query")
    if query.output not in Output.values():
        raise _invalid(f"unknown output {query.output}")
    if query.encrypted not in Encrypted.values():
        raise _invalid(f"unknown encrypted mode {query.encrypted}")
    if query.composite and query.output == Output.RECORDS:
        raise _invalid("composite images need output PNG or RAW_RGB, not RECORDS")
    if query.encrypted == Encrypted.DECRYPT:
        if query.output == Output.RECORDS:
            raise _invalid("RECORDS are returned exactly as stored; ask for PNG or RAW_RGB to decrypt")
        if not query.keys:
            raise _invalid("encrypted=DECRYPT needs the keys in the query")
    elif query.keys:
        raise _invalid("the query carries keys but does not ask to DECRYPT; send keys only when needed")
    box = query.intersects
    intersects = (box.x, box.y, box.width, box.height) if box.width and box.height else None
    selection = Selection(
        stream_id=query.stream_id,
        frames=frame_range(query.frames, query.HasField("frames")),
        time=time_range(query.time, query.HasField("time")),
        labels=frozenset(query.labels),
        group_ids=frozenset(query.group_ids),
        intersects=intersects,
        include_background=query.include_background,
        include_encrypted=query.encrypted != Encrypted.OMIT,
        # composite counts frames, not groups, so the storage query itself is unbounded
        limit=0 if query.composite else query.limit,
    )
    return RegionRequest(selection, query.output, query.encrypted, _keys(query), query.composite, query.limit)
