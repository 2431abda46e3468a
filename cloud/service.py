"""The RoiStream gRPC servicer (proto/service.proto), written against the `Storage` protocol.

Requests arrive as raw bytes and are parsed here rather than by gRPC, so a malformed or oversized
message gets INVALID_ARGUMENT with a message saying what is wrong instead of a generic INTERNAL.
"""

from __future__ import annotations

import functools
import inspect
import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, replace

import grpc
from google.protobuf.message import DecodeError, Message

from codec.bitstream import quantize_quality
from codec.errors import BitstreamError
from codec.signing import TrustedKeys
from proto import bitstream_pb2, service_pb2

from .auth import INGEST, QUERY, Access, Scope
from .errors import ServiceError
from .feed import FrameFeed
from .metrics import Metrics
from .regions import RegionBuilder
from .selector import frame_range, parse_query, time_range
from .storage import PutStatus, Storage
from .validation import validate_frame

log = logging.getLogger(__name__)

SERVICE_NAME = "roistream.v1.RoiStream"
DEFAULT_LIST_LIMIT = 1000
MAX_LIST_LIMIT = 10000
POLL_S = 0.5  # how often a waiting Subscribe / ingest reader checks that its client is still there

INGEST_WINDOW = 32  # frames of one Ingest call read but not yet acknowledged
DEFAULT_IDLE_TIMEOUT_S = 60.0

Ack = service_pb2.IngestAck


@dataclass
class _Pending:
    """A frame read from an Ingest call, waiting for storage (stored=None: rejected, nothing to wait for)."""

    ack: service_pb2.IngestAck
    frame: bitstream_pb2.EncodedFrame
    stored: Future | None
    received: float


def _aborts_on_service_error(method):
    """Turn a ServiceError raised in a handler (plain or streaming) into context.abort(code, message)."""
    if inspect.isgeneratorfunction(method):
        @functools.wraps(method)
        def streaming(self, request, context):
            try:
                yield from method(self, request, context)
            except ServiceError as exc:
                context.abort(exc.code, exc.message)
        return streaming

    @functools.wraps(method)
    def unary(self, request, context):
        try:
            return method(self, request, context)
        except ServiceError as exc:
            context.abort(exc.code, exc.message)
    return unary


def _is_tls(context: grpc.ServicerContext) -> bool:
    return context.auth_context().get("transport_security_type") == [b"ssl"]


class _Activity:
    """When an Ingest call last did something (a message read, an ack sent), and whether a message is in hand."""

    def __init__(self) -> None:
        self.last = time.monotonic()
        self.busy = False

    def touch(self, busy: bool) -> None:
        self.last, self.busy = time.monotonic(), busy

    def idle_for(self) -> float:
        return 0.0 if self.busy else time.monotonic() - self.last


