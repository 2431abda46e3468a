"""Issue 19 defect 5 against a real cloud server on 127.0.0.1: a frame the server refuses at the RPC level
(INVALID_ARGUMENT over its message limit, RESOURCE_EXHAUSTED over twice that) must not block its stream.
The edge refuses such frames before spooling; one already spooled is found and refused; every permanent
refusal is dropped from the spool, counted and reported."""

from __future__ import annotations

import pytest

from edge.sinks import SpoolSink
from edge.sources import Backoff
from edge.spool import Spool
from edge.streaming import IngestStreamer
from proto.transport import ingest_request_size
from tests.cloud_fixtures import start_server  # noqa: F401 - fixture
from tests.edge_fixtures import needs_shared
from tests.test_edge_streaming import encoded_frames, stored_indices

pytestmark = needs_shared()

LIMIT = 64 * 1024  # the server's --max-message-size in these tests


def inflated(frame, index: int, nbytes: int):
    """A frame at `index` made about `nbytes` large by repeating its groups (the size check comes first)."""
    big = frame.__deepcopy__()
    big.header.frame_index = index
    while big.ByteSize() < nbytes:
        big.groups.extend(frame.groups)
    return big


@pytest.fixture
def frames(codec):
    good = encoded_frames(codec, 5)
    assert all(ingest_request_size(f.ByteSize()) < LIMIT for f in good)
    # 1: over the limit (the service answers INVALID_ARGUMENT); 3: over twice the limit (gRPC's RESOURCE_EXHAUSTED)
    return [good[0], inflated(good[1], 1, 100 * 1024), good[2], inflated(good[3], 3, 300 * 1024), good[4]]


def test_a_frame_refused_at_the_rpc_level_does_not_block_its_stream(tmp_path, start_server, frames):
    """Spooled by an edge that believed in a larger limit: found by sending one frame at a time, then refused."""
    server = start_server(max_message_bytes=LIMIT)
    spool = Spool(tmp_path / "s")
    for f in frames:
        spool.put(f.SerializeToString(), "cam", f.header.frame_index)
    with IngestStreamer(f"127.0.0.1:{server.port}", spool, tls=False, backoff=Backoff(initial=0.05, maximum=0.2),
                        max_request_bytes=16 * 2**20) as streamer:
        assert streamer.flush(60), streamer.stats
    st = streamer.stats  # a call gRPC ends may lose the acks of frames stored just before: resent, DUPLICATE
    assert (st.stored + st.duplicate, st.oversize, st.refused) == (3, 2, 2)
    assert spool.counters()["oversize"] == 2 and len(spool) == 0
    assert stored_indices(server.port, "cam") == [0, 2, 4]
    spool.close()


def test_the_edge_refuses_frames_over_the_limit_before_sending(tmp_path, start_server, frames):
    server = start_server(max_message_bytes=LIMIT)
    spool = Spool(tmp_path / "s", max_age_s=None)  # the frames were captured long ago
    streamer = IngestStreamer(f"127.0.0.1:{server.port}", spool, tls=False, max_request_bytes=LIMIT)
    sink = SpoolSink(spool, streamer)
    for f in frames:
        sink.submit(f, f.SerializeToString())
    assert len(spool) == 3 and spool.counters()["oversize"] == 2  # never spooled, counted
    spool.put(frames[1].SerializeToString(), "cam", 1)  # spooled before the limit was known
    with streamer:
        assert streamer.flush(30), streamer.stats
    assert (streamer.stats.stored, streamer.stats.oversize, streamer.stats.sent) == (3, 1, 3)  # never sent
    assert "over the server's message limit" in streamer.stats.last_rejection
    assert spool.counters()["oversize"] == 3 and len(spool) == 0
    assert stored_indices(server.port, "cam") == [0, 2, 4]
    spool.close()
