"""Edge signatures (Ed25519): what a reader or the cloud that trusts an edge key accepts and refuses.

Every tampering case edits a real signed record and recomputes its CRC, as an attacker with write
access to the stream or the store would; only the signature can catch it.
"""

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from cloud.client import CloudClient
from codec.bitstream import record_crc
from codec.crypto import EncryptionKey, Keyring
from codec.errors import SignatureError
from codec.plan import FramePlan
from codec.signing import SigningKey, TrustedKeys, VerifyKey
from proto import bitstream_pb2, service_pb2
from tests.cloud_fixtures import SIZE, _group_map, start_server  # noqa: F401 - fixtures

EDGE = SigningKey.generate()
OTHER = SigningKey.generate()
TRUST = TrustedKeys([EDGE.verify_key])


@pytest.fixture(scope="module")
def signed(codec, kodak_image):
    """One frame with a plaintext person group and an encrypted car group, signed by EDGE; its key."""
    image = np.ascontiguousarray(kodak_image[:SIZE, :SIZE])
    key = EncryptionKey.generate()
    plan = FramePlan.from_groups(_group_map(), {0: 0.3, 1: 0.8, 2: 0.8}, labels={1: "person", 2: "car"}, encrypt=[2])
    frame = codec.encode(image, plan, key=key, signer=EDGE, stream_id="signed", frame_index=0, timestamp_us=1)
    return frame, key


def _copy(frame):
    out = bitstream_pb2.EncodedFrame()
    out.CopyFrom(frame)
    return out


def _recrc(frame):
    for g in frame.groups:
        g.crc32 = record_crc(frame.header, g)
    return frame


def test_signed_frame_decodes_for_a_reader_that_trusts_the_edge(codec, signed):
    frame, key = signed
    assert all(g.signature.key_id == EDGE.key_id and len(g.signature.signature) == 64 for g in frame.groups)
    out = codec.decode(frame.SerializeToString(), keys=Keyring([key]), trusted=TRUST)
    assert sorted(out.groups) == [0, 1, 2]
    plain = codec.decode(frame, keys=Keyring([key]))  # a reader that trusts no key decodes the same pixels
    assert np.array_equal(out.image, plain.image)


def test_unsigned_and_foreign_records_are_refused(codec, signed, kodak_image):
    frame, key = signed
    image = np.ascontiguousarray(kodak_image[:SIZE, :SIZE])
    plan = FramePlan.from_groups(_group_map(), {0: 0.3, 1: 0.8, 2: 0.8}, labels={1: "person", 2: "car"})
    unsigned = codec.encode(image, plan, stream_id="signed")
    with pytest.raises(SignatureError, match="not signed"):
        codec.decode(unsigned, trusted=TRUST)
    forged = codec.encode(image, plan, signer=OTHER, stream_id="signed")
    with pytest.raises(SignatureError, match="not trusted"):
        codec.decode(forged, trusted=TRUST)
    stripped = _copy(frame)
    for g in stripped.groups:
        g.ClearField("signature")
    with pytest.raises(SignatureError, match="not signed"):
        codec.decode(_recrc(stripped), keys=Keyring([key]), trusted=TRUST)


@pytest.mark.parametrize("edit", ["relabel", "move_frame", "strip_encryption_listing", "swap_payload", "bbox"])
def test_tampering_with_a_recomputed_crc_breaks_the_signature(codec, signed, edit):
    frame, key = signed
    bad = _copy(frame)
    person, car = bad.groups[1], bad.groups[2]
    if edit == "relabel":
        person.label = "car"
    elif edit == "move_frame":
        bad.header.frame_index = 7
    elif edit == "strip_encryption_listing":  # hide that group 2 was encrypted, in the header and the record
        del bad.header.encrypted_group_ids[:]
        car.ClearField("encryption")
    elif edit == "swap_payload":
        person.payload = person.payload[:-4] + bytes(4)
    elif edit == "bbox":
        person.bbox.x += 16
    _recrc(bad)
    target = 2 if edit == "strip_encryption_listing" else 1
    with pytest.raises(SignatureError, match=f"group {target}"):
        codec.decode(bad, groups=[target], keys=Keyring([key]), trusted=TRUST)


def test_a_signature_moved_from_another_frame_fails(codec, signed, kodak_image):
    frame, _ = signed
    image = np.ascontiguousarray(kodak_image[:SIZE, :SIZE])
    plan = FramePlan.from_groups(_group_map(), {0: 0.3, 1: 0.8, 2: 0.8}, labels={1: "person", 2: "car"})
    forged = codec.encode(image, plan, signer=OTHER, stream_id="signed", frame_index=0, timestamp_us=1)
    forged.groups[1].signature.CopyFrom(frame.groups[1].signature)  # EDGE's signature over other bytes
    with pytest.raises(SignatureError, match="does not match"):
        codec.decode(_recrc(forged), groups=[1], trusted=TRUST)


