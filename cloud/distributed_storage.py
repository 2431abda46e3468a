"""The distributed `Storage`: frame and group index rows in PostgreSQL, frame bytes in an S3 object store.

Any number of nodes open it on the same database and bucket and share one state; none keeps
anything of its own. A frame is written in this order: its records go up as one object
(cloud/objects.py), then its index rows commit in one transaction, then its future resolves. So an
acknowledged frame's row is committed and its bytes are in the store; a node killed in between leaves
at most an object no row points at, under the same key a resend writes again.

Who owns (stream, frame index) is decided by the database's unique constraint (INSERT ... ON CONFLICT DO
NOTHING, no read before the write: one round trip less per frame), so a resend through another node is
recognised there: the same content digest (`storage.frame_digest`) is DUPLICATE,
different content CONFLICT. Frames of one stream are written in order by one worker per node (a
stream's frames hash to one shard), which keeps a node's answers for a stream in submission order.

psycopg is imported here, lazily, so the embedded default and the query client never need it.
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from codec.errors import CorruptStreamError
from proto import bitstream_pb2

from .errors import DependencyUnavailable
from .index_sql import group_meta, paged, selection_sql
from .objects import NoSuchObject, ObjectStore
from .selector import Selection
from .storage import (FrameMeta, GroupGone, GroupMeta, GroupRef, PruneResult, PutResult, PutStatus, StoredGroup,
                      StreamPosition, StreamSummary, frame_digest)

log = logging.getLogger(__name__)

SHARDS = 16  # writer threads per node; a stream's frames always go to the same one
CONNECT_TIMEOUT_S = 3
SCHEMA_LOCK = 0x726F6973  # advisory lock ids: nodes starting together create the schema once
PRUNE_LOCK = 0x726F6974  # ... and only one node at a time applies retention

SCHEMA = """
CREATE TABLE IF NOT EXISTS frames (
    id BIGSERIAL PRIMARY KEY,
    stream_id TEXT COLLATE "C" NOT NULL,
    frame_index BIGINT NOT NULL,
    timestamp_us BIGINT NOT NULL,
    stored_us BIGINT NOT NULL,
    width BIGINT NOT NULL,
    height BIGINT NOT NULL,
    weights_id TEXT NOT NULL,
    header BYTEA NOT NULL,
    object_key TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    content_hash BYTEA NOT NULL,
    UNIQUE (stream_id, frame_index)
);
CREATE INDEX IF NOT EXISTS frames_by_time ON frames (timestamp_us, stream_id, frame_index);
CREATE INDEX IF NOT EXISTS frames_by_stored ON frames (stored_us);
CREATE TABLE IF NOT EXISTS groups (
    frame_id BIGINT NOT NULL REFERENCES frames (id) ON DELETE CASCADE,
    group_id BIGINT NOT NULL,
    label TEXT COLLATE "C" NOT NULL,
    score DOUBLE PRECISION NOT NULL CHECK (score <> 'NaN'::float8),
    x BIGINT NOT NULL, y BIGINT NOT NULL, w BIGINT NOT NULL, h BIGINT NOT NULL,
    quality BIGINT NOT NULL,
    encrypted SMALLINT NOT NULL,
    key_id TEXT NOT NULL,
    "offset" BIGINT NOT NULL,
    length BIGINT NOT NULL,
    track_id BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (frame_id, group_id)
);
CREATE INDEX IF NOT EXISTS groups_by_label ON groups (label, frame_id);
"""

GROUP_COLUMNS = ("f.timestamp_us, f.stream_id, f.frame_index, g.group_id, g.label, g.score, g.x, g.y, g.w, g.h, "
                 'g.quality, g.length, g.encrypted, g.key_id, g.track_id, f.object_key, g."offset", f.header')
META_COLUMNS = "g.group_id, g.label, g.score, g.x, g.y, g.w, g.h, g.quality, g.length, g.encrypted, g.key_id, g.track_id"


@dataclass(frozen=True)
class _Location:
    key: str
    offset: int
    length: int
    header: bytes


def _group_ref(row: tuple) -> GroupRef:
    ts, stream_id, frame_index, *meta, key, offset, header = row
    return GroupRef(stream_id, frame_index, ts, group_meta(*meta), _Location(key, offset, meta[8], bytes(header)))


def index_address(dsn: str) -> str:
    """host:port/dbname of a PostgreSQL URL, without its password: what error messages and logs show."""
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(dsn)
    return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"


class PostgresObjectStorage:
    """`Storage` shared by many nodes: see the module docstring for the write order and ownership."""

    def __init__(self, index: str, objects: ObjectStore, shards: int = SHARDS,
                 clock: Callable[[], float] = time.time):
        self.dsn = index
        self.address = index_address(index)
        self.objects = objects
        self._clock = clock
        self._local = threading.local()
        self._conns: list = []
        self._conns_lock = threading.Lock()
        self._check_conn = None
        self._closed = False
        conn = self._conn()
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            conn.execute(SCHEMA)
        objects.ensure_bucket()
        self._shards = [ThreadPoolExecutor(1, thread_name_prefix=f"storage-shard{i}") for i in range(shards)]

    # ---- connections (one per thread; a broken one is replaced on next use) ----
    def _connect(self):
        import psycopg

        try:
            return psycopg.connect(self.dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
        except psycopg.OperationalError as exc:
            raise DependencyUnavailable("PostgreSQL", self.address, str(exc).strip()) from None

    def _conn(self):
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.broken:
            conn = self._connect()
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    def _query(self, sql: str, params: tuple | list = ()) -> list[tuple]:
        """One read statement (one snapshot); a lost connection becomes DependencyUnavailable."""
        import psycopg

        try:
            return self._conn().execute(sql, params).fetchall()
        except psycopg.OperationalError as exc:
            raise DependencyUnavailable("PostgreSQL", self.address, str(exc).strip()) from None

    def check(self) -> None:
        """Raise DependencyUnavailable unless PostgreSQL and the object store both answer."""
        import psycopg

        try:
            if self._check_conn is None or self._check_conn.closed or self._check_conn.broken:
                self._check_conn = self._connect()
            self._check_conn.execute("SELECT 1")
        except psycopg.OperationalError as exc:
            raise DependencyUnavailable("PostgreSQL", self.address, str(exc).strip()) from None
        self.objects.check()

    # ---- writing ----
    def submit_frame(self, frame: bitstream_pb2.EncodedFrame) -> Future[PutResult]:
        if self._closed:
            raise RuntimeError("storage is closed")
        shard = zlib.crc32(frame.header.stream_id.encode()) % len(self._shards)
        return self._shards[shard].submit(self._put, frame)

    def _stored_digest(self, stream_id: str, frame_index: int) -> bytes | None:
        rows = self._query("SELECT content_hash FROM frames WHERE stream_id = %s AND frame_index = %s",
                           (stream_id, frame_index))
        return bytes(rows[0][0]) if rows else None

    def _taken(self, stream_id: str, digest: bytes, stored: bytes) -> PutResult:
        if stored == digest:
            return PutResult(PutStatus.DUPLICATE, 0)
        return PutResult(PutStatus.CONFLICT, 0, self.stream_position(stream_id).next_frame_index)

    def _put(self, frame: bitstream_pb2.EncodedFrame) -> PutResult:
        import psycopg

        h = frame.header
        header = h.SerializeToString()
        records = [g.SerializeToString() for g in frame.groups]
        digest = frame_digest(header, records)
        blob = b"".join(records)
        key = self.objects.key(h.stream_id, f"{h.frame_index}-{digest.hex()[:32]}")
        self.objects.put(key, blob)
        group_rows, pos = [], 0
        for g, data in zip(frame.groups, records):
            enc = g.HasField("encryption")
            group_rows.append((g.group_id, g.label, g.score, g.bbox.x, g.bbox.y, g.bbox.width, g.bbox.height,
                               g.quality, int(enc), g.encryption.key_id if enc else "", pos, len(data), g.track_id))
            pos += len(data)
        conn = self._conn()
        try:
            with conn.transaction():
                row = conn.execute(
                    "INSERT INTO frames (stream_id, frame_index, timestamp_us, stored_us, width, height, weights_id, "
                    "header, object_key, bytes, content_hash) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) "
                    "ON CONFLICT (stream_id, frame_index) DO NOTHING RETURNING id",
                    (h.stream_id, h.frame_index, h.timestamp_us, int(self._clock() * 1e6), h.width, h.height,
                     h.weights_id, header, key, len(blob), digest)).fetchone()
                if row is not None and group_rows:  # one statement for all groups of the frame
                    conn.execute('INSERT INTO groups (frame_id, group_id, label, score, x, y, w, h, quality, encrypted, '
                                 'key_id, "offset", length, track_id) VALUES '
                                 + ",".join(["(%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"] * len(group_rows)),
                                 [v for g in group_rows for v in (row[0], *g)])
        except (psycopg.DataError, psycopg.IntegrityError) as exc:  # this frame's values, not the database
            log.error("frame refused by the index", extra={"fields": {
                "stream_id": h.stream_id, "frame_index": h.frame_index, "error": str(exc).strip()}})
            self.objects.delete([key])
            raise
        except psycopg.OperationalError as exc:  # the object stays; a resend writes the same key again
            raise DependencyUnavailable("PostgreSQL", self.address, str(exc).strip()) from None
        if row is None:  # the index is taken (a resend, or another frame): same content = the same object key
            stored = self._stored_digest(h.stream_id, h.frame_index)
            if stored != digest:
                self.objects.delete([key])
            return self._taken(h.stream_id, digest, stored)
        return PutResult(PutStatus.STORED, len(blob))

    def prune(self, max_age_s: float | None, max_bytes: int | None) -> PruneResult:
        """Retention on the shared store: one node at a time (the others find the lock taken and skip a round);
        rows go first, then their objects, so no row ever points at a deleted object."""
        import psycopg

        conn = self._conn()
        deleted: list[tuple] = []
        try:
            with conn.transaction():
                if not conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (PRUNE_LOCK,)).fetchone()[0]:
                    return PruneResult(0, 0)
                if max_age_s is not None:
                    cutoff = int((self._clock() - max_age_s) * 1e6)
                    deleted += conn.execute("DELETE FROM frames WHERE stored_us < %s RETURNING object_key, bytes",
                                            (cutoff,)).fetchall()
                if max_bytes is not None:
                    deleted += conn.execute(
                        "DELETE FROM frames WHERE id IN (SELECT id FROM (SELECT id, SUM(bytes) OVER "
                        "(ORDER BY stored_us DESC, id DESC) AS newer FROM frames) t WHERE newer > %s) "
                        "RETURNING object_key, bytes", (max_bytes,)).fetchall()
        except psycopg.OperationalError as exc:
            raise DependencyUnavailable("PostgreSQL", self.address, str(exc).strip()) from None
        self.objects.delete([k for k, _ in deleted])
        result = PruneResult(len(deleted), sum(n for _, n in deleted))
        if deleted:
            log.info("retention pruned frames", extra={"fields": {"frames": result.frames_deleted,
                                                                   "bytes_freed": result.bytes_freed}})
        return result

    # ---- reading ----
    def has_stream(self, stream_id: str) -> bool:
        return bool(self._query("SELECT 1 FROM frames WHERE stream_id = %s LIMIT 1", (stream_id,)))

    def stream_position(self, stream_id: str) -> StreamPosition:
        [(count, last)] = self._query("SELECT COUNT(*), MAX(frame_index) FROM frames WHERE stream_id = %s",
                                      (stream_id,))
        return StreamPosition(stream_id, 0 if last is None else last + 1, count)

    def list_streams(self) -> list[StreamSummary]:
        rows = self._query(
            "SELECT stream_id, COUNT(*), MIN(frame_index), MAX(frame_index), MIN(timestamp_us), MAX(timestamp_us), "
            "SUM(bytes)::BIGINT FROM frames GROUP BY stream_id ORDER BY stream_id")
        return [StreamSummary(*r) for r in rows]

    def list_frames(self, stream_id: str, frames: tuple[int, int] | None, time: tuple[int, int] | None,
                    limit: int) -> list[FrameMeta]:
        where, params = ["stream_id = %s"], [stream_id]
        if frames:
            where.append("frame_index BETWEEN %s AND %s")
            params += frames
        if time:
            where.append("timestamp_us BETWEEN %s AND %s")
            params += time
        rows = self._query(  # one statement: frames and their groups from one snapshot
            "WITH f AS (SELECT id, stream_id, frame_index, timestamp_us, width, height, weights_id FROM frames "
            f"WHERE {' AND '.join(where)} ORDER BY frame_index LIMIT %s) "
            f"SELECT f.id, f.stream_id, f.frame_index, f.timestamp_us, f.width, f.height, f.weights_id, {META_COLUMNS} "
            "FROM f LEFT JOIN groups g ON g.frame_id = f.id ORDER BY f.frame_index, g.group_id", (*params, limit))
        frames_by_id: dict[int, tuple] = {}
        groups: dict[int, list[GroupMeta]] = {}
        for fid, *frame, gid, label, score, x, y, w, h, quality, length, enc, key_id, track in rows:
            frames_by_id.setdefault(fid, tuple(frame))
            groups.setdefault(fid, [])
            if gid is not None:
                groups[fid].append(group_meta(gid, label, score, x, y, w, h, quality, length, enc, key_id, track))
        return [FrameMeta(*frame, groups=tuple(groups[fid])) for fid, frame in frames_by_id.items()]

    def find_groups(self, selection: Selection) -> Iterator[GroupRef]:
        where, params = selection_sql(selection, "%s")
        sql = (f"SELECT {GROUP_COLUMNS} FROM groups g JOIN frames f ON f.id = g.frame_id WHERE {where} "
               "AND (f.timestamp_us, f.stream_id, f.frame_index, g.group_id) > (%s, %s, %s, %s) "
               "ORDER BY f.timestamp_us, f.stream_id, f.frame_index, g.group_id LIMIT %s")
        for row in paged(lambda cursor, page: self._query(sql, (*params, *cursor, page)), selection.limit):
            yield _group_ref(row)

    def background_at(self, stream_id: str, frame_index: int, include_encrypted: bool) -> GroupRef | None:
        rows = self._query(
            f"SELECT {GROUP_COLUMNS} FROM frames f JOIN groups g ON g.frame_id = f.id AND g.group_id = 0 "
            "WHERE f.stream_id = %s AND f.frame_index <= %s AND (g.encrypted = 0 OR %s) "
            "ORDER BY f.frame_index DESC LIMIT 1", (stream_id, frame_index, include_encrypted))
        return _group_ref(rows[0]) if rows else None

    def read_group(self, ref: GroupRef) -> StoredGroup:
        loc: _Location = ref.location  # type: ignore[assignment]
        name = f"{ref.stream_id}/{ref.frame_index} group {ref.meta.group_id}"
        try:
            data = self.objects.read(loc.key, loc.offset, loc.length)
        except NoSuchObject:
            raise GroupGone(f"{name} was removed by retention") from None
        except EOFError as exc:
            raise CorruptStreamError(f"{name}: {exc}") from None
        try:
            return StoredGroup(bitstream_pb2.FrameHeader.FromString(loc.header),
                               bitstream_pb2.GroupRecord.FromString(data))
        except DecodeError:
            raise CorruptStreamError(f"{name}: stored record is damaged") from None

    def close(self) -> None:
        """Finish every submitted frame, then close connections."""
        if self._closed:
            return
        self._closed = True
        for shard in self._shards:
            shard.shutdown(wait=True)
        with self._conns_lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()
        if self._check_conn is not None:
            self._check_conn.close()
        self.objects.close()
