"""The gRPC service end to end: a real server on 127.0.0.1, the real client, the real codec."""

from __future__ import annotations

import json
import threading
import urllib.request

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from cloud.client import CloudClient
from codec.bitstream import check_crc
from proto import bitstream_pb2, service_pb2
from roistream.cli import main as cli_main
from tests.cloud_fixtures import cloud_frames, relabel, start_server, stream_of  # noqa: F401 - fixtures

Ack = service_pb2.IngestAck


@pytest.fixture
def served(start_server, cloud_frames):
    """A server holding stream "cam" (frames 0..3, 1 ms apart) and the two "secure" frames."""
    server = start_server(metrics_port=0)
    client = CloudClient(f"127.0.0.1:{server.port}")
    acks = list(client.ingest(stream_of(cloud_frames.plain, "cam", 4) + cloud_frames.secure))
    assert [a.status for a in acks] == [Ack.STORED] * 6
    yield server, client
    client.close()


def test_ingest_then_query_round_trip_exact_bytes(served, cloud_frames):
    server, client = served
    sent = stream_of(cloud_frames.plain, "cam", 4)
    regions = list(client.get_regions(stream_id="cam", output="records", include_background=True))
    assert [(r.frame_index, r.record.group_id) for r in regions] == [(i, g) for i in range(4) for g in (0, 1, 2)]
    for region in regions:
        original = sent[region.frame_index]
        assert region.header.SerializeToString() == original.header.SerializeToString()
        assert region.record.SerializeToString() == original.groups[region.record.group_id].SerializeToString()
        assert region.timestamp_us == original.header.timestamp_us and not region.encrypted
        check_crc(region.header, region.record)


def test_acks_follow_frame_order_and_duplicates_are_acknowledged(served, cloud_frames):
    _, client = served
    frames = [relabel(cloud_frames.plain, "cam", i) for i in (2, 10, 3, 11)]
    acks = list(client.ingest(frames, window=4))
    assert [(a.frame_index, a.status) for a in acks] == [
        (2, Ack.DUPLICATE), (10, Ack.STORED), (3, Ack.DUPLICATE), (11, Ack.STORED)]
    assert acks[1].stored_bytes == sum(g.ByteSize() for g in frames[1].groups)
    assert acks[0].stored_bytes == 0


def test_listings(served):
    _, client = served
    streams = {s.stream_id: s for s in client.list_streams()}
    assert set(streams) == {"cam", "secure"}
    cam = streams["cam"]
    assert (cam.frames, cam.first_frame, cam.last_frame, cam.first_timestamp_us, cam.last_timestamp_us) == (
        4, 0, 3, 0, 3000)
    assert [f.frame_index for f in client.list_frames("cam", frames=(1, 2))] == [1, 2]
    assert [f.frame_index for f in client.list_frames("cam", time=(2000, 9000))] == [2, 3]
    assert len(client.list_frames("cam", limit=3)) == 3
    [secure] = client.list_frames("secure", frames=(0, 0))
    by_id = {g.group_id: g for g in secure.groups}
    assert (by_id[2].label, by_id[2].encrypted) == ("car", True)
    assert by_id[2].key_id and not by_id[1].encrypted and not by_id[1].key_id and by_id[1].bytes > 0
    assert (secure.width, secure.height) == (256, 256)


@pytest.mark.parametrize("output", ["png", "raw"])
def test_decoded_regions_match_a_local_decode(served, cloud_frames, codec, output):
    _, client = served
    [region] = client.get_regions(stream_id="cam", frames=(1, 1), labels=["person"], output=output)
    expected = codec.decode(relabel(cloud_frames.plain, "cam", 1), groups=[1]).groups[1]
    pixels, mask = client.region_pixels(region)
    assert (region.width, region.height) == (expected.bbox.width, expected.bbox.height)
    assert np.array_equal(pixels, expected.pixels) and np.array_equal(mask, expected.mask)
    assert not region.record.payload and region.record.label == "person"  # metadata only
    assert (region.record.bbox.x, region.record.bbox.y) == (expected.bbox.x, expected.bbox.y)