def test_key_files_round_trip_and_the_private_key_is_private(tmp_path):
    EDGE.save(tmp_path / "edge.key")
    EDGE.verify_key.save(tmp_path / "edge.pub")
    assert os.stat(tmp_path / "edge.key").st_mode & 0o777 == 0o600
    assert SigningKey.load(tmp_path / "edge.key").key_id == EDGE.key_id
    assert VerifyKey.load(tmp_path / "edge.pub").key_id == EDGE.key_id
    (tmp_path / "junk.pub").write_text("not a key")
    with pytest.raises(ValueError, match="not a PEM public key"):
        VerifyKey.load(tmp_path / "junk.pub")


def test_cloud_stores_only_records_signed_by_a_trusted_edge(codec, signed, kodak_image, start_server, tmp_path):
    frame, key = signed
    EDGE.verify_key.save(tmp_path / "edge.pub")
    server = start_server(trust_keys=(tmp_path / "edge.pub",))
    image = np.ascontiguousarray(kodak_image[:SIZE, :SIZE])
    plan = FramePlan.from_groups(_group_map(), {0: 0.3, 1: 0.8, 2: 0.8}, labels={1: "person", 2: "car"})
    unsigned = codec.encode(image, plan, stream_id="signed", frame_index=1, timestamp_us=2)
    forged = codec.encode(image, plan, signer=OTHER, stream_id="signed", frame_index=2, timestamp_us=3)
    with CloudClient(f"127.0.0.1:{server.port}") as client:
        acks = list(client.ingest([frame, unsigned, forged]))
        assert [a.status for a in acks] == [service_pb2.IngestAck.STORED, service_pb2.IngestAck.REJECTED,
                                            service_pb2.IngestAck.REJECTED]
        assert "not signed" in acks[1].error and "not trusted" in acks[2].error
        assert [f.frame_index for f in client.list_frames("signed")] == [0]
        # a reader verifies records itself; the server's PNGs it cannot verify
        regions = list(client.get_regions(stream_id="signed", labels=["person"], output="records"))
        pixels, mask = client.region_pixels(regions[0], trusted=TRUST)
        assert mask.any() and pixels.shape[:2] == mask.shape
        png = list(client.get_regions(stream_id="signed", labels=["person"]))
        with pytest.raises(SignatureError, match="server decoded"):
            client.region_pixels(png[0], trusted=TRUST)
        assert client.list_streams()  # the server keeps serving after the refusals


def _cli(*args: str, ok: bool = True):
    out = subprocess.run([sys.executable, "-m", "roistream.cli", *args], capture_output=True, text=True, timeout=300)
    assert (out.returncode == 0) == ok, out.stderr
    return out


def test_cli_keygen_sign_and_verify(tmp_path, kodak_image):
    src = tmp_path / "img.png"
    cv2.imwrite(str(src), cv2.cvtColor(np.ascontiguousarray(kodak_image[:128, :192]), cv2.COLOR_RGB2BGR))
    made = json.loads(_cli("keygen", "--signing", "-o", str(tmp_path / "edge.key")).stdout)
    assert made["public_key_file"] == str(tmp_path / "edge.key.pub")
    _cli("keygen", "--signing", "-o", str(tmp_path / "other.key"))
    _cli("encode", str(src), "-o", str(tmp_path / "s.rst"), "--sign-key", str(tmp_path / "edge.key"))
    _cli("encode", str(src), "-o", str(tmp_path / "u.rst"))
    good = json.loads(_cli("decode", str(tmp_path / "s.rst"), "-o", str(tmp_path / "s.png"),
                           "--trust-key", made["public_key_file"]).stdout)
    assert good["decoded"] == [0] and good["failed"] == []
    for name, trust in (("u", made["public_key_file"]), ("s", str(tmp_path / "other.key.pub"))):
        out = _cli("decode", str(tmp_path / f"{name}.rst"), "-o", str(tmp_path / "x.png"), "--trust-key", trust,
                   ok=False)
        assert "Traceback" not in out.stderr and "group 0 not decoded" in out.stderr


def test_edge_run_signs_every_record_it_spools(tmp_path, codec):
    """`roistream edge run --sign-key`: what reaches the outbox verifies under the edge's public key."""
    from codec import paths
    from edge.spool import Spool

    _cli("keygen", "--signing", "-o", str(tmp_path / "edge.key"))
    _cli("edge", "run", "--source", str(paths.shared_dir() / "data" / "video" / "vtest.avi"), "--max-frames", "2",
         "--stream", "cam", "--spool", str(tmp_path / "out.spool"), "--sign-key", str(tmp_path / "edge.key"),
         "--no-status", "--sequential")
    trusted = TrustedKeys.load([tmp_path / "edge.key.pub"])
    with Spool(tmp_path / "out.spool") as spool:
        frames = [bitstream_pb2.EncodedFrame.FromString(e.data) for e in spool.peek(0, 10)]
    assert len(frames) == 2
    for frame in frames:
        assert codec.decode(frame, trusted=trusted).groups
