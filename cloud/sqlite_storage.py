"""The embedded default storage: a SQLite index (WAL) over append-only segment files.

Layout under the data directory:
    index.sqlite        streams' frames and groups (label, bbox, score, sizes, location), segment sizes
    segments/NNNNNNNN.seg  group records back to back; each group at (segment, offset, length)

Durability: one writer thread takes frames from a queue in batches ("group commit"): it appends
their records to the active segment, fsyncs it, then commits the index rows in one SQLite
transaction (synchronous=FULL). `submit_frame`'s future resolves only after that commit, so an acknowledged
frame survives kill -9 or power loss. A crash between the fsync and the commit leaves bytes no
index row points at; on startup `SegmentWriter.recover` truncates every segment to the size the
index committed. Batching lets many concurrent streams share one fsync.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import DecodeError

from codec.errors import CorruptStreamError
from proto import bitstream_pb2

from . import segments
from .index_sql import group_meta, paged, selection_sql
from .selector import Selection
from .storage import (FrameMeta, GroupGone, GroupMeta, GroupRef, PruneResult, PutResult, PutStatus, StoredGroup,
                      StreamPosition, StreamSummary, frame_digest)

log = logging.getLogger(__name__)

DEFAULT_SEGMENT_BYTES = 64 * 2**20
MAX_BATCH = 128  # frames per group commit

SCHEMA = """
CREATE TABLE IF NOT EXISTS frames (
    id INTEGER PRIMARY KEY,
    stream_id TEXT NOT NULL,
    frame_index INTEGER NOT NULL,
    timestamp_us INTEGER NOT NULL,
    stored_us INTEGER NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    weights_id TEXT NOT NULL,
    header BLOB NOT NULL,
    segment INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    content_hash BLOB,  -- storage.frame_digest of the header and records (NULL: written before it was kept)
    UNIQUE (stream_id, frame_index)
);
CREATE INDEX IF NOT EXISTS frames_by_time ON frames (stream_id, timestamp_us, frame_index);
CREATE INDEX IF NOT EXISTS frames_by_segment ON frames (segment);
CREATE TABLE IF NOT EXISTS groups (
    frame_id INTEGER NOT NULL,
    group_id INTEGER NOT NULL,
    label TEXT NOT NULL,
    score REAL NOT NULL,
    x INTEGER NOT NULL, y INTEGER NOT NULL, w INTEGER NOT NULL, h INTEGER NOT NULL,
    quality INTEGER NOT NULL,
    encrypted INTEGER NOT NULL,
    key_id TEXT NOT NULL,
    offset INTEGER NOT NULL,
    length INTEGER NOT NULL,
    track_id INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (frame_id, group_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS groups_by_label ON groups (label, frame_id);
CREATE TABLE IF NOT EXISTS segments (
    id INTEGER PRIMARY KEY,
    committed INTEGER NOT NULL,  -- bytes of the file that index rows may reference
    live INTEGER NOT NULL        -- bytes still referenced by frames (0 = the file can go)
);
"""

GROUP_COLUMNS = ("f.timestamp_us, f.stream_id, f.frame_index, g.group_id, g.label, g.score, g.x, g.y, g.w, g.h, "
                 "g.quality, g.length, g.encrypted, g.key_id, g.track_id, f.segment, g.offset, f.header")


@dataclass(frozen=True)
class _Location:
    segment: int
    offset: int
    length: int
    header: bytes


@dataclass
class _Put:
    frame: bitstream_pb2.EncodedFrame
    future: Future


@dataclass
class _Prune:
    max_age_s: float | None
    max_bytes: int | None
    future: Future


_STOP = object()


def _group_ref(row: tuple) -> GroupRef:
    ts, stream_id, frame_index, gid, label, score, x, y, w, h, quality, length, enc, key_id, track, seg, off, header = row
    meta = group_meta(gid, label, score, x, y, w, h, quality, length, enc, key_id, track)
    return GroupRef(stream_id, frame_index, ts, meta, _Location(seg, off, length, header))


class SqliteSegmentStorage:
    """`Storage` on one machine: see the module docstring for layout and durability."""

    def __init__(self, data_dir: Path | str, segment_bytes: int = DEFAULT_SEGMENT_BYTES,
                 clock: Callable[[], float] = time.time):
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._db_path = self.data_dir / "index.sqlite"
        self._clock = clock
        self._conn = sqlite3.connect(self._db_path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(SCHEMA)
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(groups)")}
        if "track_id" not in columns:  # an index written before groups carried their track
            self._conn.execute("ALTER TABLE groups ADD COLUMN track_id INTEGER NOT NULL DEFAULT 0")
        if "content_hash" not in {row[1] for row in self._conn.execute("PRAGMA table_info(frames)")}:
            self._conn.execute("ALTER TABLE frames ADD COLUMN content_hash BLOB")  # rebuilt on demand when NULL
        self._committed = dict(self._conn.execute("SELECT id, committed FROM segments"))
        self._segments = segments.SegmentWriter(self.data_dir / "segments", segment_bytes)
        self._segments.recover(self._committed)
        self._readers = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._reader_lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue()
        self._state_lock = threading.Lock()
        self._closed = False
        self._writer = threading.Thread(target=self._write_loop, name="storage-writer", daemon=True)
        self._writer.start()

    # ---- writing (the writer thread owns self._conn and self._segments) ----
    def submit_frame(self, frame: bitstream_pb2.EncodedFrame) -> Future:
        return self._submit(_Put(frame, Future()))

    def prune(self, max_age_s: float | None, max_bytes: int | None) -> PruneResult:
        return self._submit(_Prune(max_age_s, max_bytes, Future())).result()

    def _submit(self, task) -> Future:
        with self._state_lock:  # a task queued after _STOP would never be answered
            if self._closed:
                raise RuntimeError("storage is closed")
            self._queue.put(task)
        return task.future

    def _write_loop(self) -> None:
        """Take whatever is queued (up to MAX_BATCH frames) and commit it together; prunes run in order."""
        while True:
            task, batch = self._queue.get(), []
            while task is not None:
                if task is _STOP or isinstance(task, _Prune):
                    if batch:
                        self._write_batch(batch)
                        batch = []
                    if task is _STOP:
                        return
                    self._run(self._prune, task)
                else:
                    batch.append(task)
                    if len(batch) >= MAX_BATCH:
                        break
                try:
                    task = self._queue.get_nowait()
                except queue.Empty:
                    task = None
            if batch:
                self._write_batch(batch)

    @staticmethod
    def _run(fn, task) -> None:
        try:
            task.future.set_result(fn(task))
        except Exception as exc:  # noqa: BLE001 - handed to the caller's thread
            task.future.set_exception(exc)

    def _stored_digest(self, stream_id: str, frame_index: int) -> bytes | None:
        """The content digest of the frame stored at (stream, index); None if there is none.

        Frames written before digests were kept get theirs rebuilt from the stored header and records."""
        row = self._conn.execute("SELECT id, content_hash, header, segment FROM frames WHERE stream_id = ? AND "
                                 "frame_index = ?", (stream_id, frame_index)).fetchone()
        if row is None:
            return None
        frame_id, digest, header, segment = row
        if digest is None:
            spans = self._conn.execute("SELECT offset, length FROM groups WHERE frame_id = ? ORDER BY offset",
                                       (frame_id,)).fetchall()
            digest = frame_digest(header, [segments.read_bytes(self._segments.directory, segment, off, n)
                                           for off, n in spans])
        return digest

    def _next_index(self, stream_id: str) -> int:
        row = self._conn.execute("SELECT MAX(frame_index) FROM frames WHERE stream_id = ?", (stream_id,)).fetchone()
        return 0 if row[0] is None else row[0] + 1

    def _write_batch(self, batch: list[_Put]) -> None:
        """Append all new frames, fsync once, commit once, then resolve every caller.

        Each frame's index rows go in under their own savepoint: a frame whose rows the index refuses
        fails alone (its bytes stay in the segment, counted committed but not live), the others commit.
        """
        results: list[PutResult | Exception] = []
        rows: list[tuple] = []  # (position in batch, frame row, group rows)
        seen: dict[tuple[str, int], bytes] = {}  # (stream, index) -> digest of the frame this batch writes there
        ends: dict[int, int] = {}  # segment -> end of the bytes this batch appended
        now_us = int(self._clock() * 1e6)
        try:
            for task in batch:
                h = task.frame.header
                key = (h.stream_id, h.frame_index)
                header = h.SerializeToString()
                records = [g.SerializeToString() for g in task.frame.groups]
                digest = frame_digest(header, records)
                stored = seen[key] if key in seen else self._stored_digest(*key)
                if stored is not None:
                    if stored == digest:
                        results.append(PutResult(PutStatus.DUPLICATE, 0))
                    else:
                        taken = max([self._next_index(h.stream_id)] + [i + 1 for s_, i in seen if s_ == h.stream_id])
                        results.append(PutResult(PutStatus.CONFLICT, 0, taken))
                    continue
                seen[key] = digest
                blob = b"".join(records)
                segment, offset = self._segments.append(blob)
                ends[segment] = offset + len(blob)
                group_rows, pos = [], offset
                for g, data in zip(task.frame.groups, records):
                    enc = g.HasField("encryption")
                    group_rows.append((g.group_id, g.label, g.score, g.bbox.x, g.bbox.y, g.bbox.width, g.bbox.height,
                                       g.quality, int(enc), g.encryption.key_id if enc else "", pos, len(data),
                                       g.track_id))
                    pos += len(data)
                rows.append((len(results), (h.stream_id, h.frame_index, h.timestamp_us, now_us, h.width, h.height,
                                            h.weights_id, header, segment, len(blob), digest), group_rows))
                results.append(PutResult(PutStatus.STORED, len(blob)))
            if rows:
                self._segments.sync()
                for position, exc in self._commit(rows, ends).items():
                    results[position] = exc
        except Exception as exc:  # noqa: BLE001 - every caller of the batch learns the frame was not stored
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            for segment in ends:
                self._segments.truncate(segment, self._committed.get(segment, 0))
            log.exception("storage write failed")
            for task in batch:
                task.future.set_exception(exc)
            return
        for task, result in zip(batch, results):
            if isinstance(result, Exception):
                task.future.set_exception(result)
            else:
                task.future.set_result(result)

    def _commit(self, rows: list[tuple], ends: dict[int, int]) -> dict[int, Exception]:
        """One transaction for the batch, one savepoint per frame; the frames the index refused."""
        c = self._conn
        c.execute("BEGIN")
        live: dict[int, int] = {}
        failed: dict[int, Exception] = {}
        for position, frame_row, group_rows in rows:
            c.execute("SAVEPOINT frame")
            try:
                frame_id = c.execute("INSERT INTO frames (stream_id, frame_index, timestamp_us, stored_us, width, "
                                     "height, weights_id, header, segment, bytes, content_hash) "
                                     "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                                     frame_row).lastrowid
                c.executemany("INSERT INTO groups (frame_id, group_id, label, score, x, y, w, h, quality, encrypted, "
                              "key_id, offset, length, track_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                              [(frame_id, *g) for g in group_rows])
            except (sqlite3.IntegrityError, OverflowError) as exc:  # this frame's values, not the database
                c.execute("ROLLBACK TO frame")
                c.execute("RELEASE frame")
                log.error("frame refused by the index", extra={"fields": {
                    "stream_id": frame_row[0], "frame_index": frame_row[1], "error": str(exc)}})
                failed[position] = exc
                continue
            c.execute("RELEASE frame")
            live[frame_row[8]] = live.get(frame_row[8], 0) + frame_row[9]
        for segment, end in ends.items():
            c.execute("INSERT INTO segments (id, committed, live) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                      "committed = excluded.committed, live = live + excluded.live", (segment, end, live.get(segment, 0)))
        c.execute("COMMIT")
        self._committed.update(ends)
        return failed

    def _prune(self, task: _Prune) -> PruneResult:
        """Delete frames by age, then whole oldest segments while over the byte budget; unlink dead segments."""
        c = self._conn
        frames_deleted = 0
        c.execute("BEGIN")
        try:
            if task.max_age_s is not None:
                cutoff = int((self._clock() - task.max_age_s) * 1e6)
                old = c.execute("SELECT id, segment, bytes FROM frames WHERE stored_us < ?", (cutoff,)).fetchall()
                for frame_id, segment, size in old:
                    c.execute("DELETE FROM groups WHERE frame_id = ?", (frame_id,))
                    c.execute("DELETE FROM frames WHERE id = ?", (frame_id,))
                    c.execute("UPDATE segments SET live = live - ? WHERE id = ?", (size, segment))
                frames_deleted += len(old)
            if task.max_bytes is not None:
                total = c.execute("SELECT COALESCE(SUM(committed), 0) FROM segments").fetchone()[0]
                for segment, size in c.execute("SELECT id, committed FROM segments WHERE id != ? ORDER BY id",
                                               (self._segments.active_id,)).fetchall():
                    if total <= task.max_bytes:
                        break
                    ids = [r[0] for r in c.execute("SELECT id FROM frames WHERE segment = ?", (segment,))]
                    c.executemany("DELETE FROM groups WHERE frame_id = ?", [(i,) for i in ids])
                    c.execute("DELETE FROM frames WHERE segment = ?", (segment,))
                    c.execute("UPDATE segments SET live = 0 WHERE id = ?", (segment,))
                    frames_deleted += len(ids)
                    total -= size
            dead = c.execute("SELECT id, committed FROM segments WHERE live <= 0 AND id != ?",
                             (self._segments.active_id,)).fetchall()
            c.executemany("DELETE FROM segments WHERE id = ?", [(d[0],) for d in dead])
            c.execute("COMMIT")
        except Exception:
            c.execute("ROLLBACK")
            raise
        for segment, _ in dead:
            self._segments.delete(segment)
            self._committed.pop(segment, None)
        result = PruneResult(frames_deleted, sum(d[1] for d in dead))
        if frames_deleted:
            log.info("retention pruned frames", extra={"fields": {"frames": result.frames_deleted,
                                                                   "bytes_freed": result.bytes_freed}})
        return result

    # ---- reading (any thread; one read-only connection per thread) ----
    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._readers, "conn", None)
        if conn is None:
            conn = sqlite3.connect(f"{self._db_path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False,
                                   isolation_level=None)
            conn.execute("PRAGMA busy_timeout = 5000")
            self._readers.conn = conn
            with self._reader_lock:
                self._reader_conns.append(conn)
        return conn

    def has_stream(self, stream_id: str) -> bool:
        return self._reader().execute("SELECT 1 FROM frames WHERE stream_id = ? LIMIT 1",
                                      (stream_id,)).fetchone() is not None

    def stream_position(self, stream_id: str) -> StreamPosition:
        count, last = self._reader().execute("SELECT COUNT(*), MAX(frame_index) FROM frames WHERE stream_id = ?",
                                             (stream_id,)).fetchone()
        return StreamPosition(stream_id, 0 if last is None else last + 1, count)

    def list_streams(self) -> list[StreamSummary]:
        rows = self._reader().execute(
            "SELECT stream_id, COUNT(*), MIN(frame_index), MAX(frame_index), MIN(timestamp_us), MAX(timestamp_us), "
            "SUM(bytes) FROM frames GROUP BY stream_id ORDER BY stream_id").fetchall()
        return [StreamSummary(*r) for r in rows]

    def list_frames(self, stream_id: str, frames: tuple[int, int] | None, time: tuple[int, int] | None,
                    limit: int) -> list[FrameMeta]:
        where, params = ["stream_id = ?"], [stream_id]
        if frames:
            where.append("frame_index BETWEEN ? AND ?")
            params += frames
        if time:
            where.append("timestamp_us BETWEEN ? AND ?")
            params += time
        conn = self._reader()
        conn.execute("BEGIN")  # one snapshot for frames and their groups
        try:
            rows = conn.execute("SELECT id, stream_id, frame_index, timestamp_us, width, height, weights_id FROM frames "
                                f"WHERE {' AND '.join(where)} ORDER BY frame_index LIMIT ?",
                                (*params, limit)).fetchall()
            groups: dict[int, list[GroupMeta]] = {r[0]: [] for r in rows}
            ids = list(groups)
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                for fid, *g in conn.execute(
                        "SELECT frame_id, group_id, label, score, x, y, w, h, quality, length, encrypted, key_id, "
                        "track_id "
                        f"FROM groups WHERE frame_id IN ({','.join('?' * len(chunk))}) ORDER BY frame_id, group_id",
                        chunk):
                    groups[fid].append(group_meta(*g))
        finally:
            conn.execute("COMMIT")
        return [FrameMeta(*r[1:], groups=tuple(groups[r[0]])) for r in rows]

    def find_groups(self, selection: Selection) -> Iterator[GroupRef]:
        where, params = selection_sql(selection)
        sql = (f"SELECT {GROUP_COLUMNS} FROM groups g JOIN frames f ON f.id = g.frame_id WHERE {where} "
               "AND (f.timestamp_us, f.stream_id, f.frame_index, g.group_id) > (?, ?, ?, ?) "
               "ORDER BY f.timestamp_us, f.stream_id, f.frame_index, g.group_id LIMIT ?")
        for row in paged(lambda cursor, page: self._reader().execute(sql, (*params, *cursor, page)).fetchall(),
                         selection.limit):
            yield _group_ref(row)

    def background_at(self, stream_id: str, frame_index: int, include_encrypted: bool) -> GroupRef | None:
        row = self._reader().execute(
            f"SELECT {GROUP_COLUMNS} FROM frames f JOIN groups g ON g.frame_id = f.id AND g.group_id = 0 "
            "WHERE f.stream_id = ? AND f.frame_index <= ? AND (g.encrypted = 0 OR ?) "
            "ORDER BY f.frame_index DESC LIMIT 1", (stream_id, frame_index, include_encrypted)).fetchone()
        return _group_ref(row) if row else None

    def read_group(self, ref: GroupRef) -> StoredGroup:
        loc: _Location = ref.location  # type: ignore[assignment]
        try:
            data = segments.read_bytes(self._segments.directory, loc.segment, loc.offset, loc.length)
        except FileNotFoundError:
            raise GroupGone(f"{ref.stream_id}/{ref.frame_index} group {ref.meta.group_id} was removed by retention") \
                from None
        except EOFError as exc:
            raise CorruptStreamError(f"{ref.stream_id}/{ref.frame_index} group {ref.meta.group_id}: {exc}") from None
        try:
            return StoredGroup(bitstream_pb2.FrameHeader.FromString(loc.header),
                               bitstream_pb2.GroupRecord.FromString(data))
        except DecodeError:
            raise CorruptStreamError(f"{ref.stream_id}/{ref.frame_index} group {ref.meta.group_id}: stored record "
                                     "is damaged") from None

    def check(self) -> None:
        """Nothing to check: the index and segments are local files, failures show on the call that meets them."""

    def close(self) -> None:
        """Let the writer finish every queued frame, then close files and connections."""
        with self._state_lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        self._writer.join()
        self._segments.close()
        self._conn.close()
        with self._reader_lock:
            for conn in self._reader_conns:
                conn.close()
            self._reader_conns.clear()
