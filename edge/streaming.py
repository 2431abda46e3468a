"""Resilient Ingest client: streams the spool to the cloud over gRPC (TLS + bearer token).

`IngestStreamer` runs one thread that keeps a bidirectional Ingest call open and feeds it frames
from the `Spool` in spool order, with up to `window` frames in flight. The cloud answers one
IngestAck per frame, in order, after the frame is durably stored:

* STORED / DUPLICATE: the frame is removed from the spool (DUPLICATE means an earlier attempt
  reached the cloud but its ack was lost: nothing is stored twice);
* REJECTED: the frame is invalid and would be rejected again: it is removed and counted.

When the call breaks (cloud down, network gone, deadline), unacknowledged frames stay in the spool
and are sent again, in order, on the next connection, which is retried with exponential backoff.
So nothing acknowledged is sent again and nothing unacknowledged is lost. Authentication errors
(UNAUTHENTICATED, PERMISSION_DENIED) are not retried: they stop the streamer with `fatal_error`.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import grpc

from proto import service_pb2
from proto.transport import Endpoint, IngestCall, IngestProtocolError, ingest_request

from .sources import Backoff
from .spool import Spool

log = logging.getLogger(__name__)

FATAL_CODES = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED,
               grpc.StatusCode.UNIMPLEMENTED)


class StreamingError(RuntimeError):
    pass


@dataclass
class StreamerStats:
    sent: int = 0  # Ingest requests written (resends included)
    stored: int = 0
    duplicate: int = 0
    rejected: int = 0
    acked_bytes: int = 0  # serialized bytes of acknowledged frames
    reconnects: int = 0
    connected: bool = False
    last_error: str = ""
    last_rejection: str = ""


class IngestStreamer:
    """Sends spooled frames to the cloud's Ingest stream until closed.

    target: "host:port"; token: bearer token (ingest scope); tls / ca_cert / server_name /
    client_cert / client_key: see `proto.transport.Endpoint`; window: frames in flight before waiting for acks; on_ack(entry, ack): called for
    every acknowledgement, in order.
    """

    def __init__(self, target: str, spool: Spool, *, token: str | None = None, tls: bool = True,
                 ca_cert: str | Path | bytes | None = None, server_name: str | None = None,
                 client_cert: str | Path | bytes | None = None, client_key: str | Path | bytes | None = None,
                 window: int = 16, backoff: Backoff | None = None, on_ack=None):
        self.target, self.spool, self.window = target, spool, max(1, window)
        self.endpoint = Endpoint.of(target, tls=tls, ca_cert=ca_cert, client_cert=client_cert, client_key=client_key,
                                    server_name=server_name, token=token)
        self.on_ack = on_ack
        self.backoff = backoff or Backoff(initial=0.25, maximum=5.0)
        self.stats = StreamerStats()
        self.fatal_error: str | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._call = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle
    def start(self) -> "IngestStreamer":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="ingest-streamer", daemon=True)
            self._thread.start()
        return self

    def flush(self, timeout: float) -> bool:
        """Wait until every spooled frame is acknowledged (True) or timeout / fatal error (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.fatal_error:
                return False
            if self.spool.wait_empty(min(0.2, max(deadline - time.monotonic(), 0))):
                return True
        return len(self.spool) == 0

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._lock:
            if self._call is not None:
                self._call.cancel()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> "IngestStreamer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def in_flight(self) -> int:
        call = self._call
        return call.in_flight if call is not None else 0

    # ---- the connection loop
    def _run(self) -> None:
        while not self._stop.is_set():
            if not self.spool.wait(0, 0.5):
                continue
            try:
                progressed = self._session()
            except Exception as exc:  # a bug here must not silently stop streaming
                log.exception("ingest session failed")
                self.stats.last_error = repr(exc)
                progressed = False
            finally:
                self.stats.connected = False
            if self.fatal_error or self._stop.is_set():
                return
            if progressed:
                self.backoff.reset()
            delay = self.backoff.next_delay()
            log.warning("cloud %s unavailable (%s); retrying in %.1f s", self.target, self.stats.last_error, delay)
            self._stop.wait(delay)
            self.stats.reconnects += 1

    def _session(self) -> bool:
        """One Ingest call; returns whether any ack arrived. Unacked frames stay in the spool."""
        acked_any = False
        channel = self.endpoint.channel()
        call = IngestCall(channel, lambda e: ingest_request(e.data), metadata=self.endpoint.metadata,
                          window=self.window)

        def entries():
            last_seq = 0
            while not call.closed.is_set() and not self._stop.is_set():
                got = self.spool.peek(last_seq, 1)
                if not got:
                    self.spool.wait(last_seq, 0.5)
                    continue
                last_seq = got[0].seq
                self.stats.sent += 1
                yield got[0]

        try:
            with self._lock:
                self._call = call
            if self._stop.is_set():
                call.cancel()
            self.stats.connected = True
            for entry, ack in call.send(entries()):
                if (ack.stream_id, ack.frame_index) != (entry.stream_id, entry.frame_index):
                    raise StreamingError(f"ack for {ack.stream_id}#{ack.frame_index} does not match the oldest "
                                         f"frame in flight {entry.stream_id}#{entry.frame_index}")
                if ack.status == service_pb2.IngestAck.REJECTED:
                    self.stats.rejected += 1
                    self.stats.last_rejection = f"{entry.stream_id}#{entry.frame_index}: {ack.error}"
                    log.error("cloud rejected frame %s", self.stats.last_rejection)
                    self.spool.reject(entry.seq)
                else:
                    if ack.status == service_pb2.IngestAck.DUPLICATE:
                        self.stats.duplicate += 1
                    else:
                        self.stats.stored += 1
                    self.stats.acked_bytes += len(entry.data)
                    self.spool.ack(entry.seq)
                acked_any = True
                if self.on_ack is not None:
                    self.on_ack(entry, ack)
            self.stats.last_error = "stream closed by the cloud"
        except grpc.RpcError as exc:
            if self._stop.is_set():  # our own cancel on close
                return acked_any
            code = exc.code() if hasattr(exc, "code") else None
            detail = exc.details() if hasattr(exc, "details") else str(exc)
            self.stats.last_error = f"{code.name if code else 'RPC error'}: {detail}"
            if code in FATAL_CODES and not self._stop.is_set():
                self.fatal_error = f"cloud {self.target} refused the stream: {self.stats.last_error}"
                log.error(self.fatal_error)
        except (StreamingError, IngestProtocolError) as exc:
            self.stats.last_error = str(exc)
        finally:
            with self._lock:
                if self._call is not None:
                    self._call.cancel()
                self._call = None
            channel.close()
        return acked_any
