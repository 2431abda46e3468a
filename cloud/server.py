"""Build, start and stop the cloud server: gRPC service, TLS, auth, health, reflection, metrics, retention.

`CloudServer(config).start()` returns once the port is bound (port 0 picks a free one, read it
back from `.port`); `stop()` shuts down gracefully: health turns NOT_SERVING, live Subscribe calls
end, in-flight RPCs get `grace_s` to finish, and every frame already handed to storage is
written before the storage closes.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from codec.api import Codec
from codec.signing import TrustedKeys
from proto.transport import MAX_INGEST_REQUEST

from proto.transport import is_loopback

from .admission import AdmissionInterceptor, Limits
from .auth import Access, AuthInterceptor, Tokens
from .backends import BackendChoice, open_feed, open_storage
from .errors import DependencyUnavailable
from .feed import FrameFeed
from .metrics import Metrics
from .regions import RegionBuilder
from .service import DEFAULT_IDLE_TIMEOUT_S, SERVICE_NAME, RoiStreamService
from .sqlite_storage import DEFAULT_SEGMENT_BYTES
from .storage import Storage

log = logging.getLogger(__name__)


class InsecureBindError(ValueError):
    """A listen address beyond this machine without TLS and client authentication, and no `insecure`."""


@dataclass
class ServerConfig:
    data_dir: Path
    host: str = "127.0.0.1"  # beyond loopback needs TLS and tokens (or mutual TLS), or insecure=True
    port: int = 50051  # 0 = any free port
    tls_cert: Path | None = None  # PEM server certificate (chain); with tls_key enables TLS
    tls_key: Path | None = None
    tls_client_ca: Path | None = None  # PEM CA: clients must present a certificate it signed (mutual TLS)
    tokens: Path | None = None  # tokens file (cloud/auth.py: roles and stream scopes); None = no auth
    trust_keys: tuple[Path, ...] = ()  # edge public keys (codec.signing); given, only records they signed are stored
    metrics_port: int | None = None  # Prometheus /metrics; None = off, 0 = any free port
    metrics_host: str = "127.0.0.1"
    weights: Path | None = None  # codec weights used to decode (default: the shipped weights)
    decoder: str = "torch"  # "onnxruntime": the exported synthesis graph, ~1.8x faster (exported on first use)
    max_message_bytes: int = MAX_INGEST_REQUEST  # the edge refuses larger frames with the same constant
    retain_age_s: float | None = None
    retain_bytes: int | None = None
    retention_interval_s: float = 60.0
    segment_bytes: int = DEFAULT_SEGMENT_BYTES
    max_workers: int = 64  # concurrent RoiStream RPCs (each Ingest / Subscribe holds one while open)
    max_calls_per_token: int = 16  # of them, open at once with one token (0 = no limit)
    max_calls_per_peer: int = 32  # ... from one IP address (0 = no limit, e.g. behind a proxy)
    health_workers: int = 4  # threads beyond max_workers for health checks and reflection only
    idle_timeout_s: float | None = DEFAULT_IDLE_TIMEOUT_S  # end an Ingest call silent this long; None = never
    grace_s: float = 10.0
    insecure: bool = False  # allow a non-loopback host without TLS and client authentication
    index: str | None = None  # postgresql:// URL: the shared index (with objects); None = embedded SQLite
    objects: str | None = None  # s3://bucket/prefix: the shared object store (with index)
    s3_endpoint: str | None = None  # http://host:port of an S3-compatible store; None = AWS
    events: str | None = None  # nats:// URL: live events across nodes; None = this node only
    health_interval_s: float = 1.0  # how often the shared services are checked for health

    @property
    def backends(self) -> BackendChoice:
        return BackendChoice(self.data_dir, self.segment_bytes, self.index, self.objects, self.s3_endpoint,
                             self.events)

    @property
    def limits(self) -> Limits:
        return Limits(self.max_workers, self.max_calls_per_token, self.max_calls_per_peer, self.health_workers)

    def check_exposure(self) -> None:
        """Refuse to listen beyond loopback in the clear or without client authentication, unless told to:
        anyone who reaches the port could then write and read every stream."""
        if is_loopback(self.host) or self.insecure:
            return
        missing = [what for what, ok in (("TLS (--tls-cert/--tls-key)", self.tls_cert is not None),
                                         ("client authentication (--tokens or --tls-client-ca)",
                                          self.tokens is not None or self.tls_client_ca is not None)) if not ok]
        if missing:
            raise InsecureBindError(
                f"refusing to listen on {self.host}, beyond this machine, without {' and '.join(missing)}: anyone "
                "who reaches the port could write and read every stream. Add them, bind 127.0.0.1, or pass "
                "--insecure (ServerConfig.insecure) for a trusted network or a TLS-terminating proxy")


def load_decoder(decoder: str, weights: Path | None = None) -> Codec:
    """The codec that decodes regions, on any runtime of `codec.runtime` (torch is the reference;
    onnxruntime's graphs are exported into the cache first when missing). Every runtime decodes
    every stream; pixels may differ in the last bit between runtimes, each is thread-count invariant."""
    from codec.runtime import make_codec
    from codec.weights import load_codec_weights

    codec_weights = load_codec_weights(weights)
    models_dir = None
    if decoder == "onnxruntime":
        from export.onnx import ensure_exported

        models_dir = ensure_exported(codec_weights)
    codec, name = make_codec(decoder, codec_weights, models_dir)
    log.info("decoding with %s", name)
    return codec


def _read(path: Path | None) -> bytes | None:
    return Path(path).read_bytes() if path else None


class CloudServer:
    def __init__(self, config: ServerConfig, storage: Storage | None = None, codec: Codec | None = None):
        if bool(config.tls_cert) != bool(config.tls_key):
            raise ValueError("TLS needs both a certificate and its key")
        if config.tls_client_ca and not config.tls_cert:
            raise ValueError("mutual TLS (client CA) needs server TLS (certificate and key)")
        self.config = config
        self.metrics = Metrics()
        self.feed: FrameFeed | None = None
        self.storage = storage
        self.codec = codec
        self.port = 0
        self.metrics_port: int | None = None
        self._grpc: grpc.Server | None = None
        self._health = health.HealthServicer()
        self._stopping = threading.Event()
        self._retention: threading.Thread | None = None
        self._watcher: threading.Thread | None = None

    @property
    def tls(self) -> bool:
        return self.config.tls_cert is not None

    def start(self) -> "CloudServer":
        cfg = self.config
        cfg.check_exposure()
        limits = cfg.limits
        tokens = Tokens.load(cfg.tokens) if cfg.tokens else None
        if self.codec is None:  # before the storage opens: a bad decoder choice leaves nothing open
            self.codec = load_decoder(cfg.decoder, cfg.weights)
        cfg.backends.validate()
        if self.storage is None:
            self.storage = open_storage(cfg.backends)
        try:
            self.feed = open_feed(cfg.backends)
        except Exception:
            self.storage.close()
            raise
        service = RoiStreamService(self.storage, RegionBuilder(self.storage, self.codec, self.metrics), self.feed,
                                   self.metrics, cfg.max_message_bytes, TrustedKeys.load(cfg.trust_keys),
                                   Access(tokens), cfg.idle_timeout_s)
        admission = AdmissionInterceptor(limits, lambda limit: self.metrics.calls_refused.labels(limit).inc())
        server = grpc.server(
            # health and reflection have threads of their own (cloud/admission.py); calls over the limits are
            # refused by the admission interceptor, gRPC's own cap is only a backstop against a flood of them
            ThreadPoolExecutor(max_workers=limits.threads, thread_name_prefix="rpc"),
            interceptors=([AuthInterceptor(tokens)] if tokens else []) + [admission],
            # the transport allows twice the limit so that a somewhat oversized message reaches the service and
            # gets a clear INVALID_ARGUMENT; beyond that gRPC itself answers RESOURCE_EXHAUSTED
            options=[("grpc.max_receive_message_length", 2 * cfg.max_message_bytes),
                     ("grpc.max_send_message_length", -1)],
            maximum_concurrent_rpcs=4 * limits.threads)
        server.add_generic_rpc_handlers((service.handler(),))
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            server)
        address = f"{cfg.host}:{cfg.port}"
        if self.tls:
            creds = grpc.ssl_server_credentials([(_read(cfg.tls_key), _read(cfg.tls_cert))],
                                                root_certificates=_read(cfg.tls_client_ca),
                                                require_client_auth=cfg.tls_client_ca is not None)
            self.port = server.add_secure_port(address, creds)
        else:
            self.port = server.add_insecure_port(address)
        if not self.port:
            raise OSError(f"cannot listen on {address}")
        server.start()
        self._grpc = server
        for name in ("", SERVICE_NAME):
            self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        if cfg.metrics_port is not None:
            self.metrics_port = self.metrics.serve(cfg.metrics_port, cfg.metrics_host)
        self._watcher = threading.Thread(target=self._watch, name="health-watch", daemon=True)
        self._watcher.start()
        if cfg.retain_age_s is not None or cfg.retain_bytes is not None:
            self._retention = threading.Thread(target=self._retain, name="retention", daemon=True)
            self._retention.start()
        log.info("server started", extra={"fields": {
            "host": cfg.host, "port": self.port, "tls": self.tls, "mutual_tls": cfg.tls_client_ca is not None,
            "auth": tokens is not None, "max_workers": cfg.max_workers, "per_token": cfg.max_calls_per_token,
            "per_peer": cfg.max_calls_per_peer, "idle_timeout_s": cfg.idle_timeout_s, "metrics_port": self.metrics_port, "data": "shared" if cfg.index else str(cfg.data_dir), "events": cfg.events,
            "weights_id": self.codec.weights_id}})
        return self

    def _watch(self) -> None:
        """Health follows the shared services: NOT_SERVING while one does not answer (a balancer then sends
        calls to other nodes), SERVING again once it does."""
        serving = True
        while not self._stopping.wait(self.config.health_interval_s):
            try:
                self.storage.check()
                self.feed.check()
                problem = None
            except DependencyUnavailable as exc:
                problem = str(exc)
            if (problem is None) == serving:
                continue
            serving = problem is None
            status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
            for name in ("", SERVICE_NAME):
                self._health.set(name, status)  # ignored once shutdown began
            if serving:
                log.info("dependencies answer again: serving", extra={"fields": {"port": self.port}})
            else:
                log.error("a dependency is down: not serving", extra={"fields": {"port": self.port,
                                                                                 "error": problem}})

    def _retain(self) -> None:
        while True:
            try:
                self.storage.prune(self.config.retain_age_s, self.config.retain_bytes)
            except Exception:  # noqa: BLE001 - retention must not take the server down; it retries next round
                log.exception("retention failed")
            if self._stopping.wait(self.config.retention_interval_s):
                return

    def stop(self, grace: float | None = None) -> None:
        """Graceful shutdown; safe to call twice."""
        if self._grpc is None or self._stopping.is_set():
            return
        self._stopping.set()
        log.info("server stopping", extra={"fields": {"port": self.port}})
        self._health.enter_graceful_shutdown()
        self.feed.close()
        self._grpc.stop(self.config.grace_s if grace is None else grace).wait()
        if self._retention is not None:
            self._retention.join()
        if self._watcher is not None:
            self._watcher.join()
        self.storage.close()
        self.metrics.stop()
        log.info("server stopped", extra={"fields": {"port": self.port}})

    def wait(self) -> None:
        """Block until the server has stopped."""
        if self._grpc is not None:
            self._grpc.wait_for_termination()

    def __enter__(self) -> "CloudServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop(grace=1.0)
