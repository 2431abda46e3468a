"""Malformed, oversized and invalid input gets a clear status, and the server keeps serving other streams."""

from __future__ import annotations

import grpc
import pytest

from cloud.client import CloudClient
from codec.bitstream import record_crc
from proto import bitstream_pb2, service_pb2
from tests.cloud_fixtures import cloud_frames, relabel, start_server, stream_of  # noqa: F401 - fixtures

Ack = service_pb2.IngestAck
SERVICE = "/roistream.v1.RoiStream/"


@pytest.fixture
def server(start_server, cloud_frames):
    srv = start_server(max_message_bytes=256 * 1024)
    with CloudClient(f"127.0.0.1:{srv.port}") as client:
        assert [a.status for a in client.ingest(stream_of(cloud_frames.plain, "good", 2))] == [Ack.STORED] * 2
    return srv


@pytest.fixture
def channel(server):
    with grpc.insecure_channel(f"127.0.0.1:{server.port}",
                               options=[("grpc.max_send_message_length", 64 * 2**20)]) as ch:
        yield ch


@pytest.fixture
def client(server):
    with CloudClient(f"127.0.0.1:{server.port}") as c:
        yield c


def _raw_ingest(channel, messages: list[bytes]):
    call = channel.stream_stream(SERVICE + "Ingest", request_serializer=None,
                                 response_deserializer=Ack.FromString)
    return call(iter(messages))


def _still_serving(client, cloud_frames) -> None:
    """Other streams are unaffected: the stored stream reads back and new frames are stored."""
    assert len(list(client.get_regions(stream_id="good", output="records"))) == 4
    [ack] = client.ingest([relabel(cloud_frames.plain, "other", 0)])
    assert ack.status in (Ack.STORED, Ack.DUPLICATE)


def _error(fn) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        fn()
    return err.value


def test_unparseable_ingest_message_is_invalid_argument(channel, client, cloud_frames):
    good = service_pb2.IngestRequest(frame=relabel(cloud_frames.plain, "before", 5)).SerializeToString()
    acks = []
    err = _error(lambda: acks.extend(_raw_ingest(channel, [good, b"\x0a\xff\xff\xff\xff\x0f garbage"])))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "malformed IngestRequest" in err.details()
    assert [a.frame_index for a in acks] == [5]  # the frame before the bad message was stored and acked
    _still_serving(client, cloud_frames)


def test_oversized_messages(channel, client, cloud_frames):
    frame = relabel(cloud_frames.plain, "big", 0)
    frame.groups[0].payload = b"\0" * 300_000  # over the 256 KiB limit of this server
    frame.groups[0].crc32 = record_crc(frame.header, frame.groups[0])
    err = _error(lambda: list(_raw_ingest(channel, [service_pb2.IngestRequest(frame=frame).SerializeToString()])))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "over the server's limit" in err.details()
    # far beyond the limit, gRPC itself refuses the message before it reaches the service
    err = _error(lambda: list(_raw_ingest(channel, [b"\0" * 2_000_000])))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    _still_serving(client, cloud_frames)


def _corrupt(frame: bitstream_pb2.EncodedFrame, how: str) -> bitstream_pb2.EncodedFrame:
    out = bitstream_pb2.EncodedFrame()
    out.CopyFrom(frame)
    if how == "crc":
        out.groups[1].payload = bytes([out.groups[1].payload[0] ^ 1]) + out.groups[1].payload[1:]
    elif how == "no_stream":
        out.header.stream_id = ""
    elif how == "version":
        out.header.format_version = 99
    elif how == "duplicate_group":
        out.groups.add().CopyFrom(out.groups[1])
    elif how == "truncated":
        del out.groups[2]
    elif how == "bbox":
        out.groups[1].bbox.x += 8  # same blocks, but not their box
        out.groups[1].bbox.width -= 8
        out.groups[1].crc32 = record_crc(out.header, out.groups[1])
    elif how == "no_header":
        out.ClearField("header")
    return out


@pytest.mark.parametrize("how, message", [
    ("crc", "CRC mismatch"), ("no_stream", "no stream_id"), ("version", "version 99"),
    ("duplicate_group", "appears twice"), ("truncated", "truncated"), ("bbox", "bbox does not match"),
    ("no_header", "no frame header")])
def test_invalid_frames_are_rejected_and_the_stream_continues(client, cloud_frames, how, message):
    frames = [relabel(cloud_frames.plain, "cam", 0), _corrupt(relabel(cloud_frames.plain, "cam", 1), how),
              relabel(cloud_frames.plain, "cam", 2)]
    acks = list(client.ingest(frames))
    assert [a.status for a in acks] == [Ack.STORED, Ack.REJECTED, Ack.STORED]
    assert message in acks[1].error
    assert [f.frame_index for f in client.list_frames("cam")] == [0, 2]  # nothing of the bad frame was stored


def test_unknown_streams_are_not_found(client):
    for fn in (lambda: client.list_frames("nope"), lambda: list(client.get_regions(stream_id="nope"))):
        err = _error(fn)
        assert err.code() == grpc.StatusCode.NOT_FOUND and "'nope'" in err.details()


@pytest.mark.parametrize("query, message", [
    (dict(frames=(5, 2)), "first > last"),
    (dict(time=(10, 0)), "start > end"),
    (dict(output="records", composite=True), "composite"),
    (dict(encrypted="decrypt"), "needs the keys"),
])
def test_bad_queries_are_invalid_argument(client, query, message):
    err = _error(lambda: list(client.get_regions(stream_id="good", **query)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and message in err.details()


def test_malformed_query_bytes(channel):
    for method in ("GetRegions", "Subscribe"):
        call = channel.unary_stream(SERVICE + method, request_serializer=None,
                                    response_deserializer=service_pb2.Region.FromString)
        err = _error(lambda: list(call(b"\x12\xff\xff")))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "malformed RegionQuery" in err.details()
    call = channel.unary_unary(SERVICE + "ListFrames", request_serializer=None,
                               response_deserializer=service_pb2.ListFramesResponse.FromString)
    assert _error(lambda: call(b"\xff")).code() == grpc.StatusCode.INVALID_ARGUMENT


def test_unknown_weights_store_but_do_not_decode(client, cloud_frames):
    frame = relabel(cloud_frames.plain, "foreign", 0)
    frame.header.weights_id = "0123456789abcdef"  # coded by weights this server does not hold
    for g in frame.groups:
        g.crc32 = record_crc(frame.header, g)
    [ack] = client.ingest([frame])
    assert ack.status == Ack.STORED  # storage accepts any weights
    records = list(client.get_regions(stream_id="foreign", output="records"))
    assert [r.record for r in records] == list(frame.groups[1:])
    err = _error(lambda: list(client.get_regions(stream_id="foreign", output="png")))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and "0123456789abcdef" in err.details()
