"""The client side of the wire, shared by the edge's streamer and the query client.

One channel factory (`Endpoint`: TLS, mutual TLS, bearer token, message limits, keepalive) and one
windowed Ingest call (`IngestCall`), so both clients connect, authenticate and apply flow control
the same way:

    items ──wire(item)──▶ IngestRequest bytes ──▶ at most `window` in flight ──▶ cloud
    (item, ack) ◀──────── paired in order ◀──────── one IngestAck per frame, once it is durable

Frames travel as the bytes they were serialized to on the edge: `ingest_request` frames those bytes
as an IngestRequest without parsing them, and the Ingest method is called with no request
serializer, so nothing is parsed back or serialized again on the way out.
"""

from __future__ import annotations

import ipaddress
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import grpc

from . import service_pb2, service_pb2_grpc

T = TypeVar("T")

MAX_MESSAGE = 64 * 1024 * 1024  # both directions; the server sets its own limits on what it accepts
# The largest IngestRequest a server accepts by default (`roistream cloud serve --max-message-size`). The
# server answers a larger one with an RPC error, not an ack, so the edge refuses such frames before spooling
# them (`roistream edge run --max-frame-size`, which must not exceed the server's setting).
MAX_INGEST_REQUEST = 16 * 1024 * 1024
INGEST_METHOD = "/roistream.v1.RoiStream/Ingest"
_INGEST_FRAME_TAG = b"\x0a"  # IngestRequest.frame: field 1, length-delimited


def target_host(target: str) -> str:
    """The host of a 'host:port' target (also '[v6]:port', 'dns:///host:port', 'ipv4:host:port')."""
    for scheme in ("dns:///", "dns:", "ipv4:", "ipv6:"):
        if target.startswith(scheme):
            target = target[len(scheme):]
            break
    if target.startswith("["):
        return target[1:].partition("]")[0]
    host, sep, port = target.rpartition(":")
    if not sep or ":" in host:  # no port, or a bare IPv6 address
        return target
    return host


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine only: localhost, 127.0.0.0/8, ::1 (and not 0.0.0.0 / :: / ''), so that
    plaintext to or from it never crosses a network."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_pem(value: str | Path | bytes | None) -> bytes | None:
    """PEM bytes given as bytes, or as the path of a file holding them."""
    return value if isinstance(value, (bytes, type(None))) else Path(value).read_bytes()


@dataclass(frozen=True)
class Endpoint:
    """Where the cloud is and how to reach it.

    tls: TLS with the system roots, or with `ca_cert` when given; `client_cert` + `client_key` add
    mutual TLS. Plaintext (tls=False) is for 127.0.0.1 and a TLS-terminating proxy on the same host.
    `server_name` overrides the name checked against the server certificate. `token` is sent as
    `authorization: Bearer <token>` on every call.
    """

    target: str
    tls: bool = True
    ca_cert: bytes | None = None
    client_cert: bytes | None = None
    client_key: bytes | None = None
    server_name: str | None = None
    token: str | None = None
    max_message_bytes: int = MAX_MESSAGE

    @classmethod
    def of(cls, target: str, *, tls: bool = True, ca_cert: str | Path | bytes | None = None,
           client_cert: str | Path | bytes | None = None, client_key: str | Path | bytes | None = None,
           **kwargs) -> "Endpoint":
        """An endpoint whose certificates may be given as file paths (read once, here)."""
        if bool(client_cert) != bool(client_key):
            raise ValueError("mutual TLS needs both a client certificate and its key")
        return cls(target, tls, read_pem(ca_cert), read_pem(client_cert), read_pem(client_key), **kwargs)

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    def channel(self) -> grpc.Channel:
        options = [("grpc.max_send_message_length", self.max_message_bytes),
                   ("grpc.max_receive_message_length", self.max_message_bytes),
                   ("grpc.keepalive_time_ms", 20_000), ("grpc.keepalive_timeout_ms", 10_000),
                   ("grpc.http2.max_pings_without_data", 0), ("grpc.keepalive_permit_without_calls", 1)]
        if self.server_name:
            options.append(("grpc.ssl_target_name_override", self.server_name))
        if not self.tls:
            return grpc.insecure_channel(self.target, options=options)
        creds = grpc.ssl_channel_credentials(root_certificates=self.ca_cert, private_key=self.client_key,
                                             certificate_chain=self.client_cert)
        return grpc.secure_channel(self.target, creds, options=options)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def ingest_request(frame_bytes: bytes) -> bytes:
    """The wire bytes of `IngestRequest(frame=EncodedFrame.FromString(frame_bytes))`, built without parsing."""
    return _INGEST_FRAME_TAG + _varint(len(frame_bytes)) + frame_bytes


