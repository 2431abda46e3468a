"""Issue 19 defect 1 against a real cloud server on 127.0.0.1: an edge that lost its numbering (restarted
without its spool, or a second edge on the stream) never has a frame dropped as delivered unless those
bytes are stored. It learns where the stream continues on connect; a frame that still collides is answered
CONFLICT, counted and reported, and the pipeline numbers the next frames past the cloud's."""

from __future__ import annotations

import json

import grpc
import pytest

from bench.ingest import relabel
from cloud.client import CloudClient
from edge.pipeline import EdgePipeline
from edge.policy import RoiPolicy
from edge.sinks import SpoolSink
from edge.sources import open_source
from edge.spool import Spool
from edge.streaming import IngestStreamer, first_frame_index
from codec import paths
from tests.cloud_fixtures import TOKENS, start_server, tokens_file  # noqa: F401 - fixtures
from tests.edge_fixtures import cloud_server, detector, needs_shared  # noqa: F401 - fixtures
from tests.test_edge_crash import _edge
from tests.test_edge_streaming import encoded_frames

pytestmark = needs_shared()


def stored(port: int, stream: str) -> dict[int, int]:
    """frame index -> capture time of what the cloud holds."""
    with CloudClient(f"127.0.0.1:{port}") as client:
        return {f.frame_index: f.timestamp_us for f in client.list_frames(stream)}


def deliver(target: str, spool: Spool, frames) -> IngestStreamer:
    for f in frames:
        spool.put(f.SerializeToString(), f.header.stream_id, f.header.frame_index)
    with IngestStreamer(target, spool, tls=False) as streamer:
        assert streamer.flush(30), streamer.stats
    return streamer


def test_an_edge_restarted_without_its_spool_continues_past_the_clouds_frames(tmp_path, codec, cloud_server):
    target = f"127.0.0.1:{cloud_server.port}"
    first = deliver(target, Spool(tmp_path / "first.spool"), encoded_frames(codec, 3))
    assert first.stats.stored == 3
    spool = Spool(tmp_path / "new-box.spool")  # the same camera on a new box: an empty spool
    streamer = IngestStreamer(target, spool, tls=False)
    start = first_frame_index("cam", spool, streamer)
    assert (spool.next_index("cam"), start) == (0, 3)  # the spool alone would have said 0
    again = deliver(target, spool, encoded_frames(codec, 3, start=start))
    assert (again.stats.stored, again.stats.duplicate, again.stats.conflict) == (3, 0, 0)
    assert sorted(stored(cloud_server.port, "cam")) == [0, 1, 2, 3, 4, 5]  # produced 6, stored 6, lost 0
    spool.close()


def test_a_colliding_frame_is_a_conflict_never_a_delivery(tmp_path, codec, cloud_server):
    """What the restarted edge did before: number from 0 again. The cloud keeps its frames, the edge hears
    CONFLICT for each collision (with where the stream continues) and counts none of them as delivered."""
    target = f"127.0.0.1:{cloud_server.port}"
    frames = encoded_frames(codec, 6)
    deliver(target, Spool(tmp_path / "first.spool"), frames[:3])
    before = stored(cloud_server.port, "cam")
    other = [relabel(f, "cam", i, f.header.timestamp_us) for i, f in enumerate(frames[3:])]  # other pictures, 0..2
    resend = frames[1].__deepcopy__()  # and one true resend of stored bytes
    spool = Spool(tmp_path / "wiped.spool")
    streamer = deliver(target, spool, [*other, resend])
    st = streamer.stats
    assert (st.stored, st.duplicate, st.conflict) == (0, 1, 3)
    assert st.cloud_next_index == 3 and "cam#2" in st.last_rejection and "continues at frame 3" in st.last_rejection
    assert spool.counters()["conflict"] == 3 and spool.counters()["acked"] == 1 and len(spool) == 0
    assert stored(cloud_server.port, "cam") == before  # nothing forged over the stored frames
    spool.close()


@pytest.mark.slow
def test_the_pipeline_numbers_past_a_conflict(tmp_path, codec, detector, cloud_server):
    """A pipeline that starts at 0 on a stream the cloud holds up to 2 (cloud unreachable at start, or
    --first-index 0): its first frame collides, the rest are numbered from 3 and stored."""
    target = f"127.0.0.1:{cloud_server.port}"
    deliver(target, Spool(tmp_path / "first.spool"), encoded_frames(codec, 3))
    before = stored(cloud_server.port, "cam")
    spool = Spool(tmp_path / "edge.spool")
    with IngestStreamer(target, spool, tls=False, window=1) as streamer:
        pipe = EdgePipeline.init(codec, RoiPolicy(classes=["person"]), detector=detector,
                                 sink=SpoolSink(spool, streamer), stream_id="cam", first_index=0)
        summary = pipe.run(open_source(paths.video_path()), max_frames=5)
        assert streamer.flush(60), streamer.stats
    st = streamer.stats
    sent = spool.counters()["put"]
    assert sent == 5 - summary.empty_frames and st.conflict >= 1 and st.stored >= 1
    assert st.stored + st.conflict == sent and st.duplicate == 0  # every frame accounted for: stored or refused
    now = stored(cloud_server.port, "cam")
    assert {i: now[i] for i in before} == before and len(now) == 3 + st.stored
    assert min(set(now) - set(before)) == 3 and summary.last_index == max(now)
    spool.close()


def test_stream_position_answers_ingest_tokens(tmp_path, start_server, tokens_file, codec):
    server = start_server(tokens=tokens_file)
    target = f"127.0.0.1:{server.port}"
    frames = encoded_frames(codec, 2, start=7)
    with CloudClient(target, token=TOKENS["ingest"][0]) as client:
        assert [a.status for a in client.ingest(frames)] == [0, 0]
        assert client.stream_position("cam").next_frame_index == 9
        assert client.stream_position("elsewhere").next_frame_index == 0
    spool = Spool(tmp_path / "s")
    assert first_frame_index("cam", spool, IngestStreamer(target, spool, token=TOKENS["ingest"][0], tls=False)) == 9
    # a bad token (or a cloud that cannot be reached) leaves the spool's number; the streamer reports the token
    assert first_frame_index("cam", spool, IngestStreamer(target, spool, token="guess", tls=False)) == 0
    with CloudClient(target, token="guess") as client, pytest.raises(grpc.RpcError) as err:
        client.stream_position("cam")
    assert err.value.code() is grpc.StatusCode.UNAUTHENTICATED
    spool.close()


@pytest.mark.slow
def test_edge_run_on_a_new_box_continues_the_clouds_numbering(tmp_path, codec):
    """The real `roistream edge run`, twice on one stream, the second time with another (empty) spool."""
    from tests.edge_fixtures import start_cloud

    server = start_cloud(tmp_path / "cloud")
    try:
        summaries = []
        for spool in ("first.spool", "new-box.spool"):
            edge = _edge(server.port, tmp_path / spool, 3)
            out, _ = edge.communicate(timeout=300)
            assert edge.returncode == 0, out
            summaries.append(json.loads(out.strip().splitlines()[-1]))
        first, second = summaries
        assert first["streamer"]["stored"] >= 1 and second["first_index"] == first["last_index"] + 1
        assert (second["streamer"]["duplicate"], second["streamer"]["conflict"]) == (0, 0)
        held = stored(server.port, "cam")
        assert len(held) == first["streamer"]["stored"] + second["streamer"]["stored"]  # every frame kept
        assert max(held) == second["last_index"]
    finally:
        server.stop(grace=0)
