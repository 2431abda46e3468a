"""Checks a frame must pass before it is stored, so everything in storage is decodable metadata-wise.

The server accepts streams of any codec weights (it only stores them), so the weights id is not
checked here; it is checked when a decode is requested (cloud/regions.py).
"""

from __future__ import annotations

from codec.bitstream import QUALITY_STEPS, check_crc, check_header, record_block_mask
from codec.crypto import ALGORITHM, NONCE_BYTES
from codec.errors import CorruptStreamError
from proto import bitstream_pb2

from .selector import MAX_INT64

MAX_STREAM_ID = 256
MAX_LABEL = 256


def _check_text(what: str, text: str, limit: int) -> None:
    if len(text) > limit:
        raise CorruptStreamError(f"{what} is {len(text)} characters long (at most {limit})")
    if not text.isprintable():
        raise CorruptStreamError(f"{what} {text!r} holds control characters")


def validate_frame(frame: bitstream_pb2.EncodedFrame) -> None:
    """Raise CorruptStreamError saying what is wrong with a frame; return if it may be stored."""
    if not frame.HasField("header"):
        raise CorruptStreamError("the request carries no frame header")
    h = frame.header
    check_header(h)
    if not h.stream_id:
        raise CorruptStreamError("frame header has no stream_id")
    _check_text("stream_id", h.stream_id, MAX_STREAM_ID)
    if h.frame_index > MAX_INT64:
        raise CorruptStreamError(f"frame_index {h.frame_index} is above 2^63-1")
    if not frame.groups:
        raise CorruptStreamError("frame has no groups")
    present = {g.group_id for g in frame.groups}
    if h.group_ids and set(h.group_ids) != present:
        raise CorruptStreamError(f"the header lists groups {sorted(h.group_ids)} but the frame holds "
                                 f"{sorted(present)} (truncated frame?)")
    seen: set[int] = set()
    for g in frame.groups:
        what = f"group {g.group_id}"
        if g.group_id in seen:
            raise CorruptStreamError(f"{what} appears twice")
        seen.add(g.group_id)
        check_crc(h, g)
        _check_text(f"{what} label", g.label, MAX_LABEL)
        if g.quality > QUALITY_STEPS:
            raise CorruptStreamError(f"{what}: quality {g.quality} out of range")
        record_block_mask(h, g)  # runs fill their window and agree with the bbox
        if g.HasField("encryption"):
            enc = g.encryption
            if enc.algorithm != ALGORITHM or len(enc.nonce) != NONCE_BYTES or not enc.key_id:
                raise CorruptStreamError(f"{what}: encryption must be {ALGORITHM} with a key id and a "
                                         f"{NONCE_BYTES}-byte nonce")
            _check_text(f"{what} key_id", enc.key_id, MAX_LABEL)
