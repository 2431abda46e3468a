"""Seeded fuzzing of the decoder and of the cloud's Ingest: `python -m bench.fuzz [--cases N]`.

Each case is a damaged copy of a real frame: random bytes, a truncation, bit flips, or a field
edited to an extreme or nonsensical value *with the CRCs recomputed* (what a hostile writer, not
a noisy channel, sends). The properties:

* decoder: every case either decodes or raises a `BitstreamError` subclass, within a time limit;
* Ingest: every case is answered STORED, DUPLICATE, CONFLICT (another case holds its frame index),
  REJECTED or, for bytes that are not a message, INVALID_ARGUMENT on its own call; whatever is STORED decodes (a ciphertext whose
  binding was edited is refused by the key holder who decrypts it); afterwards the server
  still stores and serves a valid frame.

The test suite runs a bounded number of cases (tests/test_fuzz.py); this module runs more and
writes the counts by outcome to bench/results/fuzz.{json,md}.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from collections import Counter
from collections.abc import Callable, Iterator

import numpy as np

from codec.bitstream import record_crc
from codec.crypto import EncryptionKey, Keyring
from codec.errors import BitstreamError, DecryptionError
from proto import bitstream_pb2

TIME_LIMIT_S = 5.0
KINDS = ("random_bytes", "truncate", "bit_flips", "field_edit")
_INTS = (0, 1, 2**16, 2**31 - 1, 2**32 - 1)
_U64 = (*_INTS, 2**63 - 1, 2**63, 2**64 - 1)
_FLOATS = (float("nan"), float("inf"), float("-inf"), -0.0, -1.0, 1.0000001, 3.4e38, 1e-45)


# the encrypted group's key, fixed so a stored case can be decoded in full (its ciphertext checked too)
_SECRET = hashlib.sha256(b"roistream fuzz key").digest()
FUZZ_KEY = EncryptionKey(hashlib.sha256(_SECRET).hexdigest()[:16], _SECRET)
FUZZ_KEYS = Keyring([FUZZ_KEY])


def _recrc(frame: bitstream_pb2.EncodedFrame) -> None:
    for g in frame.groups:
        g.crc32 = record_crc(frame.header, g)


def _edit(frame: bitstream_pb2.EncodedFrame, rng: np.random.Generator) -> str:
    """Change one field of a copy of `frame` to a hostile value; the field's name."""
    h = frame.header
    rec = frame.groups[int(rng.integers(len(frame.groups)))]
    pick = lambda values: values[int(rng.integers(len(values)))]  # noqa: E731
    edits: dict[str, Callable[[], None]] = {
        "header.width": lambda: setattr(h, "width", pick(_INTS)),
        "header.height": lambda: setattr(h, "height", pick(_INTS)),
        "header.frame_index": lambda: setattr(h, "frame_index", pick(_U64)),
        "header.timestamp_us": lambda: setattr(h, "timestamp_us", pick((-(2**63), -1, 2**63 - 1))),
        "header.format_version": lambda: setattr(h, "format_version", pick(_INTS)),
        "header.group_ids": lambda: h.group_ids.append(pick(_INTS)),
        "header.encrypted_group_ids": lambda: h.encrypted_group_ids.append(rec.group_id),
        "header.stream_id": lambda: setattr(h, "stream_id", pick(("", "\x00\x07", "x" * 5000))),
        "record.group_id": lambda: setattr(rec, "group_id", pick(_INTS)),
        "record.quality": lambda: setattr(rec, "quality", pick(_INTS)),
        "record.scale_log2": lambda: setattr(rec, "scale_log2", pick(_INTS)),
        "record.score": lambda: setattr(rec, "score", pick(_FLOATS)),
        "record.track_id": lambda: setattr(rec, "track_id", pick(_U64)),
        "record.label": lambda: setattr(rec, "label", pick(("", "\n", "y" * 5000))),
        "record.bbox": lambda: setattr(rec.bbox, pick(("x", "y", "width", "height")), pick(_INTS)),
        "record.block_runs": lambda: rec.block_runs.extend([pick(_INTS)] * int(rng.integers(1, 4))),
        "record.block_runs_cleared": lambda: rec.ClearField("block_runs"),
        "record.payload_cut": lambda: setattr(rec, "payload", rec.payload[: int(rng.integers(len(rec.payload)))]),
        "record.payload_noise": lambda: setattr(rec, "payload", rng.bytes(len(rec.payload))),
        "record.payload_grown": lambda: setattr(rec, "payload", rec.payload + rng.bytes(4 * int(rng.integers(1, 64)))),
        "record.encryption": lambda: setattr(rec.encryption, "algorithm", pick(("AES-256-GCM", "ROT13", ""))),
        "record.duplicate": lambda: frame.groups.add().CopyFrom(rec),
        "record.removed": lambda: frame.groups.remove(rec),
    }
    name = pick(sorted(edits))
    edits[name]()
    _recrc(frame)
    return name