@pytest.mark.slow
def test_onnxruntime_decoder_serves_the_same_regions(tmp_path, cloud_frames, codec):
    """`cloud serve --decoder onnxruntime`: the exported synthesis graph decodes the regions (the
    graphs are exported into the cache when missing); pixels agree with the torch decoder."""
    from cloud.server import CloudServer, ServerConfig

    server = CloudServer(ServerConfig(data_dir=tmp_path / "data", port=0, grace_s=0.5,
                                      decoder="onnxruntime")).start()
    try:
        assert server.codec.coder.backend.name.startswith("onnxruntime-cpu")
        with CloudClient(f"127.0.0.1:{server.port}") as client:
            list(client.ingest(stream_of(cloud_frames.plain, "cam", 1)))
            [region] = client.get_regions(stream_id="cam", labels=["person"], output="raw")
            pixels, mask = client.region_pixels(region)
    finally:
        server.stop(grace=0.5)
    expected = codec.decode(relabel(cloud_frames.plain, "cam", 0), groups=[1]).groups[1]
    assert np.array_equal(mask, expected.mask)
    assert np.abs(pixels.astype(int) - expected.pixels).max() <= 1
    with pytest.raises(ValueError, match="unknown runtime 'opencl'"):
        CloudServer(ServerConfig(data_dir=tmp_path / "other", port=0, decoder="opencl")).start()


def test_selection_and_background_only_on_request(served):
    _, client = served

    def ids(**kw):
        return [(r.frame_index, r.record.group_id) for r in client.get_regions(stream_id="cam", output="records", **kw)]

    assert ids(frames=(0, 0)) == [(0, 1), (0, 2)]
    assert ids(frames=(0, 0), include_background=True) == [(0, 0), (0, 1), (0, 2)]
    assert ids(group_ids=[2], frames=(2, 3)) == [(2, 2), (3, 2)]
    assert ids(intersects=(20, 20, 4, 4), time=(0, 1000)) == [(0, 1), (1, 1)]
    assert ids(labels=["car"], limit=2) == [(0, 2), (1, 2)]
    assert ids(labels=["dog"]) == []


def test_only_the_selected_groups_are_decoded(served):
    server, client = served
    before = _decodes(server)
    list(client.get_regions(stream_id="cam", labels=["person"], output="png"))
    assert _decodes(server) - before == 4  # one group in each of 4 frames, never the background
    list(client.get_regions(stream_id="cam", frames=(0, 0), output="png", include_background=True))
    assert _decodes(server) - before == 4 + 3


def _decodes(server) -> float:
    return server.metrics.registry.get_sample_value("roistream_decode_seconds_count")


def test_composite_pastes_groups_over_the_latest_background(start_server, cloud_frames, codec):
    server = start_server()
    client = CloudClient(f"127.0.0.1:{server.port}")
    frame0 = relabel(cloud_frames.plain, "cam", 0)
    no_background = bitstream_pb2.EncodedFrame()
    no_background.CopyFrom(cloud_frames.plain)
    del no_background.groups[0]  # frame 1 has no background of its own: frame 0's is used
    no_background.header.group_ids[:] = [1, 2]
    frame1 = relabel(no_background, "cam", 1)
    assert [a.status for a in client.ingest([frame0, frame1])] == [Ack.STORED] * 2
    [region] = client.get_regions(stream_id="cam", frames=(1, 1), labels=["person"], composite=True, output="raw")
    image, mask = client.region_pixels(region)
    full = codec.decode(frame0)
    person = full.groups[1]
    expected = full.groups[0].pixels.copy()
    expected[person.bbox.slices][person.mask] = person.pixels[person.mask]
    assert (region.width, region.height) == (256, 256)
    assert np.array_equal(image, expected)
    assert mask.sum() == person.mask.sum() and mask[person.bbox.slices][person.mask].all()
    client.close()


