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
from dataclasses import dataclass

import grpc
from google.protobuf.message import DecodeError, Message

from codec.bitstream import quantize_quality
from codec.errors import BitstreamError
from codec.signing import TrustedKeys
from proto import bitstream_pb2, service_pb2

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


class RoiStreamService:
    def __init__(self, storage: Storage, regions: RegionBuilder, feed: FrameFeed, metrics: Metrics,
                 max_message_bytes: int, trusted: TrustedKeys | None = None):
        self.storage = storage
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
        threading.Thread(target=self._read_frames, args=(requests, pending, context), name="ingest-reader",
                         daemon=True).start()
        try:
            while True:
                try:
                    item = pending.get(timeout=POLL_S)
                except queue.Empty:
                    if context.is_active():
                        continue
                    return  # cancelled, or the server stopped: the reader may never queue its end marker
                if item is None:
                    return
                if isinstance(item, ServiceError):
                    raise item
                ack = self._complete(item)
                status = Ack.Status.Name(ack.status).lower()
                counts[status] += 1
                self.metrics.frames.labels(status).inc()
                self.metrics.store_seconds.observe(time.perf_counter() - item.received)
                yield ack
        finally:
            self.metrics.active_streams.dec()
            log.info("ingest stream ended", extra={"fields": {"peer": context.peer(), **counts}})

    def _read_frames(self, requests, pending: queue.Queue, context: grpc.ServicerContext) -> None:
        """Reader thread of one Ingest call: queue a _Pending (or the ServiceError ending the call) per message."""
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
                try:
                    item = self._accept(self._parse(service_pb2.IngestRequest, raw).frame)
                except ServiceError as exc:
                    put(exc)
                    return
                if not put(item):
                    return
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
        pos = self.storage.stream_position(req.stream_id)
        return service_pb2.StreamPositionResponse(stream_id=pos.stream_id, next_frame_index=pos.next_frame_index,
                                                  frames=pos.frames)

    # ---- listings ----
    @_aborts_on_service_error
    def ListStreams(self, raw: bytes, context: grpc.ServicerContext):
        self._parse(service_pb2.ListStreamsRequest, raw)
        return service_pb2.ListStreamsResponse(streams=[
            service_pb2.StreamInfo(stream_id=s.stream_id, frames=s.frames, first_frame=s.first_frame,
                                   last_frame=s.last_frame, first_timestamp_us=s.first_timestamp_us,
                                   last_timestamp_us=s.last_timestamp_us, bytes=s.bytes)
            for s in self.storage.list_streams()])

    @_aborts_on_service_error
    def ListFrames(self, raw: bytes, context: grpc.ServicerContext):
        req = self._parse(service_pb2.ListFramesRequest, raw)
        if not req.stream_id:
            raise ServiceError(grpc.StatusCode.INVALID_ARGUMENT, "ListFrames needs a stream_id")
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
        request = parse_query(self._parse(service_pb2.RegionQuery, raw))
        if request.keys and not _is_tls(context):
            raise ServiceError(grpc.StatusCode.FAILED_PRECONDITION,
                               "the query carries keys over a connection without TLS; the server refuses them "
                               "(use TLS, or decrypt locally with CloudClient)")
        return request

    @_aborts_on_service_error
    def GetRegions(self, raw: bytes, context: grpc.ServicerContext):
        request = self._region_request(raw, context)
        if request.selection.stream_id:
            self._known_stream(request.selection.stream_id)
        yield from self.regions.regions(request)

    @_aborts_on_service_error
    def Subscribe(self, raw: bytes, context: grpc.ServicerContext):
        """Regions of frames stored after the call started; ends when the client cancels or the server stops."""
        request = self._region_request(raw, context)
        wanted = request.selection.stream_id
        self.metrics.subscribers.inc()
        sent = 0
        try:
            cursor = self.feed.cursor()
            while context.is_active() and not self.feed.closed:
                cursor, events = self.feed.wait(cursor, POLL_S)
                for stream_id, frame_index in events:
                    if wanted and stream_id != wanted:
                        continue
                    for region in self.regions.regions(request, request.selection.for_frame(stream_id, frame_index)):
                        yield region
                        sent += 1
                        if request.limit and sent >= request.limit:
                            return
        finally:
            self.metrics.subscribers.dec()
