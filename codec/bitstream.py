"""The group bitstream: parsing, validation, integrity (CRC-32) and the bytes that encryption binds.

The schema is `proto/bitstream.proto` (documented in docs/bitstream.md). Everything that can be
wrong with received bytes is reported as a `BitstreamError` subclass, never a crash or garbage.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
from google.protobuf.message import DecodeError

from proto import bitstream_pb2 as pb

from .errors import CorruptStreamError, WeightsMismatchError
from .geometry import BBox, bbox_blocks, block_bbox, block_grid_shape, rle_decode, rle_encode

BITSTREAM_VERSION = 2  # what the encoder writes
READABLE_VERSIONS = (1, 2)  # 1: block_runs over the whole grid; 2: over the blocks of the group's bbox
COMPOSITE_BACKGROUND_LAYERS = 8  # background records a composite stacks to fill the holes of newer ones
MAX_SIDE = 16384  # frames larger than this are refused (bounds memory for hostile headers)
# The Python API speaks of quality as a float q in [0, 1]; a group record carries the integer step
# round(q * QUALITY_STEPS). These two functions are the only place that converts between them.
QUALITY_STEPS = 255

EncodedFrame = pb.EncodedFrame
GroupRecord = pb.GroupRecord
FrameHeader = pb.FrameHeader


def quantize_quality(q: float) -> int:
    """The integer quality step a group record carries for q in [0, 1] (ValueError otherwise)."""
    if not 0.0 <= q <= 1.0 or math.isnan(q):
        raise ValueError(f"quality must be in [0, 1], got {q}")
    return int(round(q * QUALITY_STEPS))


def dequantize_quality(step: int) -> float:
    """q in [0, 1] of a record's quality step (the decoder refuses steps beyond QUALITY_STEPS)."""
    return step / QUALITY_STEPS


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
    if header.format_version not in READABLE_VERSIONS:
        raise CorruptStreamError(f"bitstream version {header.format_version} is not supported "
                                 f"(this decoder reads versions {', '.join(map(str, READABLE_VERSIONS))})")
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


def set_block_mask(header: pb.FrameHeader, record: pb.GroupRecord, block_mask: np.ndarray) -> None:
    """Write a group's blocks into its record (bbox, and runs over the blocks the bbox spans)."""
    box = block_bbox(block_mask, header.width, header.height)
    record.bbox.x, record.bbox.y, record.bbox.width, record.bbox.height = box.x, box.y, box.width, box.height
    record.block_runs[:] = rle_encode(block_mask[bbox_blocks(box, header.width, header.height)])


def record_block_mask(header: pb.FrameHeader, record: pb.GroupRecord) -> np.ndarray:
    """The group's blocks on the frame's block grid, checked against the record's bbox.

    Version 2 codes the runs over the blocks the bbox spans (`geometry.bbox_blocks`), version 1 over
    the whole grid; either way the bbox must be exactly the box of the blocks.
    """
    what = f"group {record.group_id}"
    grid = block_grid_shape(header.height, header.width)
    b = record.bbox
    box = BBox(b.x, b.y, b.width, b.height)
    if header.format_version == 1:
        window = (slice(0, grid[0]), slice(0, grid[1]))
    elif b.width and b.height and b.x + b.width <= header.width and b.y + b.height <= header.height:
        window = bbox_blocks(box, header.width, header.height)
    else:
        raise CorruptStreamError(f"{what}: bbox {b.x},{b.y} {b.width}x{b.height} is empty or leaves the frame")
    shape = (window[0].stop - window[0].start, window[1].stop - window[1].start)
    if len(record.block_runs) > shape[0] * shape[1] + 1:
        raise CorruptStreamError(f"{what}: block mask has too many runs")
    try:
        local = rle_decode(list(record.block_runs), shape)
    except ValueError as exc:
        raise CorruptStreamError(f"{what}: {exc}") from None
    if not local.any():
        raise CorruptStreamError(f"{what}: empty block mask")
    mask = np.zeros(grid, bool)
    mask[window] = local
    if block_bbox(mask, header.width, header.height) != box:
        raise CorruptStreamError(f"{what}: bbox does not match its block mask")
    return mask
