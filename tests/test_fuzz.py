"""Seeded, bounded fuzzing in the default suite (bench/fuzz.py makes the cases; `python -m
bench.fuzz` runs many more): every damaged frame decodes or raises a documented BitstreamError in
time, every Ingest answer is one of the contract's, nothing stored is undecodable, and the server
still stores and serves a valid frame afterwards."""

import pytest

from bench.fuzz import TIME_LIMIT_S, cases, fuzz_decoder, fuzz_frame, fuzz_ingest
from cloud.client import CloudClient
from codec.errors import BitstreamError
from proto import service_pb2
from tests.cloud_fixtures import start_server  # noqa: F401 - fixture

DECODE_OUTCOMES = {"decoded"} | {c.__name__ for c in (BitstreamError, *BitstreamError.__subclasses__())}
INGEST_OUTCOMES = {"STORED", "DUPLICATE", "CONFLICT", "REJECTED", "INVALID_ARGUMENT", "STORED_ciphertext_refused_by_reader"}


@pytest.fixture(scope="module")
def frame(codec):
    return fuzz_frame(codec)


def test_cases_are_seeded_and_cover_every_kind(frame):
    first, again = list(cases(frame, 200, seed=5)), list(cases(frame, 200, seed=5))
    assert first == again
    kinds = {k.split(":")[0] for k, _ in first}
    assert kinds == {"random_bytes", "truncate", "bit_flips", "field_edit"}
    assert len({k for k, _ in first if k.startswith("field_edit")}) >= 15


def test_decoder_fuzz(codec, frame):
    result = fuzz_decoder(codec, frame, 1200, seed=11)
    unexpected = {o: n for o, n in result["outcomes"].items() if o not in DECODE_OUTCOMES}
    assert not unexpected, unexpected
    assert result["slowest_s"] < TIME_LIMIT_S
    # damage is caught before pixels: almost every case is refused by the CRC or the validator
    assert result["outcomes"].get("CorruptStreamError", 0) > 500


def test_ingest_fuzz_then_the_server_still_serves(codec, frame, start_server):
    server = start_server()
    target = f"127.0.0.1:{server.port}"
    result = fuzz_ingest(target, codec, frame, 1000, seed=12)
    unexpected = {o: n for o, n in result["outcomes"].items() if o not in INGEST_OUTCOMES}
    assert not unexpected, unexpected
    assert result["outcomes"]["REJECTED"] > 100 and result["outcomes"]["INVALID_ARGUMENT"] > 100
    valid = type(frame)()
    valid.CopyFrom(frame)
    valid.header.stream_id = "after-fuzz"
    from codec.bitstream import record_crc

    for g in valid.groups:
        g.crc32 = record_crc(valid.header, g)
    with CloudClient(target) as client:
        assert [a.status for a in client.ingest([valid])] == [service_pb2.IngestAck.STORED]
        regions = list(client.get_regions(stream_id="after-fuzz", labels=["person"]))
        assert len(regions) == 1 and regions[0].image
