"""`CloudClient`: the one Python client of the cloud service, used by `roistream query`, the web viewer and users.

It also decrypts and decodes ciphertext records locally, so an analytics user can keep keys off the
server entirely (end-to-end encryption): ask for `encrypted="ciphertext"` and pass a Keyring to
`region_pixels`. Querying needs no torch: the codec (and torch with it) is imported only when a record
is decoded here, so an analytics machine that asks the server for PNG or raw pixels installs and starts light.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import numpy as np

from codec.crypto import EncryptionKey, Keyring
from codec.errors import SignatureError
from codec.signing import TrustedKeys
from proto import bitstream_pb2, service_pb2, service_pb2_grpc
from proto.transport import MAX_MESSAGE, Endpoint, IngestCall, ingest_request, stream_position

from .pixels import decode_pixels

if TYPE_CHECKING:
    from codec.api import Codec

Query = service_pb2.RegionQuery
OUTPUTS = {"records": Query.RECORDS, "png": Query.PNG, "raw": Query.RAW_RGB}
ENCRYPTED = {"ciphertext": Query.CIPHERTEXT, "omit": Query.OMIT, "decrypt": Query.DECRYPT}


def region_query(stream_id: str = "", *, labels: Iterable[str] = (), group_ids: Iterable[int] = (),
                 frames: tuple[int, int] | None = None, time: tuple[int, int] | None = None,
                 intersects: tuple[int, int, int, int] | None = None, output: str = "png",
                 include_background: bool = False, encrypted: str = "ciphertext",
                 keys: Sequence[EncryptionKey] = (), limit: int = 0, composite: bool = False) -> Query:
    """Build a RegionQuery from Python values. frames/time are inclusive (first, last) / (start_us, end_us);
    output is "records", "png" or "raw"; encrypted is "ciphertext", "omit" or "decrypt" (with `keys`)."""
    q = Query(stream_id=stream_id, labels=list(labels), group_ids=list(group_ids), output=OUTPUTS[output],
              include_background=include_background, encrypted=ENCRYPTED[encrypted], limit=limit,
              composite=composite)
    if frames is not None:
        q.frames.first, q.frames.last = frames
    if time is not None:
        q.time.start_us, q.time.end_us = time
    if intersects is not None:
        q.intersects.x, q.intersects.y, q.intersects.width, q.intersects.height = intersects
    for k in keys:
        q.keys.add(key_id=k.key_id, key=k.secret)
    return q


class CloudClient:
    """Connection to a roistream cloud server.

    TLS: pass `tls_ca` (PEM of the CA that signed the server certificate, as bytes or a path) or
    `tls=True` for the system roots; add `tls_cert` + `tls_key` for mutual TLS. `token` is sent as
    `authorization: Bearer <token>` on every call.
    """

    def __init__(self, target: str, *, token: str | None = None, tls: bool = False,
                 tls_ca: bytes | Path | str | None = None, tls_cert: bytes | Path | str | None = None,
                 tls_key: bytes | Path | str | None = None, server_name: str | None = None,
                 max_message_bytes: int = MAX_MESSAGE, weights: Path | None = None):
        self.secure = tls or tls_ca is not None or tls_cert is not None
        self.endpoint = Endpoint.of(target, tls=self.secure, ca_cert=tls_ca, client_cert=tls_cert, client_key=tls_key,
                                    server_name=server_name, token=token, max_message_bytes=max_message_bytes)
        self._channel = self.endpoint.channel()
        self._stub = service_pb2_grpc.RoiStreamStub(self._channel)
        self._metadata = self.endpoint.metadata
        self._weights = weights
        self._codec: Codec | None = None

    # ---- ingest ----
    def ingest(self, frames: Iterable[bitstream_pb2.EncodedFrame], *, window: int = 8,
               timeout: float | None = None) -> Iterator[service_pb2.IngestAck]:
        """Send frames on one Ingest stream; yields one ack per frame, in order, each once its frame is durable.

        At most `window` frames are sent and not yet acknowledged: the frames iterable is pulled only as acks
        come back. A frame is safely stored only once its STORED (or DUPLICATE) ack arrived; after an error,
        resend from the first unacknowledged frame (duplicates are recognised and not stored twice). A
        CONFLICT ack means a different frame holds that index: this one was not stored.
        """
        call = IngestCall(self._channel, lambda f: ingest_request(f.SerializeToString()), metadata=self._metadata,
                          window=window, timeout=timeout)
        for _, ack in call.send(frames):
            yield ack

    def stream_position(self, stream_id: str, timeout: float | None = None) -> service_pb2.StreamPositionResponse:
        """One past the stream's highest stored frame index (and its frame count)."""
        return stream_position(self._channel, stream_id, metadata=self._metadata, timeout=timeout)

    # ---- queries ----
    def list_streams(self, timeout: float | None = None) -> list[service_pb2.StreamInfo]:
        return list(self._stub.ListStreams(service_pb2.ListStreamsRequest(), metadata=self._metadata,
                                           timeout=timeout).streams)

    def list_frames(self, stream_id: str, *, frames: tuple[int, int] | None = None,
                    time: tuple[int, int] | None = None, limit: int = 0,
                    timeout: float | None = None) -> list[service_pb2.FrameInfo]:
        req = service_pb2.ListFramesRequest(stream_id=stream_id, limit=limit)
        if frames is not None:
            req.frames.first, req.frames.last = frames
        if time is not None:
            req.time.start_us, req.time.end_us = time
        return list(self._stub.ListFrames(req, metadata=self._metadata, timeout=timeout).frames)

    def _query(self, query: Query | None, kwargs: dict) -> Query:
        query = query if query is not None else region_query(**kwargs)
        if query.keys and not self.secure:
            raise ValueError("refusing to send keys over a connection without TLS; decrypt locally instead "
                             "(encrypted='ciphertext' and region_pixels(region, keys))")
        return query

    def get_regions(self, query: Query | None = None, *, timeout: float | None = None,
                    **kwargs) -> Iterator[service_pb2.Region]:
        """Regions matching `query` (or a query built by `region_query(**kwargs)`), oldest first."""
        return self._stub.GetRegions(self._query(query, kwargs), metadata=self._metadata, timeout=timeout)

    def subscribe(self, query: Query | None = None, **kwargs) -> grpc.Call:
        """Live regions of frames stored from now on; iterate it, and `.cancel()` it to stop."""
        return self._stub.Subscribe(self._query(query, kwargs), metadata=self._metadata)

    # ---- local decoding ----
    @property
    def codec(self) -> Codec:
        """The local decoder, loaded on first use (the only import of torch on the query side)."""
        if self._codec is None:
            from codec.api import Codec

            self._codec = Codec.load(self._weights)
        return self._codec

    def region_pixels(self, region: service_pb2.Region, keys: Keyring | None = None,
                      trusted: TrustedKeys | None = None) -> tuple[np.ndarray, np.ndarray]:
        """RGB uint8 [h, w, 3] and bool mask [h, w] of a region's bbox, whichever form it came in: decoded by
        the server (PNG / raw), or as a record (decrypted with `keys` if encrypted) decoded here. With
        `trusted` edge keys only a record they signed is decoded (ask for output="records")."""
        if region.image:
            if trusted:
                raise SignatureError("the server decoded this region, so its edge signature cannot be checked "
                                     "here; query with output='records'")
            return decode_pixels(region)
        if not region.record.payload:
            raise ValueError("the region carries neither pixels nor a record payload")
        group = self.codec.decode_group(region.header, region.record, keys, trusted)
        return group.pixels, group.mask

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "CloudClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