def ingest_request_size(frame_bytes: int) -> int:
    """Bytes of the IngestRequest that carries a serialized frame of `frame_bytes` bytes (what the server's
    message limit applies to)."""
    return len(_INGEST_FRAME_TAG) + len(_varint(frame_bytes)) + frame_bytes


def stream_position(channel: grpc.Channel, stream_id: str, *, metadata: Iterable[tuple[str, str]] = (),
                    timeout: float | None = None) -> service_pb2.StreamPositionResponse:
    """Where the cloud's copy of a stream continues (one past its highest stored frame index)."""
    stub = service_pb2_grpc.RoiStreamStub(channel)
    return stub.StreamPosition(service_pb2.StreamPositionRequest(stream_id=stream_id), metadata=tuple(metadata),
                               timeout=timeout)


class IngestProtocolError(RuntimeError):
    """The cloud acknowledged a frame that was not in flight."""


class IngestCall(Generic[T]):
    """One bidirectional Ingest call with at most `window` frames sent and not yet acknowledged.

    `send(items)` starts the call and yields `(item, ack)` in send order; `items` is pulled only
    while there is room in the window, and `wire(item)` gives the bytes of its frame (see
    `ingest_request`). `closed` is set once the call has ended, so an item source that blocks can
    watch it and stop; `cancel()` ends the call from any thread.
    """

    def __init__(self, channel: grpc.Channel, wire: Callable[[T], bytes], *,
                 metadata: Iterable[tuple[str, str]] = (), window: int = 16, timeout: float | None = None):
        self.window = max(1, window)
        self.closed = threading.Event()
        self._wire, self._metadata, self._timeout = wire, tuple(metadata), timeout
        self._method = channel.stream_stream(INGEST_METHOD, request_serializer=None,
                                             response_deserializer=service_pb2.IngestAck.FromString)
        self._pending: deque[T] = deque()
        self._cond = threading.Condition()
        self._call = None

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def unacknowledged(self) -> list[T]:
        """The items sent and not yet acknowledged, oldest first."""
        with self._cond:
            return list(self._pending)

    def _requests(self, items: Iterable[T]) -> Iterator[bytes]:
        for item in items:
            with self._cond:
                while len(self._pending) >= self.window and not self.closed.is_set():
                    self._cond.wait(0.5)
                if self.closed.is_set():
                    return
                self._pending.append(item)
            yield self._wire(item)

    def send(self, items: Iterable[T]) -> Iterator[tuple[T, service_pb2.IngestAck]]:
        self._call = self._method(self._requests(items), metadata=self._metadata, timeout=self._timeout)
        try:
            if self.closed.is_set():
                self._call.cancel()
            for ack in self._call:
                with self._cond:
                    if not self._pending:
                        raise IngestProtocolError(f"ack for {ack.stream_id}#{ack.frame_index} with no frame in flight")
                    item = self._pending.popleft()
                    self._cond.notify_all()
                yield item, ack
        finally:
            self.cancel()

    def cancel(self) -> None:
        self.closed.set()
        with self._cond:
            self._cond.notify_all()
        if self._call is not None:
            self._call.cancel()
