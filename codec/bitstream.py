"""The group bitstream: parsing, a record's block mask, integrity (CRC-32) and the bytes that encryption binds.

The schema is `proto/bitstream.proto` (documented in docs/bitstream.md). Everything that can be
wrong with received bytes is reported as a `BitstreamError` subclass, never a crash or garbage;
what a decoder accepts is decided in one place, `codec.validate`.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
from google.protobuf.message import DecodeError

from proto import bitstream_pb2 as pb

from .errors import CorruptStreamError
from .geometry import BLOCK, BBox, RunBox, bbox_blocks, block_bbox, block_grid_shape, rle_box, rle_decode, rle_encode

BITSTREAM_VERSION = 2  # what the encoder writes
READABLE_VERSIONS = (1, 2)  # 1: block_runs over the whole grid; 2: over the blocks of the group's bbox
COMPOSITE_BACKGROUND_LAYERS = 8  # background records a composite stacks to fill the holes of newer ones
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


def header_bytes(header: pb.FrameHeader) -> bytes:
    """The header as the binding and the CRC cover it; a frame's records share it (serialize it once)."""
    return header.SerializeToString(deterministic=True)


def record_binding(header: pb.FrameHeader, record: pb.GroupRecord, header_data: bytes | None = None) -> bytes:
    """Header + the record's metadata (everything but payload, CRC, nonce and signature), canonically serialized.

    Encryption authenticates these bytes; the CRC covers them too. `header_data` is
    `header_bytes(header)` when the caller already has it.
    """
    meta = pb.GroupRecord()
    meta.CopyFrom(record)
    meta.ClearField("payload")
    meta.ClearField("crc32")
    meta.encryption.ClearField("nonce")
    meta.ClearField("signature")
    head = header_bytes(header) if header_data is None else header_data
    return head + b"|" + meta.SerializeToString(deterministic=True)


def record_crc(header: pb.FrameHeader, record: pb.GroupRecord, header_data: bytes | None = None) -> int:
    crc = zlib.crc32(record_binding(header, record, header_data))
    crc = zlib.crc32(record.encryption.nonce, crc)
    crc = zlib.crc32(record.payload, crc)
    if record.HasField("signature"):  # unsigned records keep the CRC they always had
        crc = zlib.crc32(record.signature.SerializeToString(deterministic=True), crc)
    return crc


def check_crc(header: pb.FrameHeader, record: pb.GroupRecord, header_data: bytes | None = None) -> None:
    if record_crc(header, record, header_data) != record.crc32:
        raise CorruptStreamError(f"group {record.group_id}: CRC mismatch (the record was damaged in transit or storage)")


def set_block_mask(header: pb.FrameHeader, record: pb.GroupRecord, block_mask: np.ndarray) -> None:
    """Write a group's blocks into its record (bbox, and runs over the blocks the bbox spans)."""
    box = block_bbox(block_mask, header.width, header.height)
    record.bbox.x, record.bbox.y, record.bbox.width, record.bbox.height = box.x, box.y, box.width, box.height
    record.block_runs[:] = rle_encode(block_mask[bbox_blocks(box, header.width, header.height)])


def record_blocks(header: pb.FrameHeader, record: pb.GroupRecord) -> tuple[tuple[slice, slice], RunBox]:
    """The window of the block grid the record's runs cover, and the box (on the whole grid) and
    count of its blocks, checked against the record's bbox, without drawing the mask: the cost is
    linear in the record's runs, so a record cannot ask for work its bytes do not pay for.

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
        local = rle_box(list(record.block_runs), shape)
    except ValueError as exc:
        raise CorruptStreamError(f"{what}: {exc}") from None
    if local is None:
        raise CorruptStreamError(f"{what}: empty block mask")
    r0, c0 = window[0].start + local.r0, window[1].start + local.c0
    blocks = RunBox(r0, c0, window[0].start + local.r1, window[1].start + local.c1, local.count)
    x0, y0 = c0 * BLOCK, r0 * BLOCK
    x1, y1 = min(blocks.c1 * BLOCK, header.width), min(blocks.r1 * BLOCK, header.height)
    if x1 <= x0 or y1 <= y0:
        raise CorruptStreamError(f"{what}: no block of the group lies inside the frame")
    if BBox(x0, y0, x1 - x0, y1 - y0) != box:
        raise CorruptStreamError(f"{what}: bbox does not match its block mask")
    return window, blocks


def record_block_mask(header: pb.FrameHeader, record: pb.GroupRecord) -> np.ndarray:
    """The group's blocks on the frame's block grid, checked against the record's bbox (`record_blocks`)."""
    window, _ = record_blocks(header, record)
    shape = (window[0].stop - window[0].start, window[1].stop - window[1].start)
    mask = np.zeros(block_grid_shape(header.height, header.width), bool)
    mask[window] = rle_decode(list(record.block_runs), shape)
    return mask
