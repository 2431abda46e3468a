"""Cloud subcommands: `roistream cloud serve` (the server) and `roistream query` (regions to PNG + JSON)."""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import threading
from pathlib import Path

from codec.runtime.registry import RUNTIME_NAMES

UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_size(text: str) -> int:
    """'500M', '10G', '4096' -> bytes (binary units)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*", text.lower())
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 500M, 10G)")
    return int(float(m.group(1)) * UNITS[m.group(2)])


def parse_duration(text: str) -> float:
    """'90s', '30m', '12h', '7d' -> seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", text.lower())
    if not m:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 90s, 30m, 12h, 7d)")
    return float(m.group(1)) * SECONDS[m.group(2)]


def parse_range(text: str) -> tuple[int, int]:
    """'A:B' (inclusive), 'A:' (A onwards) or 'A' -> (first, last)."""
    first, sep, last = text.partition(":")
    try:
        lo = int(first) if first else 0
        hi = (int(last) if last else 2**63 - 1) if sep else lo
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a range: {text!r} (e.g. 100:200)") from None
    return lo, hi


def _words(text: str | None) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def serve_config(args: argparse.Namespace):
    """The ServerConfig of parsed `cloud serve` arguments."""
    from .server import ServerConfig

    return ServerConfig(
        data_dir=args.data, host=args.host, port=args.port, tls_cert=args.tls_cert, tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca, tokens=args.tokens, trust_keys=tuple(args.trust_key),
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host, weights=args.weights, max_message_bytes=args.max_message_size,
        retain_age_s=args.retain_age, retain_bytes=args.retain_bytes, segment_bytes=args.segment_size,
        max_workers=args.max_workers, max_calls_per_token=args.max_calls_per_token,
        max_calls_per_peer=args.max_calls_per_peer, health_workers=args.health_workers,
        idle_timeout_s=args.idle_timeout or None, grace_s=args.grace, decoder=args.decoder, insecure=args.insecure,
        index=args.index, objects=args.objects, s3_endpoint=args.s3_endpoint, events=args.events)


