"""Tokens scoped to streams (real server on 127.0.0.1, real tokens files): an ingest token writes only the
streams its patterns cover, a query token sees and reads only those; unscoped tokens keep every stream."""

from __future__ import annotations

import json
import threading

import grpc
import pytest

from cloud.auth import EVERY_STREAM, Scope, Tokens
from cloud.client import CloudClient
from proto import service_pb2
from tests.cloud_fixtures import cloud_frames, start_server, stream_of  # noqa: F401

Ack = service_pb2.IngestAck

TOKENS_LINES = """\
# role:token[:pattern,...]
ingest:edge-lobby:lobby-*
ingest:edge-all
query:guard:lobby-*, gate
query:analytics
"""


def _code(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value.code(), err.value.details()


@pytest.fixture
def scoped(start_server, tmp_path, cloud_frames):
    """A server with scoped tokens, holding frames of streams lobby-1, gate and cam."""
    path = tmp_path / "tokens.txt"
    path.write_text(TOKENS_LINES)
    server = start_server(tokens=path)
    target = f"127.0.0.1:{server.port}"
    with CloudClient(target, token="edge-all") as edge:
        for stream in ("lobby-1", "gate", "cam"):
            assert [a.status for a in edge.ingest(stream_of(cloud_frames.plain, stream, 1))] == [Ack.STORED]
    return target


def test_an_ingest_token_writes_only_its_streams(scoped, cloud_frames):
    with CloudClient(scoped, token="edge-lobby") as edge:
        assert [a.status for a in edge.ingest(stream_of(cloud_frames.plain, "lobby-2", 2))] == [Ack.STORED] * 2
        code, details = _code(lambda: list(edge.ingest(stream_of(cloud_frames.plain, "cam", 1, start=1))))
        assert code == grpc.StatusCode.PERMISSION_DENIED and "may not write stream 'cam'" in details
        # frames before the first out-of-scope one are stored and acknowledged; the call then ends
        acks = []
        mixed = stream_of(cloud_frames.plain, "lobby-2", 1, start=2) + stream_of(cloud_frames.plain, "gate", 1, 1)
        code, _ = _code(lambda: acks.extend(edge.ingest(mixed, window=1)))
        assert code == grpc.StatusCode.PERMISSION_DENIED and [a.status for a in acks] == [Ack.STORED]
    with CloudClient(scoped, token="analytics") as analytics:
        assert {s.stream_id: s.frames for s in analytics.list_streams()} == {"lobby-1": 1, "lobby-2": 3, "gate": 1,
                                                                            "cam": 1}


def test_an_ingest_token_asks_the_position_only_of_its_streams(scoped):
    with CloudClient(scoped, token="edge-lobby") as edge:
        assert edge.stream_position("lobby-1").next_frame_index == 1
        code, details = _code(lambda: edge.stream_position("cam"))  # would reveal how far another camera got
        assert code == grpc.StatusCode.PERMISSION_DENIED and "may not write stream 'cam'" in details


def test_a_query_token_sees_and_reads_only_its_streams(scoped):
    with CloudClient(scoped, token="guard") as guard:
        assert sorted(s.stream_id for s in guard.list_streams()) == ["gate", "lobby-1"]
        assert len(guard.list_frames("lobby-1")) == 1
        for stream in ("cam", "no-such-stream"):  # refused alike: a scope does not reveal what exists outside it
            code, details = _code(lambda: guard.list_frames(stream))
            assert code == grpc.StatusCode.PERMISSION_DENIED and f"may not read stream {stream!r}" in details
            code, _ = _code(lambda: list(guard.get_regions(stream_id=stream)))
            assert code == grpc.StatusCode.PERMISSION_DENIED
        assert {r.stream_id for r in guard.get_regions()} == {"gate", "lobby-1"}
        assert len(list(guard.get_regions(limit=3))) == 3  # the limit counts only regions in scope
        composites = list(guard.get_regions(composite=True, labels=["person"]))
        assert sorted(r.stream_id for r in composites) == ["gate", "lobby-1"]
    with CloudClient(scoped, token="analytics") as analytics:  # unscoped: every stream, as before scopes
        assert {r.stream_id for r in analytics.get_regions()} == {"gate", "lobby-1", "cam"}


def test_subscribe_delivers_only_streams_in_scope(scoped, cloud_frames):
    with CloudClient(scoped, token="guard") as guard, CloudClient(scoped, token="edge-all") as edge:
        code, _ = _code(lambda: next(iter(guard.subscribe(stream_id="cam"))))
        assert code == grpc.StatusCode.PERMISSION_DENIED
        live = guard.subscribe(labels=["person"])
        got: list[str] = []

        def read() -> None:
            try:
                got.extend(r.stream_id for r in live)
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.CANCELLED  # ours, below

        reader = threading.Thread(target=read)
        reader.start()
        try:
            for attempt in range(50):  # until the subscription is live and has seen the in-scope frame
                frames = (stream_of(cloud_frames.plain, "cam", 1, start=1 + attempt)
                          + stream_of(cloud_frames.plain, "lobby-1", 1, start=1 + attempt))
                assert all(a.status == Ack.STORED for a in edge.ingest(frames))
                reader.join(0.2)
                if got:
                    break
        finally:
            live.cancel()
            reader.join(5)
    assert got and set(got) == {"lobby-1"}


def test_tokens_files_in_both_forms(tmp_path):
    as_json = tmp_path / "tokens.json"
    as_json.write_text(json.dumps({"ingest": ["old-edge", {"token": "cam-edge", "streams": ["cam-*"]}],
                                   "query": [{"token": "cam-edge", "streams": ["cam-1"]}, "old-edge"]}))
    tokens = Tokens.load(as_json)
    assert tokens.grants("old-edge") == {"ingest": EVERY_STREAM, "query": EVERY_STREAM}  # pre-scope files: all
    cam = tokens.grants("cam-edge")
    assert cam["ingest"].allows("cam-7") and not cam["ingest"].allows("lobby") and not cam["ingest"].allows("CAM-7")
    assert cam["query"] == Scope(("cam-1",)) and tokens.grants("nobody") == {}
    lines = tmp_path / "tokens.txt"
    lines.write_text(TOKENS_LINES + "query:edge-lobby:site[12]-*\nquery:edge-lobby:gate\n")
    tokens = Tokens.load(lines)
    assert tokens.grants("guard")["query"] == Scope(("lobby-*", "gate"))
    assert tokens.grants("edge-lobby")["query"] == Scope(("site[12]-*", "gate"))  # two grants: their union
    assert tokens.grants("edge-lobby")["query"].allows("site2-x") and tokens.roles("edge-all") == {"ingest"}
    for bad in ("admin:tok", "ingest:", "query:tok:", "query:tok: , ", "ingest tok"):
        lines.write_text(bad + "\n")
        with pytest.raises(ValueError, match="tokens.txt:1"):
            Tokens.load(lines)
    for bad in ({"ingest": [{"token": "t", "streams": []}]}, {"ingest": [{"token": "t", "streams": "cam"}]},
                {"ingest": [{"token": "t", "scope": ["cam"]}]}, {"admin": ["t"]}, {"query": [""]}):
        as_json.write_text(json.dumps(bad))
        with pytest.raises(ValueError, match="tokens.json"):
            Tokens.load(as_json)
