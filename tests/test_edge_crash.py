"""kill -9 a real `roistream edge run` process mid-stream and run it again on the same spool: every
frame the killed edge had spooled or delivered is in the cloud afterwards, each stored once, the spool
opens intact, and the new run continues the numbering after them."""

from __future__ import annotations

import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from cloud.client import CloudClient
from codec import paths
from codec.paths import SOURCE_ROOT
from tests.edge_fixtures import needs_shared, start_cloud

pytestmark = [needs_shared(), pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _edge(port: int, spool: Path, max_frames: int) -> subprocess.Popen:
    """The edge CLI on vtest.avi, small and fast settings (no tracker, 1/4 background every 5 frames)."""
    return subprocess.Popen(
        [sys.executable, "-m", "roistream.cli", "edge", "run", "--source", str(paths.video_path()),
         "--stream", "cam", "--cloud", f"127.0.0.1:{port}", "--insecure", "--spool", str(spool),
         "--max-frames", str(max_frames), "--tracker", "none", "--bg-scale", "4", "--bg-interval", "5",
         "--no-status", "--flush-timeout", "60"],
        cwd=SOURCE_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _spooled(spool: Path) -> list[int]:
    """Frame indexes waiting in the spool file, read with plain SQLite (as another process sees them)."""
    if not spool.exists():
        return []
    with sqlite3.connect(spool, timeout=30) as db:
        try:
            return [r[0] for r in db.execute("SELECT frame_index FROM frames ORDER BY seq")]
        except sqlite3.OperationalError:  # the edge has not created its tables yet
            return []


def _stored(port: int) -> tuple[list[int], int]:
    """(frame indexes the cloud lists for the stream, the frame count it reports for the stream)."""
    with CloudClient(f"127.0.0.1:{port}") as client:
        try:
            indexes = [f.frame_index for f in client.list_frames("cam", limit=10_000)]
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:  # nothing stored yet
                raise
            return [], 0
        counts = [s.frames for s in client.list_streams() if s.stream_id == "cam"]
    return indexes, (counts[0] if counts else 0)


def _kill_when(edge: subprocess.Popen, ready, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if edge.poll() is not None:
            raise AssertionError(f"the edge ended before it was killed:\n{edge.stdout.read()}")
        if time.monotonic() > deadline:
            edge.kill()
            raise AssertionError("the edge made no progress")
        time.sleep(0.1)
    edge.send_signal(signal.SIGKILL)
    edge.wait(30)
    assert edge.returncode == -signal.SIGKILL


def _run_again_and_check(port: int, spool: Path, before: set[int]) -> None:
    """A second run of 2 frames delivers what the killed one left, once, and numbers on after it."""
    edge = _edge(port, spool, 2)
    out, _ = edge.communicate(timeout=300)
    assert edge.returncode == 0, out
    indexes, count = _stored(port)
    last = max(before)
    assert sorted(indexes) == sorted(before | {last + 1, last + 2}), out
    assert count == len(indexes), "a frame was stored twice"
    assert _spooled(spool) == []


def test_kill9_while_the_cloud_is_down_loses_no_spooled_frame(tmp_path):
    port, spool = _free_port(), tmp_path / "edge.spool"
    edge = _edge(port, spool, 1000)  # nothing listens on the port yet: every frame waits in the spool
    _kill_when(edge, lambda: len(_spooled(spool)) >= 4)
    waiting = _spooled(spool)
    assert waiting == list(range(len(waiting)))
    server = start_cloud(tmp_path / "cloud", port=port)
    try:
        _run_again_and_check(port, spool, set(waiting))
    finally:
        server.stop(grace=0)


def test_kill9_mid_stream_loses_no_frame(tmp_path):
    spool = tmp_path / "edge.spool"
    server = start_cloud(tmp_path / "cloud")
    try:
        edge = _edge(server.port, spool, 1000)
        _kill_when(edge, lambda: len(_stored(server.port)[0]) >= 3)
        delivered, waiting = set(_stored(server.port)[0]), set(_spooled(spool))
        made = delivered | waiting
        assert made == set(range(len(made))), (delivered, waiting)  # no gap: nothing dropped at the kill
        _run_again_and_check(server.port, spool, made)
    finally:
        server.stop(grace=0)
