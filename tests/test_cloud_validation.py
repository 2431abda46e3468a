"""Block masks in records: version 2 codes them over the group's bbox, version 1 (still read) over
the whole grid; ingest and decoding refuse masks that do not fill their window or miss their bbox."""

from __future__ import annotations

import numpy as np
import pytest

from codec.bitstream import GroupRecord, FrameHeader, record_block_mask, set_block_mask
from codec.errors import CorruptStreamError
from codec.geometry import block_grid_shape, rle_encode


def _header(height: int, width: int, version: int = 2) -> FrameHeader:
    return FrameHeader(format_version=version, width=width, height=height)


def _random_masks(height: int, width: int, count: int = 200):
    rng = np.random.default_rng(height * width)
    shape = block_grid_shape(height, width)
    for _ in range(count):
        mask = np.zeros(shape, bool)
        kind = rng.integers(3)
        if kind == 0:  # a rectangle
            r0, c0 = rng.integers(shape[0]), rng.integers(shape[1])
            mask[r0:r0 + rng.integers(1, shape[0] + 1), c0:c0 + rng.integers(1, shape[1] + 1)] = True
        else:  # scattered cells, sometimes touching the padding beyond the true frame size
            mask = rng.random(shape) < (0.02 if kind == 1 else 0.5)
        if mask[: -(-height // 16), : -(-width // 16)].any():  # a group holds a block of the frame
            yield mask


@pytest.mark.parametrize("height, width", [(256, 256), (200, 232), (576, 768), (17, 1000)])
def test_block_masks_round_trip_in_both_versions(height, width):
    header, old = _header(height, width), _header(height, width, version=1)
    for mask in _random_masks(height, width):
        record = GroupRecord()
        set_block_mask(header, record, mask)
        assert np.array_equal(record_block_mask(header, record), mask)
        legacy = GroupRecord(bbox=record.bbox, block_runs=rle_encode(mask))  # as version 1 wrote it
        assert np.array_equal(record_block_mask(old, legacy), mask)


def test_version_2_runs_are_local_to_the_bbox():
    header = _header(576, 768)
    mask = np.zeros(block_grid_shape(576, 768), bool)
    mask[10:17, 20:23] = True  # a 3x7-block pedestrian
    record = GroupRecord()
    set_block_mask(header, record, mask)
    assert list(record.block_runs) == [0, 21]
    assert (record.bbox.x, record.bbox.y, record.bbox.width, record.bbox.height) == (320, 160, 48, 112)
    assert len(rle_encode(mask)) == 15  # what version 1 sent: a run of misses before every row


def _pedestrian(header) -> GroupRecord:
    mask = np.zeros(block_grid_shape(header.height, header.width), bool)
    mask[2:5, 3:5] = True
    mask[3, 2] = True
    record = GroupRecord()
    set_block_mask(header, record, mask)
    return record


@pytest.mark.parametrize("change, message", [
    (lambda r: r.block_runs.__setitem__(slice(None), [3, 5]), "cover 8 cells, expected 9"),
    (lambda r: r.block_runs.__setitem__(slice(None), [9]), "empty"),
    (lambda r: r.block_runs.__setitem__(slice(None), [0] * 11), "too many runs"),
    (lambda r: setattr(r.bbox, "x", r.bbox.x + 3), "cover 9 cells, expected 12"),  # spans one more column
    (lambda r: (setattr(r.bbox, "x", r.bbox.x + 8), setattr(r.bbox, "width", r.bbox.width - 8)),
     "bbox does not match"),  # the same blocks, not their box
    (lambda r: setattr(r.bbox, "width", 0), "empty or leaves the frame"),
    (lambda r: setattr(r.bbox, "width", 10_000), "empty or leaves the frame"),
    (lambda r: r.block_runs.__setitem__(slice(None), [4, 5]), "bbox does not match"),  # misses the bbox's first row
])
def test_bad_masks_are_refused(change, message):
    header = _header(200, 232)
    record = _pedestrian(header)
    record_block_mask(header, record)
    change(record)
    with pytest.raises(CorruptStreamError, match=message):
        record_block_mask(header, record)


def test_version_1_bbox_must_match_its_mask():
    header = _header(200, 232, version=1)
    mask = np.zeros(block_grid_shape(200, 232), bool)
    mask[4, 4] = True
    record = GroupRecord(block_runs=rle_encode(mask))
    record.bbox.x, record.bbox.y, record.bbox.width, record.bbox.height = 64, 64, 16, 16
    record_block_mask(header, record)
    record.bbox.y = 48
    with pytest.raises(CorruptStreamError, match="bbox does not match"):
        record_block_mask(header, record)