def cases(frame: bitstream_pb2.EncodedFrame, n: int, seed: int) -> Iterator[tuple[str, bytes]]:
    """n seeded (kind, bytes) cases derived from `frame`, the kinds in equal shares."""
    rng = np.random.default_rng(seed)
    data = frame.SerializeToString()
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        if kind == "random_bytes":
            yield kind, rng.bytes(int(rng.integers(0, 2 * len(data))))
        elif kind == "truncate":
            yield kind, data[: int(rng.integers(len(data)))]
        elif kind == "bit_flips":
            damaged = bytearray(data)
            for bit in rng.integers(0, len(data) * 8, int(rng.integers(1, 4))):
                damaged[bit // 8] ^= 1 << (bit % 8)
            yield kind, bytes(damaged)
        else:
            edited = bitstream_pb2.EncodedFrame()
            edited.CopyFrom(frame)
            yield f"field_edit:{_edit(edited, rng)}", edited.SerializeToString()


def fuzz_decoder(codec, frame: bitstream_pb2.EncodedFrame, n: int, seed: int = 0) -> dict:
    """Decode n cases; counts by outcome ("decoded", a BitstreamError subclass name, "slow", or
    "crash:<type>" for anything else) and the slowest case in seconds."""
    outcomes: Counter[str] = Counter()
    slowest = 0.0
    for _, data in cases(frame, n, seed):
        start = time.perf_counter()
        try:
            codec.decode(data, keys=FUZZ_KEYS)
            outcome = "decoded"
        except BitstreamError as exc:
            outcome = type(exc).__name__
        except Exception as exc:  # noqa: BLE001 - what the fuzzer exists to find
            outcome = f"crash:{type(exc).__name__}: {exc}"
        took = time.perf_counter() - start
        slowest = max(slowest, took)
        outcomes["slow" if took > TIME_LIMIT_S else outcome] += 1
    return {"cases": n, "outcomes": dict(outcomes), "slowest_s": round(slowest, 3)}


def fuzz_ingest(target: str, codec, frame: bitstream_pb2.EncodedFrame, n: int, seed: int = 0) -> dict:
    """Send n cases to a running cloud server, one Ingest call each; counts by ack status or RPC
    code, and "stored_undecodable" for anything stored that the codec cannot decode. A stored frame whose
    ciphertext only a key holder can refuse (its header edited, so the ciphertext's binding fails) counts
    apart: the cloud holds no keys by design, so it cannot see that."""
    import grpc

    from proto import service_pb2
    from proto.transport import Endpoint, IngestCall, ingest_request

    endpoint = Endpoint(target, tls=False)
    channel = endpoint.channel()
    outcomes: Counter[str] = Counter()
    try:
        for _, data in cases(frame, n, seed):
            call = IngestCall(channel, ingest_request, window=1, timeout=30)
            try:
                acks = [ack for _, ack in call.send([data])]
                outcome = service_pb2.IngestAck.Status.Name(acks[0].status) if acks else "no_ack"
                if outcome == "STORED":
                    try:
                        codec.decode(data, keys=FUZZ_KEYS)
                    except DecryptionError:  # the cloud holds no key: a moved ciphertext is caught by readers
                        outcome = "STORED_ciphertext_refused_by_reader"
                    except BitstreamError:
                        outcome = "stored_undecodable"
            except grpc.RpcError as exc:
                outcome = exc.code().name
            outcomes[outcome] += 1
    finally:
        channel.close()
    return {"cases": n, "outcomes": dict(outcomes)}


def fuzz_frame(codec) -> bitstream_pb2.EncodedFrame:
    """The frame the cases are made from: a 128x128 Kodak crop with a background, a person and an
    encrypted car group, so every part of the format is there to damage."""
    from codec import paths
    from codec.data import load_rgb
    from codec.geometry import block_grid_shape
    from codec.plan import FramePlan

    image = np.ascontiguousarray(load_rgb(paths.kodak_dir() / "kodim05.png")[:128, :128])
    gm = np.zeros(block_grid_shape(128, 128), np.int32)
    gm[1:4, 1:3], gm[4:7, 3:7] = 1, 2
    plan = FramePlan.from_groups(gm, {0: 0.3, 1: 0.8, 2: 0.8}, labels={1: "person", 2: "car"}, scores={1: 0.9},
                                 encrypt=[2])
    return codec.encode(image, plan, key=FUZZ_KEY, stream_id="fuzz", frame_index=0, timestamp_us=1)


def main(argv: list[str] | None = None) -> None:
    import tempfile
    from pathlib import Path

    from cloud.client import CloudClient
    from cloud.server import CloudServer, ServerConfig
    from codec.api import Codec

    from .common import md_table, write_results

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=20_000, help="cases per target (decoder, Ingest)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    codec = Codec.load()
    frame = fuzz_frame(codec)
    start = time.perf_counter()
    decoder = fuzz_decoder(codec, frame, args.cases, args.seed)
    decoder["seconds"] = round(time.perf_counter() - start, 1)
    with tempfile.TemporaryDirectory() as tmp:
        server = CloudServer(ServerConfig(data_dir=Path(tmp), port=0, grace_s=1.0), codec=codec).start()
        try:
            start = time.perf_counter()
            ingest = fuzz_ingest(f"127.0.0.1:{server.port}", codec, frame, args.cases, args.seed + 1)
            ingest["seconds"] = round(time.perf_counter() - start, 1)
            valid = bitstream_pb2.EncodedFrame()
            valid.CopyFrom(frame)
            valid.header.frame_index = 2**40
            _recrc(valid)
            with CloudClient(f"127.0.0.1:{server.port}") as client:
                after = [a.status for a in client.ingest([valid])]
                served = len(list(client.get_regions(stream_id="fuzz", frames=(2**40, 2**40))))
            ingest["valid_frame_after"] = {"ack": after, "regions_served": served}
        finally:
            server.stop(grace=0.5)
    rows = [[target, outcome, count] for target, res in (("decoder", decoder), ("ingest", ingest))
            for outcome, count in sorted(res["outcomes"].items(), key=lambda kv: -kv[1])]
    crashes = sum(c for r in (decoder, ingest) for o, c in r["outcomes"].items()
                  if o.startswith("crash") or o in ("slow", "UNKNOWN", "INTERNAL", "stored_undecodable"))
    md = (f"# Fuzzing the decoder and Ingest ({args.cases} seeded cases each, seed {args.seed})\n\n"
          "Cases: random bytes, truncations, 1-3 bit flips and single-field edits to hostile values with the "
          "CRCs recomputed, made from a 128x128 Kodak frame with a background, a person and an encrypted "
          "group (bench/fuzz.py). Every outcome must be a decode, a documented BitstreamError, or an ack/"
          "status of the Ingest contract (docs/cloud.md).\n\n"
          + md_table(["target", "outcome", "cases"], rows)
          + f"\n\nDecoder: {decoder['seconds']} s, slowest case {decoder['slowest_s']} s. Ingest: {ingest['seconds']} s; "
          f"a valid frame afterwards: ack {ingest['valid_frame_after']['ack']} (0 = STORED), "
          f"{ingest['valid_frame_after']['regions_served']} regions served. Crashes, hangs, internal errors and "
          f"stored-but-undecodable frames: **{crashes}**.\n")
    write_results("fuzz", {"cases": args.cases, "seed": args.seed, "decoder": decoder, "ingest": ingest,
                           "failures": crashes}, md)
    print(md)


if __name__ == "__main__":
    main()