def _serve(args: argparse.Namespace) -> int:
    from . import log
    from .errors import DependencyUnavailable
    from .server import CloudServer

    if args.data is None and not args.index:
        print("error: give --data DIR (embedded store) or --index and --objects (shared store)", file=sys.stderr)
        return 2
    config = serve_config(args)
    try:
        config.check_exposure()  # before anything is set up (CloudServer.start checks it again)
        config.backends.validate()
        config.limits  # noqa: B018 - validates the call limits
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    log.configure(args.log_level)
    if args.decode_threads:
        import torch

        torch.set_num_threads(args.decode_threads)
    try:
        server = CloudServer(config).start()
    except ValueError as exc:  # a bad tokens file, half a TLS pair: say what, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except DependencyUnavailable as exc:  # PostgreSQL, the object store or NATS does not answer
        print(f"error: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop()
    return 0


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def _save_region(client, region, keys, out: Path, composite: bool, trusted=None) -> dict:
    """Write one region's PNG crop and mask; its JSON metadata entry (image None if it could not be decoded)."""
    import cv2

    from codec.bitstream import dequantize_quality
    from codec.errors import BitstreamError

    rec = region.record
    name = f"{_safe(region.stream_id)}_{region.frame_index:08d}_" + (
        "composite" if composite and not region.encrypted else f"g{rec.group_id}")
    entry = {"stream_id": region.stream_id, "frame_index": region.frame_index, "timestamp_us": region.timestamp_us}
    if region.HasField("record"):
        entry.update(group_id=rec.group_id, label=rec.label, score=round(rec.score, 4), track_id=rec.track_id,
                     bbox=[rec.bbox.x, rec.bbox.y, rec.bbox.width, rec.bbox.height],
                     quality=round(dequantize_quality(rec.quality), 4), encrypted=rec.HasField("encryption"),
                     key_id=rec.encryption.key_id or None)
    try:
        pixels, mask = client.region_pixels(region, keys, trusted)
    except BitstreamError as exc:
        return {**entry, "image": None, "error": str(exc)}
    cv2.imwrite(str(out / f"{name}.png"), cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(out / f"{name}_mask.png"), mask.astype("uint8") * 255)
    return {**entry, "image": f"{name}.png", "mask": f"{name}_mask.png"}


def _query(args: argparse.Namespace) -> int:
    import grpc

    from codec.crypto import EncryptionKey, Keyring
    from codec.signing import TrustedKeys

    from .client import CloudClient, region_query

    keys = [EncryptionKey.load(p) for p in args.key]
    trusted = TrustedKeys.load(args.trust_key)
    if trusted and (args.composite or args.decrypt == "server"):
        print("error: --trust-key verifies records decoded here; it cannot be combined with --composite or "
              "--decrypt server, whose pixels the server makes", file=sys.stderr)
        return 2
    server_decrypts = bool(keys) and args.decrypt == "server"
    query = region_query(args.stream, labels=_words(args.classes), group_ids=[int(g) for g in _words(args.groups)],
                         frames=args.frames, include_background=args.background, composite=args.composite,
                         output="records" if trusted else "png",
                         encrypted="decrypt" if server_decrypts else "ciphertext",
                         keys=keys if server_decrypts else (), limit=args.limit)
    token = args.token or os.environ.get("ROISTREAM_TOKEN")
    args.out.mkdir(parents=True, exist_ok=True)
    entries, error = [], None
    with CloudClient(args.cloud, token=token, tls_ca=args.tls_ca, tls_cert=args.tls_cert, tls_key=args.tls_key,
                     tls=args.tls, weights=args.weights) as client:
        try:
            for region in client.get_regions(query):
                entries.append(_save_region(client, region, Keyring(keys), args.out, args.composite, trusted))
        except grpc.RpcError as exc:
            error = f"{args.cloud}: {exc.code().name}: {exc.details()}"
    (args.out / "regions.json").write_text(json.dumps(entries, indent=2))
    print(json.dumps({"out": str(args.out), "regions": len(entries),
                      "undecoded": sum(e["image"] is None for e in entries), "error": error}))
    if error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def _tls_client_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tls", action="store_true", help="use TLS with the system's root certificates")
    p.add_argument("--tls-ca", type=Path, help="PEM CA certificate that signed the server's certificate (implies TLS)")
    p.add_argument("--tls-cert", type=Path, help="client certificate for mutual TLS")
    p.add_argument("--tls-key", type=Path, help="client private key for mutual TLS")


def register(sub: argparse._SubParsersAction) -> None:
    cloud = sub.add_parser("cloud", help="cloud server").add_subparsers(dest="cloud_command", required=True)
    p = cloud.add_parser("serve", help="run the cloud gRPC server (docs/cloud.md)")
    p.add_argument("--data", type=Path, help="data directory (index + segments) of the embedded store; "
                   "not used with --index/--objects")
    p.add_argument("--index", help="shared index: postgresql://USER@HOST:PORT/DB (with --objects; docs/cloud.md)")
    p.add_argument("--objects", help="shared object store: s3://BUCKET/PREFIX (with --index)")
    p.add_argument("--s3-endpoint", help="URL of an S3-compatible store (e.g. http://seaweedfs:8333); default AWS")
    p.add_argument("--events", "--bus", dest="events", help="live events across nodes: nats://HOST:PORT")
    p.add_argument("--host", default="127.0.0.1",
                   help="listen address (default 127.0.0.1; any other needs TLS and --tokens or --tls-client-ca, "
                        "or --insecure)")
    p.add_argument("--port", type=int, default=50051, help="0 = any free port (logged at startup)")
    p.add_argument("--tls-cert", type=Path, help="PEM server certificate; enables TLS")
    p.add_argument("--tls-key", type=Path, help="PEM server private key")
    p.add_argument("--tls-client-ca", type=Path, help="PEM CA for client certificates: enables mutual TLS")
    p.add_argument("--tokens", type=Path, help='tokens file: JSON {"ingest": [...], "query": [...]} or lines '
                                               '"role:token[:stream-pattern,...]" (docs/cloud.md); none = no auth')
    p.add_argument("--insecure", action="store_true",
                   help="allow a non-loopback --host without TLS and client authentication (a trusted network, "
                        "or a TLS-terminating proxy)")
    p.add_argument("--trust-key", type=Path, action="append", default=[],
                   help="edge public key (roistream keygen --signing; repeatable): store only records it signed")
    p.add_argument("--metrics-port", type=int, help="serve Prometheus /metrics on this port")
    p.add_argument("--metrics-host", default="127.0.0.1", help="address of /metrics (default 127.0.0.1)")
    p.add_argument("--weights", type=Path, help="codec weights for decoding (default: shipped weights)")
    p.add_argument("--retain-age", type=parse_duration, help="delete frames stored longer ago (e.g. 7d, 12h)")
    p.add_argument("--retain-bytes", type=parse_size, help="keep at most this much segment data (e.g. 100G)")
    p.add_argument("--segment-size", type=parse_size, default="64M", help="segment file size (retention unit)")
    p.add_argument("--max-message-size", type=parse_size, default="16M", help="largest accepted request")
    p.add_argument("--max-workers", type=int, default=64, help="concurrent RoiStream calls (default 64)")
    p.add_argument("--max-calls-per-token", type=int, default=16,
                   help="of them, open at once with one token (default 16; 0 = no limit)")
    p.add_argument("--max-calls-per-peer", type=int, default=32,
                   help="of them, open at once from one IP address (default 32; 0 = no limit, e.g. behind a proxy)")
    p.add_argument("--health-workers", type=int, default=4,
                   help="threads kept for health checks and reflection beyond --max-workers (default 4)")
    p.add_argument("--idle-timeout", type=float, default=60.0,
                   help="seconds an Ingest call may stay open without sending a frame (default 60; 0 = never)")
    p.add_argument("--grace", type=float, default=10.0, help="seconds in-flight RPCs get at shutdown")
    p.add_argument("--decode-threads", type=int, help="torch threads for decoding (default: torch's choice)")
    p.add_argument("--decoder", choices=RUNTIME_NAMES, default="torch",
                   help="runtime of the synthesis transform (onnxruntime: the ONNX graphs are exported into the "
                        "cache on first use; tensorrt: engines of `roistream export tensorrt`)")
    p.add_argument("--log-level", default="info")
    p.set_defaults(func=_serve)

    p = sub.add_parser("query", help="fetch regions from the cloud: PNG crops + regions.json")
    p.add_argument("--cloud", required=True, help="HOST:PORT of the server")
    p.add_argument("--stream", default="", help="stream id (default: every stream)")
    p.add_argument("--classes", help="labels, comma separated")
    p.add_argument("--groups", help="group ids, comma separated")
    p.add_argument("--frames", type=parse_range, help="frame range A:B (inclusive)")
    p.add_argument("--background", action="store_true", help="include the background group")
    p.add_argument("--composite", action="store_true", help="one full-frame image per frame over the background")
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--key", type=Path, action="append", default=[], help="key file for encrypted groups (repeatable)")
    p.add_argument("--decrypt", choices=("local", "server"), default="local",
                   help="local: keys never leave this machine (default); server: send them over TLS")
    p.add_argument("--trust-key", type=Path, action="append", default=[],
                   help="edge public key (repeatable): fetch records and decode here only those it signed")
    p.add_argument("--token", help="query token (default: $ROISTREAM_TOKEN)")
    _tls_client_args(p)
    p.add_argument("--weights", type=Path, help="codec weights for local decoding")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=_query)

