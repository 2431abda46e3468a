"""Streaming to a real cloud server on 127.0.0.1: outage survival, order, no duplicates, rejects,
tokens, TLS, and an edge restart with frames still in its spool."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from cloud.client import CloudClient
from edge.pipeline import EdgePipeline
from edge.policy import RoiPolicy
from edge.sinks import SpoolSink
from edge.sources import Backoff, open_source
from edge.spool import Spool
from edge.streaming import IngestStreamer
from codec import paths
from tests.edge_fixtures import cloud_server, detector, needs_shared, self_signed_cert, start_cloud, vtest_frames  # noqa: F401

pytestmark = needs_shared()


def encoded_frames(codec, n, stream="cam", start=0):
    """Real encoded frames of vtest.avi (one object group each; quick to code)."""
    from codec.geometry import block_grid_shape
    from codec.plan import FramePlan

    out = []
    for i, image in enumerate(vtest_frames(n)):
        gm = np.zeros(block_grid_shape(*image.shape[:2]), np.int32)
        gm[10:16, 20:24] = 1
        plan = FramePlan.from_groups(gm, 0.6, labels={1: "person"}, groups=[1])
        out.append(codec.encode(image, plan, stream_id=stream, frame_index=start + i,
                                timestamp_us=1_700_000_000_000_000 + (start + i) * 100_000))
    return out


def stored_indices(port, stream):
    with CloudClient(f"127.0.0.1:{port}") as client:
        return [f.frame_index for f in client.list_frames(stream)]


@pytest.mark.slow
def test_spool_survives_a_cloud_outage(tmp_path, codec, detector):
    """Stop the cloud for several seconds mid-stream, restart it: every frame arrives, in order, once."""
    n = 16
    server = start_cloud(tmp_path / "cloud")
    port = server.port
    spool = Spool(tmp_path / "edge.spool")
    acks = []
    streamer = IngestStreamer(f"127.0.0.1:{port}", spool, tls=False, window=4,
                              backoff=Backoff(initial=0.2, maximum=1.0),
                              on_ack=lambda entry, ack: acks.append((ack.frame_index, ack.status))).start()
    pipe = EdgePipeline.init(codec, RoiPolicy(classes=["person"]), detector=detector,
                             sink=SpoolSink(spool, streamer), stream_id="cam", bg_interval=0)
    result = {}
    runner = threading.Thread(target=lambda: result.setdefault("summary", pipe.run(open_source(paths.video_path()),
                                                                                  max_frames=n)))
    runner.start()
    deadline = time.monotonic() + 120
    while len(acks) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(acks) >= 3, "nothing reached the cloud"
    server.stop(grace=0)  # the cloud goes down mid-stream...
    down_at = len(acks)
    time.sleep(5)
    queued = len(spool)
    assert queued >= 1 and not streamer.stats.connected  # ...frames pile up in the outbox
    server = start_cloud(tmp_path / "cloud", port=port)  # ...and comes back
    try:
        runner.join(300)
        assert streamer.flush(120), streamer.stats
        summary = result["summary"]
        assert summary.frames == n
        assert stored_indices(port, "cam") == list(range(n))  # all frames, none twice
        stored = [i for i, status in acks if status == 0]
        assert stored == list(range(n))  # stored in capture order, each once
        assert all(status in (0, 1) for _, status in acks)  # only STORED / DUPLICATE (a lost ack)
        assert streamer.stats.reconnects >= 1 and len(spool) == 0
        assert down_at < n
    finally:
        streamer.close()
        spool.close()
        server.stop(grace=0)


def test_rejected_frames_are_dropped_and_counted(tmp_path, codec, cloud_server):
    good = encoded_frames(codec, 3)
    bad = good[1].__deepcopy__()
    bad.groups[0].payload = bytes(len(bad.groups[0].payload))  # CRC mismatch: corrupt
    spool = Spool(tmp_path / "s")
    for f in (good[0], bad, good[2]):
        spool.put(f.SerializeToString(), f.header.stream_id, f.header.frame_index)
    with IngestStreamer(f"127.0.0.1:{cloud_server.port}", spool, tls=False) as streamer:
        assert streamer.flush(30)
    assert streamer.stats.stored == 2 and streamer.stats.rejected == 1
    assert "cam#1" in streamer.stats.last_rejection and "CRC" in streamer.stats.last_rejection.upper()
    assert spool.counters()["rejected"] == 1 and len(spool) == 0
    assert stored_indices(cloud_server.port, "cam") == [0, 2]
    spool.close()


def test_edge_restart_resends_spooled_frames_without_duplicates(tmp_path, codec):
    frames = encoded_frames(codec, 4)
    path = tmp_path / "edge.spool"
    spool = Spool(path)
    for f in frames:  # captured while the cloud was unreachable; then the edge process stops
        spool.put(f.SerializeToString(), "cam", f.header.frame_index)
    spool.close()
    server = start_cloud(tmp_path / "cloud")
    try:
        # an earlier run had delivered frame 0 but died before recording its ack
        with CloudClient(f"127.0.0.1:{server.port}") as client:
            list(client.ingest([frames[0]]))
        spool = Spool(path)  # the edge restarts
        assert spool.next_index("cam") == 4
        with IngestStreamer(f"127.0.0.1:{server.port}", spool, tls=False) as streamer:
            assert streamer.flush(30)
        assert (streamer.stats.duplicate, streamer.stats.stored) == (1, 3)
        assert stored_indices(server.port, "cam") == [0, 1, 2, 3]
        spool.close()
    finally:
        server.stop(grace=0)


def test_token_and_tls(tmp_path, codec):
    cert, key = self_signed_cert(tmp_path)
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"ingest": ["edge-secret"], "query": ["reader"]}))
    server = start_cloud(tmp_path / "cloud", tls_cert=cert, tls_key=key, tokens=tokens)
    target = f"localhost:{server.port}"
    try:
        frames = encoded_frames(codec, 2)
        spool = Spool(tmp_path / "s")
        for f in frames:
            spool.put(f.SerializeToString(), "cam", f.header.frame_index)
        wrong = IngestStreamer(target, spool, token="guess", ca_cert=cert).start()
        deadline = time.monotonic() + 30
        while wrong.fatal_error is None and time.monotonic() < deadline:
            time.sleep(0.05)
        wrong.close()
        assert "UNAUTHENTICATED" in (wrong.fatal_error or "") and len(spool) == 2  # nothing lost
        with IngestStreamer(target, spool, token="edge-secret", ca_cert=cert) as streamer:
            assert streamer.flush(30), streamer.stats
        assert streamer.stats.stored == 2
        spool.close()
    finally:
        server.stop(grace=0)
