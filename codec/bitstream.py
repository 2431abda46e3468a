"""The group bitstream: parsing, validation, integrity (CRC-32) and the bytes that encryption binds.

The schema is `proto/bitstream.proto` (documented in docs/bitstream.md). Everything that can be
wrong with received bytes is reported as a `BitstreamError` subclass, never a crash or garbage.
"""

from __future__ import annotations

import zlib

import numpy as np
from google.protobuf.message import DecodeError

from proto import bitstream_pb2 as pb

from .errors import CorruptStreamError, WeightsMismatchError
from .geometry import block_grid_shape, rle_decode

BITSTREAM_VERSION = 1
MAX_SIDE = 16384  # frames larger than this are refused (bounds memory for hostile headers)

EncodedFrame = pb.EncodedFrame
GroupRecord = pb.GroupRecord
FrameHeader = pb.FrameHeader


def parse_frame(data: bytes) -> pb.EncodedFrame:
    """Bytes -> EncodedFrame, or CorruptStreamError."""
    frame = pb.EncodedFrame()
    try:
        frame.ParseFromString(bytes(data))
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise CorruptStreamError(f"not a roistream frame: {exc}") from None
    if not frame.HasField("header"):
        raise CorruptStreamError("not a roistream frame: no header")
    return frame


def check_header(header: pb.FrameHeader, weights_id: str | None = None) -> None:
    """Refuse unknown versions, impossible sizes and (if given) streams of other weights."""
    if header.format_version != BITSTREAM_VERSION:
        raise CorruptStreamError(f"bitstream version {header.format_version} is not supported "
                                 f"(this decoder reads version {BITSTREAM_VERSION})")
    if not (0 < header.width <= MAX_SIDE and 0 < header.height <= MAX_SIDE):
        raise CorruptStreamError(f"invalid frame size {header.width}x{header.height}")
    if weights_id is not None and header.weights_id != weights_id:
        raise WeightsMismatchError(f"stream was coded with codec weights {header.weights_id!r}; this decoder "
                                   f"has {weights_id!r}: decode it with the weights that made it")


def record_binding(header: pb.FrameHeader, record: pb.GroupRecord) -> bytes:
    """Header + the record's metadata (everything but payload, CRC and nonce), canonically serialized.

    Encryption authenticates these bytes; the CRC covers them too.
    """
    meta = pb.GroupRecord()
    meta.CopyFrom(record)
    meta.ClearField("payload")
    meta.ClearField("crc32")
    meta.encryption.ClearField("nonce")
    return header.SerializeToString(deterministic=True) + b"|" + meta.SerializeToString(deterministic=True)


def record_crc(header: pb.FrameHeader, record: pb.GroupRecord) -> int:
    crc = zlib.crc32(record_binding(header, record))
    crc = zlib.crc32(record.encryption.nonce, crc)
    return zlib.crc32(record.payload, crc)


def check_crc(header: pb.FrameHeader, record: pb.GroupRecord) -> None:
    if record_crc(header, record) != record.crc32:
        raise CorruptStreamError(f"group {record.group_id}: CRC mismatch (the record was damaged in transit or storage)")


def record_block_mask(header: pb.FrameHeader, record: pb.GroupRecord) -> np.ndarray:
    """The group's blocks on the frame's block grid."""
    shape = block_grid_shape(header.height, header.width)
    if len(record.block_runs) > shape[0] * shape[1] + 1:
        raise CorruptStreamError(f"group {record.group_id}: block mask has too many runs")
    try:
        mask = rle_decode(list(record.block_runs), shape)
    except ValueError as exc:
        raise CorruptStreamError(f"group {record.group_id}: {exc}") from None
    if not mask.any():
        raise CorruptStreamError(f"group {record.group_id}: empty block mask")
    return mask
