"""Append-only segment files holding group records, addressed by (segment, offset, length).

Only the storage's single writer thread appends; any thread reads with one positioned read of
exactly the bytes it needs, so reading one group never touches another group's payload.
Crash safety comes from the index: a segment's bytes count only up to the committed size the
index records, and `recover` cuts off anything written after the last commit.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

SUFFIX = ".seg"


def segment_path(directory: Path, segment_id: int) -> Path:
    return directory / f"{segment_id:08d}{SUFFIX}"


def read_bytes(directory: Path, segment_id: int, offset: int, length: int) -> bytes:
    """Exactly `length` bytes at `offset`; FileNotFoundError if the segment was deleted, EOFError if short."""
    fd = os.open(segment_path(directory, segment_id), os.O_RDONLY)
    try:
        data = os.pread(fd, length, offset)
    finally:
        os.close(fd)
    if len(data) != length:
        raise EOFError(f"segment {segment_id} ends before offset {offset}+{length}")
    return data


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SegmentWriter:
    """The append side: one active segment, rotated when it would grow past `segment_bytes`."""

    def __init__(self, directory: Path, segment_bytes: int):
        self.directory = directory
        self.segment_bytes = segment_bytes
        directory.mkdir(parents=True, exist_ok=True)
        self.active_id = 0
        self.active_size = 0
        self._fd: int | None = None
        self._dirty = False  # the active segment was written since the last sync
        self._rotated: list[int] = []  # segments rotated out since the last sync: fsync, then close

    def recover(self, committed: dict[int, int]) -> None:
        """Make the files match the index: cut uncommitted tails, delete files the index does not know."""
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            segment_id = int(path.stem)
            size = path.stat().st_size
            if segment_id not in committed:
                log.warning("deleting segment the index does not reference", extra={"fields": {"segment": path.name}})
                path.unlink()
            elif size > committed[segment_id]:
                log.warning("truncating uncommitted segment tail", extra={"fields": {
                    "segment": path.name, "bytes": size - committed[segment_id]}})
                os.truncate(path, committed[segment_id])
            elif size < committed[segment_id]:
                log.error("segment is shorter than its committed size: records at its end are lost",
                          extra={"fields": {"segment": path.name, "size": size, "committed": committed[segment_id]}})
        _fsync_dir(self.directory)
        if committed:
            self._open(max(committed))
        else:
            self._open(1)

    def _open(self, segment_id: int) -> None:
        path = segment_path(self.directory, segment_id)
        created = not path.exists()
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        if created:
            _fsync_dir(self.directory)
        self.active_id = segment_id
        self.active_size = os.fstat(self._fd).st_size

    def append(self, data: bytes) -> tuple[int, int]:
        """Write `data` contiguously into one segment; returns (segment id, offset). Not durable until sync()."""
        assert self._fd is not None, "recover() first"
        if self.active_size and self.active_size + len(data) > self.segment_bytes:
            if self._dirty:
                self._rotated.append(self._fd)
            else:
                os.close(self._fd)
            self._fd = None
            self._open(self.active_id + 1)
        offset = self.active_size
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]
        self.active_size += len(data)
        self._dirty = True
        return self.active_id, offset

    def sync(self) -> None:
        """fsync everything appended since the last sync; close segments rotated out."""
        while self._rotated:
            fd = self._rotated[0]
            os.fdatasync(fd)
            os.close(fd)
            self._rotated.pop(0)
        if self._dirty:
            os.fdatasync(self._fd)
            self._dirty = False

    def truncate(self, segment_id: int, size: int) -> None:
        """Undo appends after a failed commit (the index never saw them)."""
        path = segment_path(self.directory, segment_id)
        if path.exists():
            os.truncate(path, size)
        if segment_id == self.active_id:
            self.active_size = size

    def delete(self, segment_id: int) -> None:
        segment_path(self.directory, segment_id).unlink(missing_ok=True)

    def close(self) -> None:
        self.sync()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
