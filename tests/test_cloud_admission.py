"""Idle and piled-up calls cannot starve the server (real server on 127.0.0.1, real gRPC calls): idle
Ingest calls end after the idle timeout, one token / one address can hold only so many calls, and
health checks answer while the service is saturated."""

from __future__ import annotations

import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cloud.client import CloudClient
from proto import service_pb2
from proto.transport import INGEST_METHOD
from tests.cloud_fixtures import TOKENS, cloud_frames, start_server, stream_of, tokens_file  # noqa: F401

Ack = service_pb2.IngestAck
EDGE, ANALYTICS = TOKENS["ingest"][0], TOKENS["query"][0]
IDLE_S = 1.0


class IdleCalls:
    """n Ingest calls that open and then send nothing until released."""

    def __init__(self, target: str, n: int, token: str | None = None):
        self.release = threading.Event()
        self.channel = grpc.insecure_channel(target)
        ingest = self.channel.stream_stream(INGEST_METHOD, request_serializer=None,
                                            response_deserializer=Ack.FromString)
        metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.calls = [ingest(self._nothing(), metadata=metadata) for _ in range(n)]

    def _nothing(self):
        self.release.wait()
        return
        yield  # a generator that yields nothing

    def ended(self, code: grpc.StatusCode) -> list:
        return [c for c in self.calls if c.done() and c.code() == code]

    def wait_ended(self, code: grpc.StatusCode, count: int, timeout: float) -> list:
        deadline = time.monotonic() + timeout
        while len(self.ended(code)) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.ended(code)

    def close(self) -> None:
        self.release.set()
        for call in self.calls:
            call.cancel()
        self.channel.close()


@pytest.fixture
def idle_calls():
    opened: list[IdleCalls] = []

    def open_(target: str, n: int, token: str | None = None) -> IdleCalls:
        opened.append(IdleCalls(target, n, token))
        return opened[-1]

    yield open_
    for calls in opened:
        calls.close()


def health(target: str) -> int:
    with grpc.insecure_channel(target) as channel:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3).status


def _code(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value.code(), err.value.details()


def test_64_idle_ingest_calls_from_one_token_leave_health_and_queries_served(start_server, tokens_file,
                                                                              cloud_frames, idle_calls):
    """The probe's case with the default limits (64 workers, 16 calls per token): before, every worker was
    taken and health, queries and other edges got RESOURCE_EXHAUSTED until the idle calls chose to close."""
    server = start_server(tokens=tokens_file, idle_timeout_s=IDLE_S)
    target = f"127.0.0.1:{server.port}"
    idle = idle_calls(target, 64, EDGE)
    refused = idle.wait_ended(grpc.StatusCode.RESOURCE_EXHAUSTED, 64 - 16, timeout=10)
    assert len(refused) == 48 and "this token already has 16 call(s) open" in refused[0].details()
    assert health(target) == health_pb2.HealthCheckResponse.SERVING
    with CloudClient(target, token=ANALYTICS) as analytics:
        assert analytics.list_streams(timeout=3) == []
    # the 16 admitted calls end by themselves once idle for the timeout, and the token can ingest again
    ended = idle.wait_ended(grpc.StatusCode.DEADLINE_EXCEEDED, 16, timeout=IDLE_S + 5)
    assert len(ended) == 16 and "idle for 1 s" in ended[0].details()
    assert server.metrics.idle_calls_ended._value.get() == 16
    with CloudClient(target, token=EDGE) as edge:
        assert [a.status for a in edge.ingest(stream_of(cloud_frames.plain, "cam", 1), timeout=10)] == [Ack.STORED]


def test_health_has_its_own_workers_when_every_service_worker_is_held(start_server, idle_calls):
    server = start_server(max_workers=4, max_calls_per_token=0, max_calls_per_peer=0, idle_timeout_s=None)
    target = f"127.0.0.1:{server.port}"
    idle = idle_calls(target, 6)
    refused = idle.wait_ended(grpc.StatusCode.RESOURCE_EXHAUSTED, 2, timeout=10)
    assert len(refused) == 2 and "the server already has 4 call(s) open" in refused[0].details()
    for _ in range(10):  # more health checks than the health workers, one after the other
        assert health(target) == health_pb2.HealthCheckResponse.SERVING
    # long-lived health calls (Watch) may hold only half the health workers: Checks still answer
    with grpc.insecure_channel(target) as channel:
        watches = [health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest()) for _ in range(4)]
        outcomes = []
        for watch in watches:
            try:
                outcomes.append(health_pb2.HealthCheckResponse.ServingStatus.Name(next(watch).status))
            except grpc.RpcError as exc:
                outcomes.append(exc.code().name)
        assert sorted(outcomes) == ["RESOURCE_EXHAUSTED"] * 2 + ["SERVING"] * 2
        assert health(target) == health_pb2.HealthCheckResponse.SERVING
        for watch in watches:
            watch.cancel()
    with CloudClient(target) as client:
        code, details = _code(lambda: client.list_streams(timeout=3))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "the server" in details
    idle.close()  # the calls end, their workers come back
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            with CloudClient(target) as client:
                assert client.list_streams(timeout=3) == []
            break
        except grpc.RpcError:
            time.sleep(0.1)
    else:
        pytest.fail("the service did not take calls again after the idle calls closed")


def test_calls_per_peer_are_capped(start_server, idle_calls):
    server = start_server(max_calls_per_peer=3, idle_timeout_s=None)
    target = f"127.0.0.1:{server.port}"
    idle = idle_calls(target, 5)
    refused = idle.wait_ended(grpc.StatusCode.RESOURCE_EXHAUSTED, 2, timeout=10)
    assert len(refused) == 2 and "this address already has 3 call(s) open" in refused[0].details()
    assert health(target) == health_pb2.HealthCheckResponse.SERVING
    assert server.metrics.calls_refused.labels("peer")._value.get() == 2


def test_an_ingest_call_that_keeps_sending_is_not_idle(start_server, cloud_frames):
    """The idle timeout is silence, not call length: frames IDLE_S * 0.6 apart keep one call open past it."""
    server = start_server(idle_timeout_s=IDLE_S)

    def slowly():
        for frame in stream_of(cloud_frames.plain, "slow", 3):
            yield frame
            time.sleep(IDLE_S * 0.6)

    with CloudClient(f"127.0.0.1:{server.port}") as client:
        assert [a.status for a in client.ingest(slowly(), window=1, timeout=10)] == [Ack.STORED] * 3
