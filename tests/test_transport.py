"""The shared client transport: IngestRequest framing without parsing, and the Ingest window."""

import threading

import grpc
import pytest

from cloud.client import CloudClient
from proto import bitstream_pb2, service_pb2
from proto.transport import Endpoint, IngestCall, ingest_request

from tests.cloud_fixtures import cloud_frames, start_server, stream_of  # noqa: F401 - fixtures


@pytest.mark.parametrize("size", [0, 1, 127, 128, 16383, 16384, 300_000])
def test_ingest_request_is_the_protobuf_encoding(size):
    frame = bitstream_pb2.EncodedFrame()
    frame.header.stream_id = "cam"
    frame.groups.add(group_id=1, payload=bytes(range(256)) * (size // 256) + bytes(size % 256))
    data = frame.SerializeToString()
    wire = ingest_request(data)
    assert wire == service_pb2.IngestRequest(frame=frame).SerializeToString()
    assert service_pb2.IngestRequest.FromString(wire).frame == frame


def test_mutual_tls_needs_cert_and_key():
    with pytest.raises(ValueError, match="both"):
        Endpoint.of("127.0.0.1:1", client_cert=b"cert")


def test_ingest_call_keeps_at_most_window_frames_in_flight(cloud_frames, start_server):
    server = start_server()
    frames = stream_of(cloud_frames.plain, "window", 12)
    pulled: list[int] = []
    seen_in_flight: list[int] = []
    endpoint = Endpoint(f"127.0.0.1:{server.port}", tls=False)
    channel = endpoint.channel()
    call = IngestCall(channel, lambda f: ingest_request(f.SerializeToString()), window=3)

    def items():
        for i, f in enumerate(frames):
            pulled.append(i)
            seen_in_flight.append(call.in_flight)
            yield f

    try:
        acks = [(f.header.frame_index, a) for f, a in call.send(items())]
    finally:
        channel.close()
    assert [i for i, _ in acks] == [f.header.frame_index for f in frames]
    assert all(a.status == service_pb2.IngestAck.STORED for _, a in acks)
    assert max(seen_in_flight) <= 3 and len(pulled) == len(frames)
    assert call.closed.is_set()


def test_client_ingest_pairs_acks_with_frames_and_stores_them(cloud_frames, start_server):
    server = start_server()
    with CloudClient(f"127.0.0.1:{server.port}") as client:
        frames = stream_of(cloud_frames.plain, "client", 5)
        acks = list(client.ingest(frames, window=2))
        again = list(client.ingest(frames[:2]))
        stored = client.list_frames("client")
    assert [a.frame_index for a in acks] == [0, 1, 2, 3, 4]
    assert [a.status for a in again] == [service_pb2.IngestAck.DUPLICATE] * 2
    assert len(stored) == 5


def test_cancel_from_another_thread_ends_a_blocked_call(cloud_frames, start_server):
    server = start_server()
    endpoint = Endpoint(f"127.0.0.1:{server.port}", tls=False)
    channel = endpoint.channel()
    call = IngestCall(channel, lambda f: ingest_request(f.SerializeToString()), window=4)
    release = threading.Event()

    def items():  # one frame, then a source that blocks until the call is cancelled
        yield cloud_frames.plain
        while not call.closed.is_set():
            release.wait(0.05)

    got = []
    timer = threading.Timer(1.0, call.cancel)
    timer.start()
    try:
        with pytest.raises(grpc.RpcError) as err:
            for f, ack in call.send(items()):
                got.append(ack.status)
        assert err.value.code() == grpc.StatusCode.CANCELLED
    finally:
        timer.cancel()
        channel.close()
    assert got == [service_pb2.IngestAck.STORED]
