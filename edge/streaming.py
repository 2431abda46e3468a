"""Resilient Ingest client: streams the spool to the cloud over gRPC (TLS + bearer token).

`IngestStreamer` runs one thread that keeps a bidirectional Ingest call open and feeds it frames
from the `Spool` in spool order, with up to `window` frames in flight. The cloud answers one
IngestAck per frame, in order, after the frame is durably stored:

* STORED / DUPLICATE: the frame is removed from the spool as delivered (DUPLICATE means these
  very bytes are stored: an earlier attempt reached the cloud but its ack was lost);
* a permanent refusal has one outcome, whatever its kind: the frame is removed from the spool,
  counted (`StreamerStats.rejected` / `conflict` / `oversize`, the spool's counter of that name) and
  logged as an error. The kinds: REJECTED (the frame is invalid), CONFLICT (a different frame holds its
  (stream, index); the ack says where the stream continues, and `cloud_next_index` passes that on so
  the pipeline numbers its next frames past it), and oversize (larger than `max_request_bytes`, or
  refused by the server at the RPC level: INVALID_ARGUMENT / RESOURCE_EXHAUSTED). An RPC-level refusal
  names no frame, so the streamer first resends one frame at a time; the frame that then fails the call
  alone is the one refused. Only STORED and DUPLICATE count as delivered.

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
from proto.transport import (MAX_INGEST_REQUEST, Endpoint, IngestCall, IngestProtocolError, ingest_request,
                             ingest_request_size, stream_position)

from .sources import Backoff
from .spool import Spool

log = logging.getLogger(__name__)

FATAL_CODES = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED,
               grpc.StatusCode.UNIMPLEMENTED)
# the server refused a message of the call as such (too large, unparsable): resending it cannot help
REFUSING_CODES = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED)
REFUSALS = ("rejected", "conflict", "oversize")  # the kinds of permanent refusal (StreamerStats, spool counters)


class StreamingError(RuntimeError):
    pass


@dataclass
class StreamerStats:
    sent: int = 0  # Ingest requests written (resends included)
    stored: int = 0
    duplicate: int = 0
    rejected: int = 0  # permanent refusals, by kind (see the module docstring); none of them is stored
    conflict: int = 0
    oversize: int = 0
    cloud_next_index: int = 0  # where the cloud said the stream continues (StreamPosition, CONFLICT acks)
    acked_bytes: int = 0  # serialized bytes of acknowledged frames
    reconnects: int = 0
    connected: bool = False
    last_error: str = ""
    last_rejection: str = ""  # the last permanent refusal: "stream#index: why"

    @property
    def refused(self) -> int:
        return self.rejected + self.conflict + self.oversize


class IngestStreamer:
    """Sends spooled frames to the cloud's Ingest stream until closed.

    target: "host:port"; token: bearer token (ingest scope); tls / ca_cert / server_name /
    client_cert / client_key: see `proto.transport.Endpoint`; window: frames in flight before waiting for
    acks; max_request_bytes: the server's message limit (frames over it are refused, never sent);
    on_ack(entry, ack): called for every acknowledgement, in order.
    """

    def __init__(self, target: str, spool: Spool, *, token: str | None = None, tls: bool = True,
                 ca_cert: str | Path | bytes | None = None, server_name: str | None = None,
                 client_cert: str | Path | bytes | None = None, client_key: str | Path | bytes | None = None,
                 window: int = 16, backoff: Backoff | None = None, on_ack=None,
                 max_request_bytes: int = MAX_INGEST_REQUEST):
        self.target, self.spool, self.window = target, spool, max(1, window)
        self.max_request_bytes = max_request_bytes
        self._isolate = False  # after an RPC-level refusal: one frame in flight until the culprit is found
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

    def fits(self, nbytes: int) -> bool:
        """Whether a serialized frame of `nbytes` bytes is within the server's message limit."""
        return ingest_request_size(nbytes) <= self.max_request_bytes

    def stream_position(self, stream_id: str, timeout: float = 10.0) -> int:
        """Ask the cloud where `stream_id` continues (one past its highest stored index); raises grpc.RpcError."""
        channel = self.endpoint.channel()
        try:
            pos = stream_position(channel, stream_id, metadata=self.endpoint.metadata, timeout=timeout)
        finally:
            channel.close()
        self.stats.cloud_next_index = max(self.stats.cloud_next_index, pos.next_frame_index)
        return pos.next_frame_index

    def _refuse(self, entry, kind: str, why: str) -> None:
        """The one outcome of every permanent refusal: removed from the spool, counted, logged."""
        setattr(self.stats, kind, getattr(self.stats, kind) + 1)
        self.stats.last_rejection = f"{entry.stream_id}#{entry.frame_index}: {why}"
        log.error("cloud refused frame %s (%s); it is dropped, not delivered", self.stats.last_rejection, kind)
        self.spool.reject(entry.seq, kind)

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
        acked_any = refusing = False
        channel = self.endpoint.channel()
        call = IngestCall(channel, lambda e: ingest_request(e.data), metadata=self.endpoint.metadata,
                          window=1 if self._isolate else self.window)

        def entries():
            last_seq = 0
            while not call.closed.is_set() and not self._stop.is_set():
                got = self.spool.peek(last_seq, 1)
                if not got:
                    self.spool.wait(last_seq, 0.5)
                    continue
                last_seq = got[0].seq
                if not self.fits(len(got[0].data)):  # spooled before the limit was known, or under a larger one
                    self._refuse(got[0], "oversize", f"{ingest_request_size(len(got[0].data))} bytes is over the "
                                                     f"server's message limit of {self.max_request_bytes} bytes")
                    continue
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
                    self._refuse(entry, "rejected", ack.error)
                elif ack.status == service_pb2.IngestAck.CONFLICT:
                    self.stats.cloud_next_index = max(self.stats.cloud_next_index, ack.next_frame_index)
                    self._refuse(entry, "conflict", ack.error or "another frame is stored at this index")
                elif ack.status in (service_pb2.IngestAck.STORED, service_pb2.IngestAck.DUPLICATE):
                    if ack.status == service_pb2.IngestAck.DUPLICATE:
                        self.stats.duplicate += 1
                    else:
                        self.stats.stored += 1
                    self.stats.acked_bytes += len(entry.data)
                    self.spool.ack(entry.seq)
                else:  # a status this edge does not know: keep the frame rather than call it delivered
                    raise StreamingError(f"unknown ack status {ack.status} for {entry.stream_id}#{entry.frame_index}")
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
            elif code in REFUSING_CODES:
                refusing = True
                acked_any = self._refused_call(call, self.stats.last_error) or acked_any
        except (StreamingError, IngestProtocolError) as exc:
            self.stats.last_error = str(exc)
        finally:
            if not refusing:
                self._isolate = False
            with self._lock:
                if self._call is not None:
                    self._call.cancel()
                self._call = None
            channel.close()
        return acked_any

    def _refused_call(self, call: IngestCall, why: str) -> bool:
        """The server ended the call over one of its messages. With several frames in flight the culprit is
        unknown: go on one at a time. With one, it is that frame: refuse it. True when a frame was refused."""
        unacked = call.unacknowledged()
        if not self._isolate or len(unacked) != 1:
            self._isolate = True
            return False
        self._isolate = False
        self._refuse(unacked[0], "oversize", why)
        return True


def first_frame_index(stream_id: str, spool: Spool, streamer: IngestStreamer | None, timeout: float = 10.0) -> int:
    """Where an edge starts numbering: past every index its spool ever held and every index the cloud holds.

    The spool alone is not enough: an edge restarted without it (new box, wiped cache, another --spool), or
    a second edge on the stream, would number from 0 again. When the cloud cannot be asked (down, old
    server, bad token) the spool's number is used; a collision is then answered CONFLICT, the frame is
    counted as refused, and the pipeline numbers the following frames past the cloud's."""
    first = spool.next_index(stream_id)
    if streamer is None:
        return first
    try:
        cloud = streamer.stream_position(stream_id, timeout)
    except grpc.RpcError as exc:
        code = exc.code() if hasattr(exc, "code") else None
        log.warning("cannot ask %s where stream %s continues (%s); numbering from %d, the spool's", streamer.target,
                    stream_id, code.name if code else exc, first)
        return first
    if cloud > first:
        log.info("the cloud holds stream %s up to frame %d: numbering from %d", stream_id, cloud - 1, cloud)
    return max(first, cloud)