def test_subscribe_gets_regions_of_new_frames(served, cloud_frames):
    _, client = served
    call = client.subscribe(stream_id="live", labels=["car"], output="records")
    got: list = []
    ended: list = []

    def read():
        try:
            got.extend(call)
        except grpc.RpcError as exc:
            ended.append(exc.code())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    _wait_until_subscribed(served[0])
    frames = stream_of(cloud_frames.plain, "live", 3) + [relabel(cloud_frames.plain, "other", 0)]
    assert all(a.status == Ack.STORED for a in client.ingest(frames))
    for _ in range(100):
        if len(got) >= 3:
            break
        threading.Event().wait(0.05)
    call.cancel()
    reader.join(5)
    assert ended == [grpc.StatusCode.CANCELLED]
    assert [(r.stream_id, r.frame_index, r.record.group_id) for r in got] == [("live", i, 2) for i in range(3)]
    assert got[0].record == frames[0].groups[2]


def _wait_until_subscribed(server) -> None:
    for _ in range(100):
        if server.metrics.registry.get_sample_value("roistream_active_subscriptions") >= 1:
            return
        threading.Event().wait(0.02)
    raise AssertionError("Subscribe did not start")


def test_metrics_endpoint_counts_ingest_and_decodes(served, cloud_frames):
    server, client = served
    frames = stream_of(cloud_frames.plain, "cam", 4) + cloud_frames.secure
    payload_bytes = sum(len(g.payload) for f in frames for g in f.groups)
    list(client.get_regions(stream_id="cam", frames=(0, 0), labels=["person"], output="png"))
    text = urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5).read().decode()
    samples = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    assert float(samples['roistream_frames_ingested_total{status="stored"}']) == 6
    assert float(samples["roistream_groups_ingested_total"]) == 18
    assert float(samples["roistream_bytes_ingested_total"]) >= payload_bytes
    assert float(samples["roistream_decode_seconds_count"]) >= 1
    assert float(samples["roistream_store_seconds_count"]) == 6
    assert float(samples["roistream_active_ingest_streams"]) == 0
    assert float(samples['roistream_regions_served_total{output="png"}']) >= 1


def test_health_and_reflection(served):
    server, _ = served
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        check = health_pb2_grpc.HealthStub(channel).Check
        for name in ("", "roistream.v1.RoiStream"):
            assert check(health_pb2.HealthCheckRequest(service=name)).status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        [resp] = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = {s.name for s in resp.list_services_response.service}
        assert {"roistream.v1.RoiStream", "grpc.health.v1.Health"} <= names


def test_query_cli_writes_png_crops_and_json(served, tmp_path, capsys):
    server, _ = served
    out = tmp_path / "out"
    rc = cli_main(["query", "--cloud", f"127.0.0.1:{server.port}", "--stream", "cam", "--classes", "person,car",
                   "--frames", "1:2", "--out", str(out)])
    assert rc == 0
    entries = json.loads((out / "regions.json").read_text())
    assert [(e["frame_index"], e["group_id"], e["label"]) for e in entries] == [
        (1, 1, "person"), (1, 2, "car"), (2, 1, "person"), (2, 2, "car")]
    for e in entries:
        assert (out / e["image"]).exists() and (out / e["mask"]).exists()
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["regions"] == 4


def test_graceful_stop_finishes_in_flight_ingest(start_server, cloud_frames, tmp_path):
    """Stopping while an edge streams: every acked frame is stored, and the edge sees the stream end."""
    server = start_server(data_dir=tmp_path / "g")
    client = CloudClient(f"127.0.0.1:{server.port}")
    acked = []
    frames = (relabel(cloud_frames.plain, "cam", i) for i in range(100_000))
    stopper = threading.Timer(0.5, server.stop, kwargs={"grace": 2.0})
    stopper.start()
    with pytest.raises(grpc.RpcError):
        for ack in client.ingest(frames):
            acked.append(ack.frame_index)
    stopper.join()
    client.close()
    assert len(acked) > 5
    restarted = start_server(data_dir=tmp_path / "g")
    with CloudClient(f"127.0.0.1:{restarted.port}") as again:
        stored = {f.frame_index for f in again.list_frames("cam", limit=10_000)}
    assert set(acked) <= stored
