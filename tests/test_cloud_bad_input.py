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
    elif how == "many_groups":  # issue 19 defect 11: refused on the count, before any per-group work
        for gid in range(3, 2000):
            out.groups.add(group_id=gid)
        out.header.group_ids.extend(range(3, 2000))
    else:  # one record field edited, its CRC recomputed as a forger would (issue 19 defects 2 and 4)
        g = out.groups[0 if how == "short_payload" else 1]
        if how == "nan_score":
            g.score = float("nan")
        elif how == "inf_score":
            g.score = float("inf")
        elif how == "score_range":
            g.score = 7.0
        elif how == "scale":
            g.scale_log2 = 4
        elif how == "payload_length":
            g.payload += b"\0\0"
        elif how == "short_payload":  # a 256x256 background from 4 bytes (issue 19 defect 6)
            g.payload = g.payload[:4]
        elif how == "track_id":
            g.track_id = 2**64 - 1
        for r in out.groups:
            r.crc32 = record_crc(out.header, r)
    return out


@pytest.mark.parametrize("how, message", [
    ("crc", "CRC mismatch"), ("no_stream", "no stream_id"), ("version", "version 99"),
    ("duplicate_group", "appears twice"), ("truncated", "truncated"), ("bbox", "bbox does not match"),
    ("no_header", "no frame header"), ("nan_score", "score nan is not a number in [0, 1]"),
    ("inf_score", "score inf"), ("score_range", "score 7.0"), ("scale", "scale 1/2^4 out of range"),
    ("payload_length", "payload of"), ("short_payload", "coded blocks from a 4-byte payload"),
    ("track_id", "track_id"), ("many_groups", "(at most 1024)")])
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


def test_a_group_that_does_not_decode_is_data_loss_and_the_others_still_come_back(client, cloud_frames):
    """Issue 19 defect 3: garbage with a valid CRC passes ingest (the cloud cannot decode ciphertext,
    so it never decodes); decoding it is DATA_LOSS for that group, the query's other regions arrive."""
    import numpy as np

    frame = relabel(cloud_frames.plain, "damaged", 0)
    g = frame.groups[1]
    g.payload = np.random.default_rng(3).integers(0, 256, len(g.payload), np.uint8).tobytes()
    g.crc32 = record_crc(frame.header, g)
    assert [a.status for a in client.ingest([frame, relabel(cloud_frames.plain, "damaged", 1)])] == [Ack.STORED] * 2
    regions = []
    err = _error(lambda: regions.extend(client.get_regions(stream_id="damaged", output="png",
                                                           include_background=True)))
    assert err.code() == grpc.StatusCode.DATA_LOSS and "damaged/0 group 1" in err.details()
    assert [(r.frame_index, r.record.group_id) for r in regions] == [(0, 0), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert all(r.image for r in regions)
    composites = []
    err = _error(lambda: composites.extend(client.get_regions(stream_id="damaged", output="png", composite=True)))
    assert err.code() == grpc.StatusCode.DATA_LOSS and [r.frame_index for r in composites] == [0, 1]
    _still_serving(client, cloud_frames)


def test_stripping_encryption_is_refused_at_ingest(client, cloud_frames):
    """Issue 19 defect 9: the header lists the encrypted groups, and every CRC covers the header."""
    frame = relabel(cloud_frames.secure[0], "stripped", 0)
    frame.groups[2].ClearField("encryption")
    frame.groups[2].crc32 = record_crc(frame.header, frame.groups[2])
    [ack] = client.ingest([frame])
    assert ack.status == Ack.REJECTED and "listed as encrypted" in ack.error
