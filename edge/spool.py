"""Durable on-disk outbox for encoded frames (SQLite in WAL mode).

Every encoded frame is written here before it is sent; the streamer removes it only when the
cloud acknowledges it (STORED or DUPLICATE: those bytes are stored), or drops it, counted by reason,
when the cloud refuses it for good (REJECTED, CONFLICT, too large). Frames
captured while the cloud is down or the link is slow wait here and go out in capture order when
it comes back, also after the edge process restarts.

The spool is bounded by total bytes and by age: when a bound is exceeded the oldest frames are
dropped and counted (`dropped_size`, `dropped_age`), so a long outage costs the oldest frames, not
the newest, and never the disk.

Durability: each put is one committed transaction. `synchronous="NORMAL"` (default) survives a
crash of the process; `"FULL"` also survives power loss, at the cost of an fsync per frame.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS frames (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_id TEXT NOT NULL,
    frame_index INTEGER NOT NULL,
    created_us INTEGER NOT NULL,
    nbytes INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS streams (stream_id TEXT PRIMARY KEY, next_index INTEGER NOT NULL);
"""
COUNTERS = ("put", "acked", "dropped_size", "dropped_age", "rejected", "conflict", "oversize")
REFUSED = ("rejected", "conflict", "oversize")  # why the cloud refused a frame for good (see `reject`)


@dataclass(frozen=True)
class SpoolEntry:
    seq: int  # spool order (strictly increasing)
    stream_id: str
    frame_index: int
    created_us: int
    data: bytes  # serialized EncodedFrame


