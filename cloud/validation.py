"""Checks a frame must pass before it is stored: the codec's validator plus the cloud's own limits.

`codec.validate.check_frame` decides what a decoder can decode (so nothing undecodable is stored);
this module adds only what the cloud needs of its own: a stream id, printable texts of bounded
length, integers its index can hold. The server accepts streams of any codec weights (it only
stores them), so the weights id is not checked here; it is checked when a decode is requested
(cloud/regions.py).
"""

from __future__ import annotations

from codec.errors import CorruptStreamError
from codec.signing import TrustedKeys
from codec.validate import DEFAULT_LIMITS, DecodeLimits, check_frame
from proto import bitstream_pb2

from .selector import MAX_INT64

MAX_STREAM_ID = 256
MAX_LABEL = 256


def _check_text(what: str, text: str, limit: int) -> None:
    if len(text) > limit:
        raise CorruptStreamError(f"{what} is {len(text)} characters long (at most {limit})")
    if not text.isprintable():
        raise CorruptStreamError(f"{what} {text!r} holds control characters")


def validate_frame(frame: bitstream_pb2.EncodedFrame, limits: DecodeLimits = DEFAULT_LIMITS,
                   trusted: TrustedKeys | None = None) -> None:
    """Raise a BitstreamError saying what is wrong with a frame; return if it may be stored.

    With `trusted` edge keys (`roistream cloud serve --trust-key`), every record must be signed by
    one of them (codec.signing): a writer without an edge's private key cannot store frames.
    """
    if not frame.HasField("header"):
        raise CorruptStreamError("the request carries no frame header")
    h = frame.header
    if not h.stream_id:
        raise CorruptStreamError("frame header has no stream_id")
    _check_text("stream_id", h.stream_id, MAX_STREAM_ID)
    if h.frame_index > MAX_INT64:
        raise CorruptStreamError(f"frame_index {h.frame_index} is above 2^63-1")
    if not frame.groups:
        raise CorruptStreamError("frame has no groups")
    check_frame(frame, limits=limits, complete=True)
    for g in frame.groups:
        what = f"group {g.group_id}"
        _check_text(f"{what} label", g.label, MAX_LABEL)
        if g.track_id > MAX_INT64:
            raise CorruptStreamError(f"{what}: track_id {g.track_id} is above 2^63-1")
        if g.HasField("encryption"):
            _check_text(f"{what} key_id", g.encryption.key_id, MAX_LABEL)
        if trusted:
            trusted.verify(h, g)
