"""N stateless nodes on one shared state: real PostgreSQL, SeaweedFS (S3) and NATS JetStream on 127.0.0.1.

Any node accepts any stream and answers any query; Subscribe on one node sees frames stored through
another; a resend through another node is a duplicate, a different frame at a taken index a conflict;
health follows the shared services; kill -9 of a node loses no acknowledged frame.
"""

from __future__ import annotations

import signal
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cloud.client import CloudClient
from codec.bitstream import check_crc
from proto import service_pb2
from tests.cloud_fixtures import cloud_frames, relabel, start_server, stream_of  # noqa: F401 - fixtures
from tests.scale_fixtures import nats, postgres, s3  # noqa: F401 - fixtures
from tests.test_cloud_crash import ServerProcess

pytestmark = pytest.mark.slow
Ack = service_pb2.IngestAck
Health = health_pb2.HealthCheckResponse


@pytest.fixture
def shared(postgres, s3, nats):
    """ServerConfig fields of a node on a fresh shared state (schema + key prefix); NATS is shared by all."""
    return {"index": postgres.fresh_url(), "objects": s3.fresh_url(), "s3_endpoint": s3.endpoint,
            "events": nats.url, "health_interval_s": 0.2}


def _subscribed(server) -> bool:
    return server.metrics.registry.get_sample_value("roistream_active_subscriptions") >= 1


def _until(condition, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _collect(call, into: list) -> None:
    try:
        into.extend(call)
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.CANCELLED


def _health(port: int) -> int:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status


def test_two_nodes_ingest_and_a_third_answers_queries_and_subscriptions(start_server, shared, cloud_frames):
    nodes = [start_server(**shared) for _ in range(3)]
    clients = [CloudClient(f"127.0.0.1:{n.port}") for n in nodes]
    try:
        live = clients[2].subscribe(labels=["person"], output="records")
        got: list = []
        threading.Thread(target=_collect, args=(live, got), daemon=True).start()
        _until(lambda: _subscribed(nodes[2]), what="Subscribe on node 3")
        sent = {"camA": stream_of(cloud_frames.plain, "camA", 12), "camB": stream_of(cloud_frames.plain, "camB", 12)}
        acks: dict[str, list] = {}

        def edge(stream: str, client: CloudClient) -> None:
            acks[stream] = list(client.ingest(sent[stream], window=4))

        edges = [threading.Thread(target=edge, args=("camA", clients[0])),
                 threading.Thread(target=edge, args=("camB", clients[1]))]
        for t in edges:
            t.start()
        for t in edges:
            t.join(60)
        assert all(a.status == Ack.STORED for stream in sent for a in acks[stream])
        # every frame acknowledged by nodes 1 and 2 is found, byte for byte, through node 3
        assert [(s.stream_id, s.frames) for s in clients[2].list_streams()] == [("camA", 12), ("camB", 12)]
        for stream, frames in sent.items():
            regions = list(clients[2].get_regions(stream_id=stream, output="records", include_background=True))
            assert [r.record for r in regions] == [g for f in frames for g in f.groups]
            for r in regions:
                check_crc(r.header, r.record)
        _until(lambda: len(got) >= 24, what="node 3's subscription to see both edges' frames")
        live.cancel()
        assert sorted((r.stream_id, r.frame_index) for r in got) == sorted(
            (s, i) for s in sent for i in range(12))
        # a resend through another node is a duplicate; another frame at a taken index a conflict
        assert [a.status for a in clients[1].ingest(sent["camA"][:3])] == [Ack.DUPLICATE] * 3
        [ack] = clients[0].ingest([relabel(cloud_frames.secure[0], "camB", 5)])  # other content, a taken index
        assert (ack.status, ack.next_frame_index) == (Ack.CONFLICT, 12)
        assert clients[0].stream_position("camB").next_frame_index == 12
    finally:
        for c in clients:
            c.close()


def test_health_follows_postgresql_and_nats(start_server, shared, postgres, nats, cloud_frames):
    node = start_server(**shared)
    frames = stream_of(cloud_frames.plain, "cam", 3)
    with CloudClient(f"127.0.0.1:{node.port}") as client:
        assert _health(node.port) == Health.SERVING
        postgres.stop()
        try:
            _until(lambda: _health(node.port) == Health.NOT_SERVING, what="NOT_SERVING without PostgreSQL")
            with pytest.raises(grpc.RpcError) as refused:
                list(client.ingest(frames[:1]))
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "PostgreSQL at 127.0.0.1" in refused.value.details()
        finally:
            postgres.start()
        _until(lambda: _health(node.port) == Health.SERVING, what="SERVING once PostgreSQL is back")
        assert [a.status for a in client.ingest(frames[:2])] == [Ack.STORED] * 2
        nats.stop()
        try:
            _until(lambda: _health(node.port) == Health.NOT_SERVING, what="NOT_SERVING without NATS")
        finally:
            nats.start()
        _until(lambda: _health(node.port) == Health.SERVING, what="SERVING once NATS is back")
        assert [a.status for a in client.ingest(frames)] == [Ack.DUPLICATE, Ack.DUPLICATE, Ack.STORED]


def test_kill9_of_a_node_mid_ingest_loses_no_acknowledged_frame(tmp_path, start_server, shared, cloud_frames):
    """A real `roistream cloud serve` node on the shared store, killed while an edge streams at full speed:
    every frame it acknowledged is found, whole, through another node; the edge continues there."""
    args = ["--index", shared["index"], "--objects", shared["objects"], "--s3-endpoint", shared["s3_endpoint"],
            "--events", shared["events"]]
    sent = {i: f for i, f in enumerate(stream_of(cloud_frames.plain, "cam", 400))}
    node = ServerProcess(tmp_path / "unused", *args)
    acked: set[int] = set()
    with CloudClient(f"127.0.0.1:{node.port}") as client:
        try:
            for ack in client.ingest(sent.values(), window=8):
                assert ack.status == Ack.STORED, ack.error
                acked.add(ack.frame_index)
                if len(acked) == 60:
                    node.kill9()
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE
    assert node.proc.returncode == -signal.SIGKILL and len(acked) >= 60
    other = start_server(**shared)
    with CloudClient(f"127.0.0.1:{other.port}") as client:
        stored = {f.frame_index for f in client.list_frames("cam", limit=10_000)}
        assert acked <= stored, f"acknowledged frames lost: {sorted(acked - stored)}"
        regions = list(client.get_regions(stream_id="cam", output="records", include_background=True))
        by_frame: dict[int, list] = {}
        for r in regions:
            by_frame.setdefault(r.frame_index, []).append(r.record)
        assert set(by_frame) == stored  # nothing half-written is visible
        for index, records in by_frame.items():
            assert records == list(sent[index].groups)
        resume = client.stream_position("cam").next_frame_index
        assert [a.status for a in client.ingest([sent[resume]])] == [Ack.STORED]
