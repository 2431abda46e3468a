"""kill -9 the server (a real `roistream cloud serve` process) while an edge streams, restart it on the same
data directory: every acknowledged frame is there, byte for byte; nothing half-written is visible."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest

from cloud.client import CloudClient
from codec.bitstream import check_crc
from proto import service_pb2
from codec.paths import SOURCE_ROOT
from tests.cloud_fixtures import cloud_frames, relabel  # noqa: F401 - fixtures

pytestmark = pytest.mark.slow
Ack = service_pb2.IngestAck


class ServerProcess:
    """`roistream cloud serve --port 0` in a subprocess; the port is read from its JSON startup log line.
    `backends` are further arguments (--index, --objects, ... of a node on the shared store)."""

    def __init__(self, data: Path, *backends: str):
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "roistream.cli", "cloud", "serve", "--data", str(data), "--host", "127.0.0.1",
             "--port", "0", "--decode-threads", "1", "--grace", "1", *backends],
            cwd=SOURCE_ROOT, env=env, stderr=subprocess.PIPE, text=True)
        self.log: list[dict] = []
        started = threading.Event()

        def read_log():
            for line in self.proc.stderr:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                self.log.append(entry)
                if entry.get("event") == "server started":
                    self.port = entry["port"]
                    started.set()

        threading.Thread(target=read_log, daemon=True).start()
        if not started.wait(120):
            self.proc.kill()
            raise AssertionError(f"server did not start: {self.log}")

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)


def _stream_until_killed(server: ServerProcess, frames, kill_after: int) -> dict[int, service_pb2.IngestAck]:
    """Ingest at full speed; SIGKILL the server once `kill_after` frames are acked (more are in flight)."""
    acked = {}
    with CloudClient(f"127.0.0.1:{server.port}") as client:
        try:
            for ack in client.ingest(frames, window=8):
                assert ack.status in (Ack.STORED, Ack.DUPLICATE), ack.error
                acked[ack.frame_index] = ack
                if len(acked) == kill_after:
                    server.kill9()
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE
    assert server.proc.returncode == -signal.SIGKILL
    return acked


def _check_intact(port: int, sent: dict, acked: set[int], data: Path) -> None:
    with CloudClient(f"127.0.0.1:{port}") as client:
        stored = {f.frame_index: f for f in client.list_frames("cam", limit=10_000)}
        assert acked <= set(stored), f"acknowledged frames lost: {sorted(acked - set(stored))}"
        regions = list(client.get_regions(stream_id="cam", output="records", include_background=True))
    by_frame: dict[int, list] = {}
    for r in regions:
        by_frame.setdefault(r.frame_index, []).append(r)
    assert set(by_frame) == set(stored)
    for index, records in by_frame.items():  # every stored frame is whole and identical to what was sent
        original = sent[index]
        assert [r.record.SerializeToString() for r in records] == [g.SerializeToString() for g in original.groups]
        for r in records:
            assert r.header == original.header
            check_crc(r.header, r.record)
    seg_bytes = sum(p.stat().st_size for p in (data / "segments").iterdir())
    assert seg_bytes == sum(g.ByteSize() for i in stored for g in sent[i].groups)  # no uncommitted tail left


def test_kill9_during_ingest_loses_no_acknowledged_frame(tmp_path, cloud_frames):
    data = tmp_path / "data"
    sent = {i: relabel(cloud_frames.plain, "cam", i) for i in range(2000)}
    acked: set[int] = set()
    start = 0
    for round_, kill_after in enumerate((40, 97)):
        server = ServerProcess(data)
        if round_:
            _check_intact(server.port, sent, acked, data)
        # the edge resends from its first unacknowledged frame, as the protocol asks
        got = _stream_until_killed(server, (sent[i] for i in range(start, 2000)), kill_after)
        acked |= set(got)
        start = max(acked) + 1
        time.sleep(0.1)
    server = ServerProcess(data)
    try:
        _check_intact(server.port, sent, acked, data)
        with CloudClient(f"127.0.0.1:{server.port}") as client:  # and it keeps working after recovery
            [ack] = client.ingest([sent[start]])
            assert ack.status in (Ack.STORED, Ack.DUPLICATE)
    finally:
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(60) == 0  # graceful shutdown on SIGTERM
    assert any(e.get("event") == "server stopped" for e in server.log)
