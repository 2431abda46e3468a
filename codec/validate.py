"""The one stream validator: what a roistream decoder accepts, checked before any work is done.

`Codec.decode` and the cloud's ingest (`cloud/validation.py`, which adds only the cloud's own limits:
stream ids, text lengths, integer ranges of its index) both call it, so whatever the cloud stores
can be decoded and whatever cannot be decoded is refused at the door with a message that says why.

Every check costs time linear in the record's own bytes: no block mask is drawn (`record_blocks`
reads the runs), the header is serialized once per frame, and the work a record may ask of a decoder
is bounded by its payload's length (`DecodeLimits`). What only decoding can find (a payload that
does not decode to exactly its own bytes, non-finite pixels) the decoder reports itself
(`codec.coder`), with the same `BitstreamError` family.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass

from proto import bitstream_pb2 as pb

from . import crypto, scaling, signing
from .bitstream import QUALITY_STEPS, READABLE_VERSIONS, check_crc, header_bytes, record_blocks
from .errors import CorruptStreamError, DecryptionError, LimitError, WeightsMismatchError
from .geometry import RunBox

# Coded blocks per payload byte the shipped weights reach at most (a flat frame at quality 0 and
# 1/8 scale) is about 2; DecodeLimits allows four times that.
_BLOCKS_PER_BYTE = 8


@dataclass(frozen=True)
class DecodeLimits:
    """What one frame may ask of a decoder (memory and work), whatever its bytes claim.

    max_side / max_pixels bound the frame size (the decoder allocates full-resolution images of
    the group boxes); max_groups bounds records per frame. A group may code at most
    `free_blocks + blocks_per_byte * payload bytes` blocks (counted on the grid it is coded at),
    so a record of a few bytes cannot make the decoder synthesize a large frame.
    """

    max_side: int = 8192
    max_pixels: int = 8192 * 4320  # 8K UHD
    max_groups: int = 1024
    free_blocks: int = 16  # one hyper cell: the smallest group's payload is a few bytes
    blocks_per_byte: int = _BLOCKS_PER_BYTE


DEFAULT_LIMITS = DecodeLimits()


def check_header(header: pb.FrameHeader, weights_id: str | None = None,
                 limits: DecodeLimits = DEFAULT_LIMITS) -> None:
    """Refuse unknown versions, impossible or over-limit sizes and (if given) streams of other weights."""
    if header.format_version not in READABLE_VERSIONS:
        raise CorruptStreamError(f"bitstream version {header.format_version} is not supported "
                                 f"(this decoder reads versions {', '.join(map(str, READABLE_VERSIONS))})")
    if not (header.width > 0 and header.height > 0):
        raise CorruptStreamError(f"invalid frame size {header.width}x{header.height}")
    if max(header.width, header.height) > limits.max_side or header.width * header.height > limits.max_pixels:
        raise LimitError(f"frame size {header.width}x{header.height} is over the decoder's limits "
                         f"({limits.max_side} px a side, {limits.max_pixels} pixels)")
    if len(header.group_ids) > limits.max_groups:
        raise LimitError(f"the header lists {len(header.group_ids)} groups (at most {limits.max_groups})")
    if weights_id is not None and header.weights_id != weights_id:
        raise WeightsMismatchError(f"stream was coded with codec weights {header.weights_id!r}; this decoder "
                                   f"has {weights_id!r}: decode it with the weights that made it")


def _check_encryption(record: pb.GroupRecord, encrypted_ids: Collection[int]) -> int:
    """Encryption fields; the payload bytes the entropy decoder will get (ciphertext less its tag)."""
    what = f"group {record.group_id}"
    sealed = record.HasField("encryption")
    if encrypted_ids and sealed != (record.group_id in encrypted_ids):
        raise CorruptStreamError(f"{what} is listed as encrypted in the header but carries no encryption "
                                 "(stripped?)" if not sealed else
                                 f"{what} is encrypted but the header does not list it as encrypted")
    if not sealed:
        return len(record.payload)
    enc = record.encryption
    if enc.algorithm != crypto.ALGORITHM:
        raise DecryptionError(f"{what}: unsupported encryption {enc.algorithm!r}")
    if len(enc.nonce) != crypto.NONCE_BYTES or not enc.key_id:
        raise CorruptStreamError(f"{what}: encryption must be {crypto.ALGORITHM} with a key id and a "
                                 f"{crypto.NONCE_BYTES}-byte nonce")
    return len(record.payload) - crypto.TAG_BYTES


def check_record(header: pb.FrameHeader, record: pb.GroupRecord, limits: DecodeLimits = DEFAULT_LIMITS,
                 header_data: bytes | None = None, encrypted_ids: Collection[int] | None = None) -> RunBox:
    """Everything about one record a decoder can check without decoding; the box and count of its blocks.

    `header_data` (`bitstream.header_bytes`) and `encrypted_ids` (the header's encrypted group ids
    as a set) save recomputing them per record of one frame.
    """
    what = f"group {record.group_id}"
    check_crc(header, record, header_data)
    if record.quality > QUALITY_STEPS:
        raise CorruptStreamError(f"{what}: quality {record.quality} out of range")
    if not (math.isfinite(record.score) and 0.0 <= record.score <= 1.0):
        raise CorruptStreamError(f"{what}: score {record.score} is not a number in [0, 1]")
    if record.scale_log2 > scaling.MAX_SCALE_LOG2:
        raise CorruptStreamError(f"{what}: scale 1/2^{record.scale_log2} out of range")
    if record.HasField("signature") and (len(record.signature.signature) != signing.SIGNATURE_BYTES
                                         or not 0 < len(record.signature.key_id) <= signing.KEY_ID_CHARS):
        raise CorruptStreamError(f"{what}: a signature is {signing.SIGNATURE_BYTES} bytes with a key id of "
                                 f"1..{signing.KEY_ID_CHARS} characters")
    listed = set(header.encrypted_group_ids) if encrypted_ids is None else encrypted_ids
    coded = _check_encryption(record, listed)
    if coded <= 0 or coded % 4:
        raise CorruptStreamError(f"{what}: a coded payload of {coded} bytes is impossible "
                                 "(the range coder writes whole 32-bit words)")
    _, blocks = record_blocks(header, record)
    factor = 1 << record.scale_log2
    coarse_area = ((blocks.r1 - 1) // factor - blocks.r0 // factor + 1) * ((blocks.c1 - 1) // factor
                                                                          - blocks.c0 // factor + 1)
    work = min(blocks.count, coarse_area)  # an upper bound of the blocks coded on the 1/factor grid
    if work > limits.free_blocks + limits.blocks_per_byte * coded:
        raise LimitError(f"{what}: {work} coded blocks from a {coded}-byte payload; a decoder takes at most "
                         f"{limits.free_blocks} + {limits.blocks_per_byte} per byte")
    return blocks


def check_frame_groups(frame: pb.EncodedFrame, limits: DecodeLimits = DEFAULT_LIMITS, *,
                       complete: bool = False) -> None:
    """The frame's group lists: no duplicate, every record listed by the header, encrypted ids among
    the listed ones, at most `limits.max_groups`; with `complete`, every listed group present."""
    if len(frame.groups) > limits.max_groups:
        raise LimitError(f"the frame holds {len(frame.groups)} groups (at most {limits.max_groups})")
    h = frame.header
    ids = [r.group_id for r in frame.groups]
    present, listed = set(ids), set(h.group_ids)
    if len(present) != len(ids):
        raise CorruptStreamError("a group appears twice in the frame")
    if len(listed) != len(h.group_ids):
        raise CorruptStreamError("the header lists a group twice")
    if not present <= listed:
        raise CorruptStreamError(f"the frame holds groups {sorted(present - listed)} its header does not list")
    if not set(h.encrypted_group_ids) <= listed:
        raise CorruptStreamError("the header lists encrypted groups that are not among its groups")
    if complete and present != listed:
        raise CorruptStreamError(f"the header lists groups {sorted(listed)} but the frame holds "
                                 f"{sorted(present)} (truncated frame?)")


def check_frame(frame: pb.EncodedFrame, weights_id: str | None = None, limits: DecodeLimits = DEFAULT_LIMITS, *,
                complete: bool = False) -> None:
    """A whole frame: header, group lists and every record (the cloud's ingest check)."""
    if not frame.HasField("header"):
        raise CorruptStreamError("not a roistream frame: no header")
    check_header(frame.header, weights_id, limits)
    check_frame_groups(frame, limits, complete=complete)
    head, encrypted = header_bytes(frame.header), set(frame.header.encrypted_group_ids)
    for record in frame.groups:
        check_record(frame.header, record, limits, head, encrypted)