class RoiStreamService:
    """access: which streams each caller's token covers (Access(None): every stream); idle_timeout_s: an Ingest
    call that neither sends a message nor waits for an ack that long is ended with DEADLINE_EXCEEDED, so idle
    calls do not hold worker threads (None: never)."""

    def __init__(self, storage: Storage, regions: RegionBuilder, feed: FrameFeed, metrics: Metrics,
                 max_message_bytes: int, trusted: TrustedKeys | None = None, access: Access | None = None,
                 idle_timeout_s: float | None = DEFAULT_IDLE_TIMEOUT_S):
        self.storage = storage
        self.access = access or Access(None)
        self.idle_timeout_s = idle_timeout_s
        self.trusted = trusted
        self.regions = regions
        self.feed = feed
        self.metrics = metrics
        self.max_message_bytes = max_message_bytes

    def handler(self) -> grpc.GenericRpcHandler:
        """The service's method handlers; request_deserializer=None hands the handlers raw bytes."""
        def out(cls):
            return cls.SerializeToString
        return grpc.method_handlers_generic_handler(SERVICE_NAME, {
            "Ingest": grpc.stream_stream_rpc_method_handler(self.Ingest, response_serializer=out(Ack)),
            "StreamPosition": grpc.unary_unary_rpc_method_handler(
                self.StreamPosition, response_serializer=out(service_pb2.StreamPositionResponse)),
            "ListStreams": grpc.unary_unary_rpc_method_handler(
                self.ListStreams, response_serializer=out(service_pb2.ListStreamsResponse)),
            "ListFrames": grpc.unary_unary_rpc_method_handler(
                self.ListFrames, response_serializer=out(service_pb2.ListFramesResponse)),
            "GetRegions": grpc.unary_stream_rpc_method_handler(
                self.GetRegions, response_serializer=out(service_pb2.Region)),
            "Subscribe": grpc.unary_stream_rpc_method_handler(
                self.Subscribe, response_serializer=out(service_pb2.Region)),
        })

    def _parse(self, cls: type[Message], raw: bytes) -> Message:
        if len(raw) > self.max_message_bytes:
            raise ServiceError(grpc.StatusCode.INVALID_ARGUMENT, f"{cls.__name__} of {len(raw)} bytes is over the "
                                                                 f"server's limit of {self.max_message_bytes} bytes")
        msg = cls()
        try:
            msg.ParseFromString(raw)
        except (DecodeError, ValueError, RuntimeError) as exc:
            raise ServiceError(grpc.StatusCode.INVALID_ARGUMENT, f"malformed {cls.__name__}: {exc}") from None
        return msg

    def _readable(self, context: grpc.ServicerContext) -> Scope:
        return self.access.scope(context, QUERY)

    @staticmethod
    def _in_scope(scope: Scope, stream_id: str, verb: str) -> None:
        """Refuse a stream outside the token's scope (before looking it up, so nothing about it is revealed)."""
        if not scope.allows(stream_id):
            raise ServiceError(grpc.StatusCode.PERMISSION_DENIED,
                               f"this token may not {verb} stream {stream_id!r} (it covers: {scope})")

    def _known_stream(self, stream_id: str) -> None:
        if not self.storage.has_stream(stream_id):
            raise ServiceError(grpc.StatusCode.NOT_FOUND, f"no stream {stream_id!r} is stored")

    # ---- ingest ----
    @_aborts_on_service_error
    def Ingest(self, requests, context: grpc.ServicerContext):
        """One ack per frame, in order, each sent after its frame is durable.

        A reader thread parses, validates and hands frames to storage as they arrive, so up to
        INGEST_WINDOW frames of one stream share storage commits; when that many await their ack it stops
        reading, and HTTP/2 flow control pushes back on an edge that sends faster than storage keeps up.
        """
        self.metrics.active_streams.inc()
        counts = {Ack.Status.Name(v).lower(): 0 for v in Ack.Status.values()}
        pending: queue.Queue = queue.Queue(maxsize=INGEST_WINDOW)
        activity = _Activity()
        threading.Thread(target=self._read_frames, name="ingest-reader", daemon=True,
                         args=(requests, pending, context, self.access.scope(context, INGEST), activity)).start()
        try:
            while True:
                try:
                    item = pending.get(timeout=POLL_S)
                except queue.Empty:
                    if not context.is_active():
                        return  # cancelled, or the server stopped: the reader may never queue its end marker
                    if self.idle_timeout_s is not None and activity.idle_for() > self.idle_timeout_s:
                        self.metrics.idle_calls_ended.inc()
                        raise ServiceError(grpc.StatusCode.DEADLINE_EXCEEDED,
                                           f"Ingest call idle for {self.idle_timeout_s:g} s (no frame received): "
                                           "the server ended it to free its worker; reconnect when there are "
                                           "frames to send") from None
                    continue
                if item is None:
                    return
                if isinstance(item, ServiceError):
                    raise item
                ack = self._complete(item)
                status = Ack.Status.Name(ack.status).lower()
                counts[status] += 1
                self.metrics.frames.labels(status).inc()
                self.metrics.store_seconds.observe(time.perf_counter() - item.received)
                activity.touch(busy=False)
                yield ack
        finally:
            self.metrics.active_streams.dec()
            log.info("ingest stream ended", extra={"fields": {"peer": context.peer(), **counts}})

    def _read_frames(self, requests, pending: queue.Queue, context: grpc.ServicerContext, scope: Scope,
                     activity: _Activity) -> None:
        """Reader thread of one Ingest call: queue a _Pending (or the ServiceError ending the call) per message;
        a frame of a stream outside the token's scope ends the call with PERMISSION_DENIED."""
        def put(item) -> bool:
            while context.is_active():
                try:
                    pending.put(item, timeout=POLL_S)
                    return True
                except queue.Full:
                    continue
            return False

        try:
            for raw in requests:
                activity.touch(busy=True)
                try:
                    frame = self._parse(service_pb2.IngestRequest, raw).frame
                    self._in_scope(scope, frame.header.stream_id, "write")
                    item = self._accept(frame)
                except ServiceError as exc:
                    put(exc)
                    return
                if not put(item):
                    return
                activity.touch(busy=False)
        except grpc.RpcError:
            pass  # the client went away; the handler ends with the call
        except Exception:  # noqa: BLE001 - a bug must end the call visibly, not look like a clean end of stream
            log.exception("ingest reader failed")
            put(ServiceError(grpc.StatusCode.INTERNAL, "internal error while reading frames; see the server log"))
        finally:
            put(None)

    def _accept(self, frame: bitstream_pb2.EncodedFrame) -> "_Pending":
        """Validate a frame and hand it to storage (or decide its REJECTED ack)."""
        received = time.perf_counter()
        h = frame.header
        ack = Ack(stream_id=h.stream_id, frame_index=h.frame_index)
        try:
            validate_frame(frame, trusted=self.trusted)
        except BitstreamError as exc:
            ack.status, ack.error = Ack.REJECTED, str(exc)
            log.warning("frame rejected", extra={"fields": {"stream_id": h.stream_id, "frame_index": h.frame_index,
                                                            "error": str(exc)}})
            return _Pending(ack, frame, None, received)
        try:
            return _Pending(ack, frame, self.storage.submit_frame(frame), received)
        except RuntimeError as exc:  # storage closed: the server is shutting down
            raise ServiceError(grpc.StatusCode.UNAVAILABLE, f"frame {h.stream_id}/{h.frame_index} was not stored: "
                                                            f"{exc}") from None

    def _complete(self, item: "_Pending") -> service_pb2.IngestAck:
        """Wait until the frame is durable; its ack."""
        ack, h = item.ack, item.frame.header
        if item.stored is None:
            return ack
        try:
            result = item.stored.result()
        except Exception as exc:  # noqa: BLE001 - storage failure: the edge must resend from its first unacked frame
            raise ServiceError(grpc.StatusCode.UNAVAILABLE, f"frame {h.stream_id}/{h.frame_index} was not stored: "
                                                            f"{exc}") from None
        if result.status is PutStatus.DUPLICATE:
            ack.status = Ack.DUPLICATE
            return ack
        if result.status is PutStatus.CONFLICT:
            ack.status, ack.next_frame_index = Ack.CONFLICT, result.next_frame_index
            ack.error = (f"another frame is stored at {h.stream_id}/{h.frame_index}; this one was not stored "
                         f"(the stream continues at frame {result.next_frame_index})")
            log.warning("frame conflicts with a stored frame", extra={"fields": {
                "stream_id": h.stream_id, "frame_index": h.frame_index, "next_frame_index": result.next_frame_index}})
            return ack
        ack.status, ack.stored_bytes = Ack.STORED, result.stored_bytes
        self.metrics.groups.inc(len(item.frame.groups))
        self.metrics.bytes.inc(result.stored_bytes)
        self.feed.publish(h.stream_id, h.frame_index)
        return ack

    @_aborts_on_service_error
    def StreamPosition(self, raw: bytes, context: grpc.ServicerContext):
        req = self._parse(service_pb2.StreamPositionRequest, raw)
        if not req.stream_id:
            raise ServiceError(grpc.StatusCode.INVALID_ARGUMENT, "StreamPosition needs a stream_id")
        self._in_scope(self.access.scope(context, INGEST), req.stream_id, "write")
        pos = self.storage.stream_position(req.stream_id)
        return service_pb2.StreamPositionResponse(stream_id=pos.stream_id, next_frame_index=pos.next_frame_index,
                                                  frames=pos.frames)

    # ---- listings ----
    @_aborts_on_service_error
    def ListStreams(self, raw: bytes, context: grpc.ServicerContext):
        self._parse(service_pb2.ListStreamsRequest, raw)
        scope = self._readable(context)
        return service_pb2.ListStreamsResponse(streams=[
            service_pb2.StreamInfo(stream_id=s.stream_id, frames=s.frames, first_frame=s.first_frame,
                                   last_frame=s.last_frame, first_timestamp_us=s.first_timestamp_us,
                                   last_timestamp_us=s.last_timestamp_us, bytes=s.bytes)
            for s in self.storage.list_streams() if scope.allows(s.stream_id)])

    @_aborts_on_service_error
    def ListFrames(self, raw: bytes, context: grpc.ServicerContext):
        req = self._parse(service_pb2.ListFramesRequest, raw)
        if not req.stream_id:
            raise ServiceError(grpc.StatusCode.INVALID_ARGUMENT, "ListFrames needs a stream_id")
        self._in_scope(self._readable(context), req.stream_id, "read")
        self._known_stream(req.stream_id)
        frames = self.storage.list_frames(req.stream_id, frame_range(req.frames, req.HasField("frames")),
                                          time_range(req.time, req.HasField("time")),
                                          min(req.limit or DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT))
        resp = service_pb2.ListFramesResponse()
        for f in frames:
            info = resp.frames.add(stream_id=f.stream_id, frame_index=f.frame_index, timestamp_us=f.timestamp_us,
                                   width=f.width, height=f.height)
            for g in f.groups:
                gi = info.groups.add(group_id=g.group_id, label=g.label, score=g.score,
                                     quality=quantize_quality(g.quality),
                                     bytes=g.record_bytes, encrypted=g.encrypted, key_id=g.key_id,
                                     track_id=g.track_id)
                gi.bbox.x, gi.bbox.y, gi.bbox.width, gi.bbox.height = g.bbox
        return resp

    # ---- regions ----
    def _region_request(self, raw: bytes, context: grpc.ServicerContext):
        """The parsed query, confined to the token's scope: a named stream outside it is refused, a query of
        every stream selects only the streams it covers."""
        request = parse_query(self._parse(service_pb2.RegionQuery, raw))
        if request.keys and not _is_tls(context):
            raise ServiceError(grpc.StatusCode.FAILED_PRECONDITION,
                               "the query carries keys over a connection without TLS; the server refuses them "
                               "(use TLS, or decrypt locally with CloudClient)")
        scope = self._readable(context)
        wanted = request.selection.stream_id
        if wanted:
            self._in_scope(scope, wanted, "read")
        elif not scope.everything:
            streams = frozenset(s.stream_id for s in self.storage.list_streams() if scope.allows(s.stream_id))
            request = replace(request, selection=replace(request.selection, streams=streams))
        return request, scope

    @_aborts_on_service_error
    def GetRegions(self, raw: bytes, context: grpc.ServicerContext):
        request, _ = self._region_request(raw, context)
        if request.selection.stream_id:
            self._known_stream(request.selection.stream_id)
        yield from self.regions.regions(request)

    @_aborts_on_service_error
    def Subscribe(self, raw: bytes, context: grpc.ServicerContext):
        """Regions of frames stored after the call started; ends when the client cancels or the server stops."""
        request, scope = self._region_request(raw, context)
        wanted = request.selection.stream_id
        self.metrics.subscribers.inc()
        sent = 0
        try:
            cursor = self.feed.cursor()
            while context.is_active() and not self.feed.closed:
                cursor, events = self.feed.wait(cursor, POLL_S)
                for stream_id, frame_index in events:
                    if (wanted and stream_id != wanted) or not scope.allows(stream_id):
                        continue
                    for region in self.regions.regions(request, request.selection.for_frame(stream_id, frame_index)):
                        yield region
                        sent += 1
                        if request.limit and sent >= request.limit:
                            return
        finally:
            self.metrics.subscribers.dec()
