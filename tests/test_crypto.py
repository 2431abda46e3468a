import pytest

from codec.bitstream import EncodedFrame, record_crc
from codec.crypto import EncryptionKey, Keyring
from codec.errors import BitstreamError, DecryptionError
from codec.plan import FramePlan

from .conftest import three_group_map


@pytest.fixture(scope="module")
def key():
    return EncryptionKey.generate()


@pytest.fixture(scope="module")
def sealed(codec, small_image, key):
    gm = three_group_map(*small_image.shape[:2])
    plan = FramePlan.from_groups(gm, 0.5, labels={1: "face", 2: "person"}, encrypt=[1, 2])
    make = lambda index: codec.encode(small_image, plan, stream_id="cam", frame_index=index, key=key)  # noqa: E731
    return make(1), make(2)


def test_key_holder_decodes_encrypted_groups(codec, sealed, key):
    frame, _ = sealed
    assert frame.groups[1].HasField("encryption") and frame.groups[1].encryption.key_id == key.key_id
    out = codec.decode(frame, keys=Keyring([key]))
    assert set(out.groups) == {0, 1, 2}


def test_missing_or_wrong_key_fails_only_that_group(codec, sealed, key):
    frame, _ = sealed
    with pytest.raises(DecryptionError, match="not given"):
        codec.decode(frame)
    out = codec.decode(frame, on_error="skip")
    assert set(out.groups) == {0} and set(out.failures) == {1, 2}
    wrong = EncryptionKey(key.key_id, bytes(32))  # same id, other secret
    with pytest.raises(DecryptionError, match="authentication failed"):
        codec.decode(frame, groups=[1], keys=Keyring([wrong]))


def test_ciphertext_moved_to_another_frame_or_group_fails_authentication(codec, sealed, key):
    frame_a, frame_b = sealed
    keys = Keyring([key])
    moved = EncodedFrame()
    moved.CopyFrom(frame_b)  # frame 2 carrying frame 1's group 1
    moved.groups[1].CopyFrom(frame_a.groups[1])
    moved.groups[1].crc32 = record_crc(moved.header, moved.groups[1])  # a forger can fix a CRC
    with pytest.raises(DecryptionError, match="authentication failed"):
        codec.decode(moved, groups=[1], keys=keys)
    swapped = EncodedFrame()
    swapped.CopyFrom(frame_a)  # group 2's ciphertext under group 1's record
    swapped.groups[1].payload, swapped.groups[1].encryption.nonce = frame_a.groups[2].payload, frame_a.groups[2].encryption.nonce
    swapped.groups[1].crc32 = record_crc(swapped.header, swapped.groups[1])
    with pytest.raises(DecryptionError):
        codec.decode(swapped, groups=[1], keys=keys)
    relabelled = EncodedFrame()
    relabelled.CopyFrom(frame_a)
    relabelled.groups[1].label = "cat"
    relabelled.groups[1].crc32 = record_crc(relabelled.header, relabelled.groups[1])
    with pytest.raises(BitstreamError):
        codec.decode(relabelled, groups=[1], keys=keys)


def test_key_file_round_trip_and_errors(tmp_path, key):
    path = tmp_path / "k.json"
    key.save(path)
    assert (path.stat().st_mode & 0o777) == 0o600
    assert EncryptionKey.load(path) == key
    path.write_text("{}")
    with pytest.raises(ValueError, match="not a roistream key file"):
        EncryptionKey.load(path)


def test_encrypting_without_a_key_is_refused(codec, small_image):
    with pytest.raises(ValueError, match="without a key"):
        codec.encode(small_image, FramePlan.from_groups(three_group_map(*small_image.shape[:2]), encrypt=[1]))