class Spool:
    """FIFO of serialized frames on disk, safe to share between a producer and a sender thread."""

    def __init__(self, path: str | Path, max_bytes: int = 1 << 30, max_age_s: float | None = 24 * 3600,
                 synchronous: str = "NORMAL"):
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL"):
            raise ValueError("synchronous must be OFF, NORMAL or FULL")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_bytes, self.max_age_s = int(max_bytes), max_age_s
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        try:
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise RuntimeError(f"{self.path} is not a usable spool: {exc}") from exc
        for name in COUNTERS:
            self._db.execute("INSERT OR IGNORE INTO counters VALUES (?, 0)", (name,))
        row = self._db.execute("SELECT COUNT(*), COALESCE(SUM(nbytes), 0) FROM frames").fetchone()
        self._count, self._bytes = int(row[0]), int(row[1])
        self._closed = False

    # ---- producer side
    def put(self, data: bytes, stream_id: str, frame_index: int, created_us: int | None = None) -> int:
        """Append a serialized frame; enforces the bounds (dropping the oldest). Returns its seq."""
        created_us = time.time_ns() // 1000 if created_us is None else int(created_us)
        with self._cond:
            self._check_open()
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cur = self._db.execute(
                    "INSERT INTO frames (stream_id, frame_index, created_us, nbytes, data) VALUES (?, ?, ?, ?, ?)",
                    (stream_id, int(frame_index), created_us, len(data), sqlite3.Binary(data)))
                seq = int(cur.lastrowid)
                self._bump("put", 1)
                self._db.execute(
                    "INSERT INTO streams VALUES (?, ?) ON CONFLICT(stream_id) DO UPDATE SET "
                    "next_index = MAX(next_index, excluded.next_index)", (stream_id, int(frame_index) + 1))
                self._count += 1
                self._bytes += len(data)
                self._enforce_locked()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                row = self._db.execute("SELECT COUNT(*), COALESCE(SUM(nbytes), 0) FROM frames").fetchone()
                self._count, self._bytes = int(row[0]), int(row[1])
                raise
            self._cond.notify_all()
            return seq

    def next_index(self, stream_id: str) -> int:
        """One past the highest frame index ever spooled for this stream (0 if none): a restarted
        edge continues numbering there instead of colliding with frames the cloud already has."""
        with self._lock:
            row = self._db.execute("SELECT next_index FROM streams WHERE stream_id = ?", (stream_id,)).fetchone()
            return int(row[0]) if row else 0

    def _enforce_locked(self) -> None:
        if self.max_age_s is not None:
            cutoff = time.time_ns() // 1000 - int(self.max_age_s * 1e6)
            row = self._db.execute("SELECT COUNT(*), COALESCE(SUM(nbytes), 0) FROM frames WHERE created_us < ?",
                                   (cutoff,)).fetchone()
            if row[0]:
                self._db.execute("DELETE FROM frames WHERE created_us < ?", (cutoff,))
                self._bump("dropped_age", int(row[0]))
                self._count -= int(row[0])
                self._bytes -= int(row[1])
        while self._bytes > self.max_bytes and self._count > 0:
            seq, nbytes = self._db.execute("SELECT seq, nbytes FROM frames ORDER BY seq LIMIT 1").fetchone()
            self._db.execute("DELETE FROM frames WHERE seq = ?", (seq,))
            self._bump("dropped_size", 1)
            self._count -= 1
            self._bytes -= int(nbytes)

    def enforce_bounds(self) -> None:
        """Apply the age bound now (put applies both bounds on every write)."""
        with self._lock:
            self._check_open()
            self._db.execute("BEGIN IMMEDIATE")
            self._enforce_locked()
            self._db.execute("COMMIT")

    # ---- sender side
    def peek(self, after_seq: int = 0, limit: int = 16) -> list[SpoolEntry]:
        """The oldest frames with seq > after_seq, in order."""
        with self._lock:
            self._check_open()
            rows = self._db.execute(
                "SELECT seq, stream_id, frame_index, created_us, data FROM frames WHERE seq > ? ORDER BY seq LIMIT ?",
                (int(after_seq), int(limit))).fetchall()
        return [SpoolEntry(int(r[0]), r[1], int(r[2]), int(r[3]), bytes(r[4])) for r in rows]

    def wait(self, after_seq: int, timeout: float) -> bool:
        """Block until a frame with seq > after_seq exists (True) or timeout (False)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if self._closed:
                    return False
                if self._db.execute("SELECT 1 FROM frames WHERE seq > ? LIMIT 1", (int(after_seq),)).fetchone():
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.5))

    def ack(self, seq: int) -> bool:
        """Remove an acknowledged frame. False if it was already gone (dropped by a bound)."""
        return self._remove(seq, "acked")

    def reject(self, seq: int, reason: str = "rejected") -> bool:
        """Remove a frame the cloud refused for good (it would be refused again), counted under `reason`
        (one of REFUSED): invalid, a different frame holds its index, or too large to send."""
        if reason not in REFUSED:
            raise ValueError(f"unknown refusal {reason!r} (one of {', '.join(REFUSED)})")
        return self._remove(seq, reason)

    def count_refused(self, reason: str) -> None:
        """Count a frame refused before it was spooled (too large to send): every refusal is counted here."""
        if reason not in REFUSED:
            raise ValueError(f"unknown refusal {reason!r} (one of {', '.join(REFUSED)})")
        with self._lock:
            self._check_open()
            self._bump(reason, 1)

    def _remove(self, seq: int, counter: str) -> bool:
        with self._cond:
            self._check_open()
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute("SELECT nbytes FROM frames WHERE seq = ?", (int(seq),)).fetchone()
            if row:
                self._db.execute("DELETE FROM frames WHERE seq = ?", (int(seq),))
                self._count -= 1
                self._bytes -= int(row[0])
            self._bump(counter, 1)
            self._db.execute("COMMIT")
            self._cond.notify_all()
            return row is not None

    def wait_empty(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._count > 0 and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.5))
            return self._count == 0

    # ---- state
    def _bump(self, name: str, n: int) -> None:
        self._db.execute("UPDATE counters SET value = value + ? WHERE name = ?", (n, name))

    def counters(self) -> dict[str, int]:
        with self._lock:
            self._check_open()
            return {r[0]: int(r[1]) for r in self._db.execute("SELECT name, value FROM counters")}

    @property
    def dropped(self) -> int:
        c = self.counters()
        return c["dropped_size"] + c["dropped_age"]

    def __len__(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        return self._bytes

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"spool {self.path} is closed")

    def close(self) -> None:
        with self._cond:
            if not self._closed:
                self._closed = True
                self._db.close()
                self._cond.notify_all()

    def __enter__(self) -> "Spool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
