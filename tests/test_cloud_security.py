"""Auth roles, TLS / mutual TLS, and encrypted groups with and without the key (real server, real certs)."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cloud.client import CloudClient
from codec.crypto import EncryptionKey, Keyring
from codec.errors import DecryptionError
from proto import service_pb2
from tests.cloud_fixtures import TOKENS, certs, cloud_frames, start_server, stream_of, tokens_file  # noqa: F401

Ack = service_pb2.IngestAck
EDGE, ANALYTICS = TOKENS["ingest"][0], TOKENS["query"][0]


def _code(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value.code()


def test_token_roles(start_server, tokens_file, cloud_frames):
    server = start_server(tokens=tokens_file)
    target = f"127.0.0.1:{server.port}"
    frames = stream_of(cloud_frames.plain, "cam", 2)
    with CloudClient(target, token=EDGE) as edge, CloudClient(target, token=ANALYTICS) as analytics, \
            CloudClient(target) as anonymous, CloudClient(target, token="guess") as stranger:
        assert [a.status for a in edge.ingest(frames)] == [Ack.STORED] * 2
        assert [s.stream_id for s in analytics.list_streams()] == ["cam"]
        assert len(list(analytics.get_regions(stream_id="cam"))) == 4
        # an edge token cannot query, a query token cannot ingest
        assert _code(edge.list_streams) == grpc.StatusCode.PERMISSION_DENIED
        assert _code(lambda: list(edge.get_regions(stream_id="cam"))) == grpc.StatusCode.PERMISSION_DENIED
        assert _code(lambda: list(edge.list_frames("cam"))) == grpc.StatusCode.PERMISSION_DENIED
        assert _code(lambda: list(analytics.ingest(frames))) == grpc.StatusCode.PERMISSION_DENIED
        for client in (anonymous, stranger):
            assert _code(client.list_streams) == grpc.StatusCode.UNAUTHENTICATED
            assert _code(lambda: list(client.ingest(frames))) == grpc.StatusCode.UNAUTHENTICATED
        # health stays open for probes
        with grpc.insecure_channel(target) as channel:
            resp = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
            assert resp.status == health_pb2.HealthCheckResponse.SERVING


def test_tls(start_server, certs, cloud_frames):
    server = start_server(tls_cert=certs.server_cert, tls_key=certs.server_key)
    with CloudClient(f"127.0.0.1:{server.port}", tls_ca=certs.ca) as client:
        assert [a.status for a in client.ingest(stream_of(cloud_frames.plain, "cam", 1))] == [Ack.STORED]
        assert len(list(client.get_regions(stream_id="cam"))) == 2
    with CloudClient(f"localhost:{server.port}", tls_ca=certs.ca) as by_name:
        assert by_name.list_streams()[0].stream_id == "cam"
    with CloudClient(f"127.0.0.1:{server.port}", tls_ca=certs.other_ca) as untrusting:
        assert _code(lambda: untrusting.list_streams(timeout=5)) == grpc.StatusCode.UNAVAILABLE
    with CloudClient(f"127.0.0.1:{server.port}") as plaintext:
        assert _code(lambda: plaintext.list_streams(timeout=5)) == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls(start_server, certs):
    server = start_server(tls_cert=certs.server_cert, tls_key=certs.server_key, tls_client_ca=certs.ca)
    target = f"127.0.0.1:{server.port}"
    with CloudClient(target, tls_ca=certs.ca, tls_cert=certs.client_cert, tls_key=certs.client_key) as client:
        assert client.list_streams() == []
    with CloudClient(target, tls_ca=certs.ca) as no_client_cert:
        assert _code(lambda: no_client_cert.list_streams(timeout=5)) == grpc.StatusCode.UNAVAILABLE


@pytest.fixture
def secure_server(start_server, certs, cloud_frames):
    server = start_server(tls_cert=certs.server_cert, tls_key=certs.server_key)
    client = CloudClient(f"127.0.0.1:{server.port}", tls_ca=certs.ca)
    assert [a.status for a in client.ingest(cloud_frames.secure)] == [Ack.STORED] * 2
    yield server, client
    client.close()


def test_encrypted_groups_without_the_key(secure_server, cloud_frames, codec):
    server, client = secure_server
    regions = list(client.get_regions(stream_id="secure", frames=(0, 0), output="png"))
    plain, cipher = regions
    assert plain.record.group_id == 1 and plain.image and not plain.encrypted
    # ciphertext stays ciphertext: the exact stored record, with its metadata, never decoded by the server
    assert cipher.encrypted and not cipher.image
    assert cipher.record.SerializeToString() == cloud_frames.secure[0].groups[2].SerializeToString()
    assert (cipher.record.label, cipher.record.encryption.key_id) == ("car", cloud_frames.key.key_id)
    # ...or left out, as the request says
    omitted = list(client.get_regions(stream_id="secure", output="png", encrypted="omit"))
    assert [(r.frame_index, r.record.group_id) for r in omitted] == [(0, 1), (1, 1)]
    # the client decrypts and decodes locally (end to end: the key never leaves it)
    pixels, mask = client.region_pixels(cipher, Keyring([cloud_frames.key]))
    expected = codec.decode(cloud_frames.secure[0], groups=[2], keys=Keyring([cloud_frames.key])).groups[2]
    assert np.array_equal(pixels, expected.pixels) and np.array_equal(mask, expected.mask)
    with pytest.raises(DecryptionError):
        client.region_pixels(cipher, Keyring([EncryptionKey.generate()]))


def test_encrypted_groups_with_the_key_over_tls(secure_server, cloud_frames, codec):
    server, client = secure_server
    key = cloud_frames.key
    regions = list(client.get_regions(stream_id="secure", labels=["car"], output="raw", encrypted="decrypt",
                                      keys=[key]))
    assert [(r.frame_index, r.encrypted) for r in regions] == [(0, False), (1, False)]
    expected = codec.decode(cloud_frames.secure[1], groups=[2], keys=Keyring([key])).groups[2]
    pixels, mask = client.region_pixels(regions[1])
    assert np.array_equal(pixels, expected.pixels) and np.array_equal(mask, expected.mask)
    assert not regions[1].record.payload and regions[1].record.encryption.key_id == key.key_id
    # a wrong key with the right id fails authentication: a clear INVALID_ARGUMENT, nothing decoded
    wrong = EncryptionKey(key.key_id, bytes(32))
    with pytest.raises(grpc.RpcError) as err:
        list(client.get_regions(stream_id="secure", labels=["car"], output="png", encrypted="decrypt", keys=[wrong]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "authentication failed" in err.value.details()
    # a key for something else: the encrypted group cannot be opened
    with pytest.raises(grpc.RpcError) as err:
        list(client.get_regions(stream_id="secure", labels=["car"], output="png", encrypted="decrypt",
                                keys=[EncryptionKey.generate()]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and key.key_id in err.value.details()


def test_keys_are_refused_without_tls(start_server, cloud_frames):
    server = start_server()
    with CloudClient(f"127.0.0.1:{server.port}") as client:
        list(client.ingest(cloud_frames.secure))
        with pytest.raises(ValueError, match="without TLS"):
            client.get_regions(stream_id="secure", output="png", encrypted="decrypt", keys=[cloud_frames.key])
    # a client that sends them anyway is refused by the server
    query = service_pb2.RegionQuery(stream_id="secure", output=service_pb2.RegionQuery.PNG,
                                    encrypted=service_pb2.RegionQuery.DECRYPT)
    query.keys.add(key_id=cloud_frames.key.key_id, key=cloud_frames.key.secret)
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        call = channel.unary_stream("/roistream.v1.RoiStream/GetRegions",
                                    request_serializer=service_pb2.RegionQuery.SerializeToString,
                                    response_deserializer=service_pb2.Region.FromString)
        with pytest.raises(grpc.RpcError) as err:
            list(call(query))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "TLS" in err.value.details()


def test_keys_are_not_stored(secure_server, cloud_frames):
    server, client = secure_server
    list(client.get_regions(stream_id="secure", output="png", encrypted="decrypt", keys=[cloud_frames.key]))
    server.stop(grace=0.5)
    secret = cloud_frames.key.secret
    for path in server.config.data_dir.rglob("*"):
        if path.is_file():
            assert secret not in path.read_bytes(), path


def test_query_cli_decrypts_locally_with_a_key_file(start_server, cloud_frames, tmp_path, capsys):
    import json

    from roistream.cli import main as cli_main

    server = start_server()
    with CloudClient(f"127.0.0.1:{server.port}") as client:
        list(client.ingest(cloud_frames.secure))
    key_file = tmp_path / "key.json"
    cloud_frames.key.save(key_file)
    base = ["query", "--cloud", f"127.0.0.1:{server.port}", "--stream", "secure", "--classes", "car"]
    assert cli_main([*base, "--out", str(tmp_path / "nokey")]) == 0
    entries = json.loads((tmp_path / "nokey" / "regions.json").read_text())
    assert [(e["encrypted"], e["image"]) for e in entries] == [(True, None)] * 2  # metadata only
    assert "not given" in entries[0]["error"]
    # with the key over a plaintext connection: decrypted here, the key never sent
    assert cli_main([*base, "--key", str(key_file), "--out", str(tmp_path / "key")]) == 0
    entries = json.loads((tmp_path / "key" / "regions.json").read_text())
    assert all(e["encrypted"] and (tmp_path / "key" / e["image"]).exists() for e in entries)
    assert cli_main(["query", "--cloud", f"127.0.0.1:{server.port}", "--stream", "nope",
                     "--out", str(tmp_path / "x")]) == 2
    assert "NOT_FOUND" in capsys.readouterr().err
