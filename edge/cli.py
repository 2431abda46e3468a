"""Edge subcommands: `roistream edge run` (camera -> ROI groups -> codec -> cloud)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

from codec.runtime.registry import RUNTIME_NAMES
from proto.transport import MAX_INGEST_REQUEST


def _default_spool(stream_id: str) -> Path:
    from codec import paths

    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in stream_id)
    return paths.cache_dir() / "edge" / f"{safe}.spool"


def wants_tls(args: argparse.Namespace) -> bool:
    """TLS unless --insecure, or a loopback target with no TLS option given: the same default as
    `roistream cloud serve`, which listens in plaintext on 127.0.0.1 unless given a certificate."""
    from proto.transport import is_loopback, target_host

    if args.insecure:
        return False
    return args.tls or args.tls_ca is not None or args.tls_cert is not None or not is_loopback(target_host(args.cloud))


def build_pipeline(args: argparse.Namespace):
    """(pipeline, source, spool, streamer, metrics) from parsed `edge run` arguments."""
    from codec.crypto import EncryptionKey
    from codec.signing import SigningKey
    from codec.runtime import make_codec

    from .detector import FACE_LABEL, Detector, FaceDetector
    from .observers import EdgeMetrics
    from .pipeline import EdgePipeline
    from .policy import RoiPolicy
    from .sinks import SpoolSink
    from .sources import Backoff, open_source
    from .spool import Spool
    from .streaming import IngestStreamer, first_frame_index

    if args.encrypt and not args.key:
        raise ValueError("--encrypt needs --key KEYFILE (create one with `roistream keygen`)")
    source = open_source(args.source, fps_cap=args.fps, realtime=args.realtime, max_frames=args.max_frames,
                         open_retries=args.open_retries, backoff=Backoff(maximum=args.reconnect_max_s))
    detector = Detector(args.detector, conf=args.conf, imgsz=args.imgsz)
    known = detector.class_names + [FACE_LABEL]
    policy = RoiPolicy.from_words(args.roi, known, class_quality=args.class_quality, encrypt=args.encrypt,
                                  roi_quality=args.roi_quality, bg_quality=args.bg_quality, bg_scale=args.bg_scale,
                                  margin_px=args.margin, min_area_px=args.min_size, max_groups=args.max_groups)
    faces = FaceDetector() if (policy.wants_faces or args.faces) else None
    if args.faces and policy.classes is not None and FACE_LABEL not in policy.classes:
        policy.classes.append(FACE_LABEL)
    key = EncryptionKey.load(args.key) if args.key else None
    signer = SigningKey.load(args.sign_key) if args.sign_key else None
    codec, _ = make_codec(args.backend, args.weights, args.models_dir, precision=args.precision)
    spool = Spool(args.spool or _default_spool(args.stream), max_bytes=int(args.spool_max_mb * 2**20),
                  max_age_s=args.spool_max_age_h * 3600)
    streamer = None
    if args.cloud:
        token = args.token or os.environ.get("ROISTREAM_TOKEN")
        streamer = IngestStreamer(args.cloud, spool, token=token, tls=wants_tls(args), ca_cert=args.tls_ca,
                                  server_name=args.server_name, client_cert=args.tls_cert, client_key=args.tls_key,
                                  max_request_bytes=int(args.max_message_mb * 2**20))
    metrics = EdgeMetrics(args.stream)
    first = first_frame_index(args.stream, spool, streamer) if args.first_index is None else args.first_index
    pipeline = EdgePipeline.init(codec, policy, detector=detector, face_detector=faces,
                                 tracker=None if args.tracker == "none" else args.tracker,
                                 sink=SpoolSink(spool, streamer, int(args.max_message_mb * 2**20)), stream_id=args.stream, bg_interval=args.bg_interval,
                                 bg_fill=not args.no_bg_fill, target_kbps=args.target_kbps, key=key, signer=signer,
                                 metrics=metrics,
                                 status=None if args.no_status else sys.stderr, first_index=first,
                                 pipelined=not args.sequential)
    return pipeline, source, spool, streamer, metrics


def _run(args: argparse.Namespace) -> int:
    from codec.runtime import RuntimeUnavailable

    from .detector import DetectorError
    from .sources import SourceError

    try:
        pipeline, source, spool, streamer, metrics = build_pipeline(args)
    except (SourceError, DetectorError, RuntimeUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.metrics_port is not None:
        metrics.serve(args.metrics_port)
        print(f"metrics on http://0.0.0.0:{args.metrics_port}/metrics", file=sys.stderr)
    if streamer is not None:
        streamer.start()
    else:
        print(f"no --cloud given: frames stay in the spool {spool.path}", file=sys.stderr)
    code = 0
    try:
        summary = pipeline.run(source)
    except KeyboardInterrupt:
        summary = pipeline.summary
        print("\ninterrupted; unsent frames stay in the spool", file=sys.stderr)
        code = 130
    except SourceError as exc:
        summary = pipeline.summary
        print(f"\nerror: {exc}", file=sys.stderr)
        code = 2
    except RuntimeError as exc:  # e.g. the cloud refused the token
        summary = pipeline.summary
        print(f"\nerror: {exc}", file=sys.stderr)
        code = 1
    if streamer is not None:
        if code == 0 and not streamer.flush(args.flush_timeout):
            print(f"warning: {len(spool)} frame(s) not acknowledged within {args.flush_timeout:.0f} s; they stay in "
                  f"the spool {spool.path} and go out on the next run ({streamer.stats.last_error})", file=sys.stderr)
        streamer.close()
        st = streamer.stats
        if st.refused:
            print(f"warning: the cloud refused {st.refused} frame(s) for good (rejected {st.rejected}, conflict "
                  f"{st.conflict}, oversize {st.oversize}); they were dropped, not delivered. Last: "
                  f"{st.last_rejection}", file=sys.stderr)
        if streamer.fatal_error and code == 0:
            print(f"error: {streamer.fatal_error}", file=sys.stderr)
            code = 1
        produced, delivered = summary.frames - summary.empty_frames, streamer.stats.stored + streamer.stats.duplicate
        if code == 0 and produced > 0 and delivered == 0:
            print(f"error: {produced} frame(s) encoded but the cloud at {args.cloud} acknowledged none "
                  f"({'TLS' if streamer.endpoint.tls else 'plaintext'}; last error: "
                  f"{streamer.stats.last_error or 'none'}); "
                  + (f"{len(spool)} stay in the spool {spool.path}" if len(spool) else "none is left to resend"),
                  file=sys.stderr)
            code = 1
        summary.streamer = asdict(streamer.stats)
    summary.spool = {**spool.counters(), "depth": len(spool)}
    out = summary.to_dict()
    if args.summary:
        Path(args.summary).parent.mkdir(parents=True, exist_ok=True)
        Path(args.summary).write_text(json.dumps(out, indent=2))
    print(json.dumps(out))
    spool.close()
    metrics.close()
    return code


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("source")
    g.add_argument("--source", required=True, help="video file, rtsp/http URL, webcam index, image folder or glob")
    g.add_argument("--fps", type=float, help="frame-rate cap")
    g.add_argument("--realtime", action="store_true", help="play files at their native rate, dropping frames when "
                                                           "encoding is slower (live sources always do)")
    g.add_argument("--max-frames", type=int, help="stop after N frames")
    g.add_argument("--open-retries", type=int, default=3, help="attempts to open a live source")
    g.add_argument("--reconnect-max-s", type=float, default=10.0, help="longest backoff between reconnects")
    g = p.add_argument_group("ROI")
    g.add_argument("--roi", default="person", help='classes in words, e.g. "people, vehicles" (default: person)')
    g.add_argument("--roi-quality", type=float, default=0.85, help="quality of ROI groups (default 0.85)")
    g.add_argument("--class-quality", help='per-class quality, e.g. "person=0.9,car=0.6"')
    g.add_argument("--bg-quality", type=float, default=0.3, help="background quality (default 0.3)")
    g.add_argument("--bg-scale", type=int, choices=(1, 2, 4, 8), default=1,
                   help="code the background at 1/N resolution (fewer bits and less CPU, a blurred context)")
    g.add_argument("--bg-interval", type=int, default=1,
                   help="send the background every N frames and on scene changes (1 = every frame, 0 = scene "
                        "changes only)")
    g.add_argument("--no-bg-fill", action="store_true",
                   help="with --bg-interval, do not send the background blocks that objects hid at every refresh "
                        "once they are free (the cloud's composites then stay black there)")
    g.add_argument("--tracker", choices=("bytetrack", "botsort", "none"), default="bytetrack",
                   help="give each object a track id across frames, carried in its group (default bytetrack)")
    g.add_argument("--margin", type=int, default=8, help="dilation of instance masks in pixels (default 8)")
    g.add_argument("--min-size", type=int, default=256, help="ignore instances smaller than this many pixels")
    g.add_argument("--max-groups", type=int, default=32, help="most object groups per frame")
    g.add_argument("--encrypt", help="classes to encrypt, e.g. face,person (needs --key)")
    g.add_argument("--key", type=Path, help="AES key file (roistream keygen)")
    g.add_argument("--sign-key", type=Path,
                   help="sign every record with this Ed25519 edge key (roistream keygen --signing)")
    g.add_argument("--faces", action="store_true", help="also detect faces (YuNet) as 'face' groups")
    g.add_argument("--detector", help="YOLO-seg weights (.pt/.onnx/.engine; default: shared int8 ONNX)")
    g.add_argument("--conf", type=float, default=0.35, help="detector confidence threshold")
    g.add_argument("--imgsz", type=int, help="detector input size (default: the model's)")
    g = p.add_argument_group("encoder")
    g.add_argument("--target-kbps", type=float, help="hold this bitrate by adapting qualities frame by frame")
    g.add_argument("--backend", choices=RUNTIME_NAMES, default="torch",
                   help="encoder runtime (onnxruntime / tensorrt need `roistream export onnx` / `export tensorrt`)")
    g.add_argument("--precision", choices=("fp32", "fp16"), help="encoder precision (default: the runtime's)")
    g.add_argument("--models", "--models-dir", "--onnx-dir", dest="models_dir", type=Path,
                   help="exported models (default: $ROISTREAM_MODELS, else where roistream export writes)")
    g.add_argument("--weights", type=Path, help="codec weights (default: shipped weights)")
    g.add_argument("--sequential", action="store_true",
                   help="detect and encode one after the other (default: detect the next frame while this one "
                        "is encoded)")
    g = p.add_argument_group("cloud")
    g.add_argument("--cloud", help="HOST:PORT of the cloud's gRPC service (omit to only spool)")
    g.add_argument("--stream", required=True, help="stream id")
    g.add_argument("--token", help="ingest token (default: $ROISTREAM_TOKEN)")
    g.add_argument("--tls", action="store_true",
                   help="TLS even to a loopback --cloud (default: TLS unless --cloud is 127.0.0.1/localhost/::1)")
    g.add_argument("--tls-ca", type=Path, help="CA certificate of the server (default: system roots; implies TLS)")
    g.add_argument("--tls-cert", type=Path, help="client certificate for mutual TLS")
    g.add_argument("--tls-key", type=Path, help="client key for mutual TLS")
    g.add_argument("--server-name", help="TLS server name override")
    g.add_argument("--insecure", action="store_true",
                   help="plaintext gRPC to any --cloud (a trusted network; loopback targets are plaintext anyway)")
    g.add_argument("--spool", type=Path, help="outbox file (default: .cache/edge/STREAM.spool)")
    g.add_argument("--spool-max-mb", type=float, default=1024, help="outbox size bound (oldest frames dropped)")
    g.add_argument("--spool-max-age-h", type=float, default=24, help="outbox age bound in hours")
    g.add_argument("--first-index", type=int,
                   help="frame index of the first frame (default: past the spool's and the cloud's last frame)")
    g.add_argument("--max-message-mb", type=float, default=MAX_INGEST_REQUEST / 2**20,
                   help="the cloud's --max-message-size in MiB (default 16): larger frames are dropped and counted "
                        "before spooling, since the cloud would refuse them on every attempt")
    g.add_argument("--flush-timeout", type=float, default=30, help="seconds to wait for the last acks")
    g = p.add_argument_group("output")
    g.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    g.add_argument("--no-status", action="store_true", help="no live status line")
    g.add_argument("--summary", type=Path, help="also write the summary JSON here")


def register(sub: argparse._SubParsersAction) -> None:
    edge = sub.add_parser("edge", help="edge node: capture, detect, encode and stream to the cloud")
    edge_sub = edge.add_subparsers(dest="edge_command", required=True)
    p = edge_sub.add_parser("run", help="run the edge pipeline on a source and stream to the cloud")
    add_run_arguments(p)
    p.set_defaults(func=_run)
