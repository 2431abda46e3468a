"""Shared pieces of the edge tests: real vtest.avi frames, coco128-seg labels, the real detector and a
real cloud server on 127.0.0.1. Import the fixtures into a test module to use them."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

from codec import paths

COCO_PERSON = 0


def needs_shared():
    return pytest.mark.skipif(not paths.video_path().is_file() or not paths.detector_weights().is_file(),
                              reason="../shared data and weights are not available")


@functools.lru_cache(maxsize=4)
def vtest_frames(n: int, scale: float = 1.0) -> tuple[np.ndarray, ...]:
    """The first n frames of vtest.avi as RGB uint8 (optionally resized)."""
    import cv2

    cap = cv2.VideoCapture(str(paths.video_path()))
    out = []
    for _ in range(n):
        ok, bgr = cap.read()
        assert ok, "vtest.avi ended early"
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        if scale != 1.0:
            rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        out.append(rgb)
    cap.release()
    return tuple(out)


def coco_person_images(min_fraction: float = 0.05, limit: int = 8) -> list[tuple[Path, np.ndarray]]:
    """coco128-seg images whose largest person polygon covers at least `min_fraction` of the image,
    with the union of their person polygons as a pixel mask (the ground truth)."""
    import cv2

    root = paths.coco_dir()
    out = []
    for label in sorted((root / "labels" / "train2017").glob("*.txt")):
        image = root / "images" / "train2017" / (label.stem + ".jpg")
        polys = []
        for line in label.read_text().splitlines():
            vals = line.split()
            if len(vals) >= 7 and int(vals[0]) == COCO_PERSON:
                polys.append(np.array(vals[1:], np.float64).reshape(-1, 2))
        if not polys or not image.is_file():
            continue
        h, w = cv2.imread(str(image)).shape[:2]
        mask = np.zeros((h, w), np.uint8)
        largest = 0.0
        for p in polys:
            pts = np.round(p * [w, h]).astype(np.int32)
            one = np.zeros((h, w), np.uint8)
            cv2.fillPoly(one, [pts], 1)
            largest = max(largest, one.mean())
            mask |= one
        if largest >= min_fraction:
            out.append((image, mask.astype(bool)))
        if len(out) >= limit:
            break
    return out


@pytest.fixture(scope="session")
def detector():
    import torch

    from edge.detector import Detector

    torch.set_num_threads(1)
    return Detector()


def start_cloud(data_dir: Path, port: int = 0, **config):
    """A real cloud server (embedded storage) on 127.0.0.1; returns the started CloudServer."""
    from cloud.server import CloudServer, ServerConfig

    return CloudServer(ServerConfig(data_dir=Path(data_dir), host="127.0.0.1", port=port, grace_s=1.0,
                                    **config)).start()


@pytest.fixture
def cloud_server(tmp_path, codec):
    from cloud.server import CloudServer, ServerConfig

    server = CloudServer(ServerConfig(data_dir=tmp_path / "cloud", host="127.0.0.1", port=0, grace_s=1.0),
                         codec=codec).start()
    yield server
    server.stop(grace=0.5)


def self_signed_cert(directory: Path, host: str = "localhost") -> tuple[Path, Path]:
    """(cert.pem, key.pem) of a self-signed server certificate for `host` and 127.0.0.1."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "server.pem", directory / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path
