"""Fixtures for the cloud tests: real encoded frames (encoded once per session), real servers on
127.0.0.1 with ephemeral ports, real certificates and tokens files.

Test modules import the fixtures they use by name (conftest.py is
owned by the codec tests).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from bench.ingest import relabel  # the benchmark replays frames the same way
from proto import bitstream_pb2

TOKENS = {"ingest": ["edge-secret"], "query": ["analytics-secret"]}
SIZE = 256


@dataclass
class CloudFrames:
    plain: bitstream_pb2.EncodedFrame  # groups 0 background, 1 person, 2 car; stream "base", frame 0
    secure: list[bitstream_pb2.EncodedFrame]  # stream "secure", frames 0..1, group 2 (car) encrypted with `key`
    key: object  # EncryptionKey
    image: np.ndarray  # the source image


def _group_map():
    from codec.geometry import block_grid_shape

    gm = np.zeros(block_grid_shape(SIZE, SIZE), np.int32)
    gm[1:5, 1:5] = 1  # a 64x64 person
    gm[8:13, 6:14] = 2  # an 128x80 car
    return gm


@pytest.fixture(scope="session")
def cloud_frames(codec, kodak_image) -> CloudFrames:
    from codec.crypto import EncryptionKey
    from codec.plan import FramePlan

    image = np.ascontiguousarray(kodak_image[:SIZE, :SIZE])
    labels, qualities = {1: "person", 2: "car"}, {0: 0.3, 1: 0.8, 2: 0.8}
    plain = codec.encode(image, FramePlan.from_groups(_group_map(), qualities, labels=labels, scores={1: 0.9, 2: 0.7}),
                         stream_id="base", frame_index=0, timestamp_us=1_000_000)
    key = EncryptionKey.generate()
    sealed = FramePlan.from_groups(_group_map(), qualities, labels=labels, encrypt=[2])
    secure = [codec.encode(image, sealed, stream_id="secure", frame_index=i, timestamp_us=1_000_000 + i, key=key)
              for i in range(2)]
    return CloudFrames(plain, secure, key, image)


def stream_of(frame: bitstream_pb2.EncodedFrame, stream_id: str, count: int, start: int = 0):
    return [relabel(frame, stream_id, i) for i in range(start, start + count)]


@pytest.fixture
def start_server(tmp_path, codec):
    """Start in-process servers (port 0); all are stopped at the end of the test."""
    from cloud.server import CloudServer, ServerConfig

    servers = []

    def start(data_dir: Path | None = None, **config) -> CloudServer:
        cfg = ServerConfig(data_dir=data_dir or tmp_path / f"data{len(servers)}", host="127.0.0.1", port=0,
                           grace_s=1.0, **config)
        server = CloudServer(cfg, codec=codec).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop(grace=0.5)


@dataclass
class Certs:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed nothing here (a client trusting it must fail)


def _key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _write(path: Path, cert, key=None) -> None:
    from cryptography.hazmat.primitives import serialization

    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        path.with_suffix(".key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def _cert(subject: str, key, issuer_name, issuer_key, *, ca: bool, san: bool = False, client: bool = False):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name or name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    if not ca:
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


@pytest.fixture(scope="session")
def certs(tmp_path_factory) -> Certs:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate, all signed by the CA."""
    d = tmp_path_factory.mktemp("certs")
    ca_key = _key()
    ca = _cert("roistream test CA", ca_key, None, None, ca=True)
    _write(d / "ca.pem", ca)
    server_key, client_key, other_key = _key(), _key(), _key()
    _write(d / "server.pem", _cert("localhost", server_key, ca.subject, ca_key, ca=False, san=True), server_key)
    _write(d / "client.pem", _cert("analytics", client_key, ca.subject, ca_key, ca=False, client=True), client_key)
    _write(d / "other-ca.pem", _cert("someone else", other_key, None, None, ca=True))
    return Certs(d / "ca.pem", d / "server.pem", d / "server.key", d / "client.pem", d / "client.key",
                 d / "other-ca.pem")


@pytest.fixture
def tokens_file(tmp_path) -> Path:
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps(TOKENS))
    return path
