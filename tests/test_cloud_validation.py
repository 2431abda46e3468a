"""Ingest validation's fast run-length bbox agrees with the codec's mask decoding, and refuses what it refuses."""

from __future__ import annotations

import numpy as np
import pytest

from cloud.validation import runs_bbox
from codec.api import block_bbox
from codec.errors import CorruptStreamError
from codec.geometry import block_grid_shape, rle_encode


@pytest.mark.parametrize("height, width", [(256, 256), (200, 232), (576, 768), (17, 1000)])
def test_runs_bbox_matches_the_codec(height, width):
    rng = np.random.default_rng(height * width)
    shape = block_grid_shape(height, width)
    for _ in range(200):
        mask = np.zeros(shape, bool)
        kind = rng.integers(3)
        if kind == 0:  # a rectangle
            r0, c0 = rng.integers(shape[0]), rng.integers(shape[1])
            mask[r0:r0 + rng.integers(1, shape[0] + 1), c0:c0 + rng.integers(1, shape[1] + 1)] = True
        else:  # scattered cells, sometimes touching the padding beyond the true frame size
            mask = rng.random(shape) < (0.02 if kind == 1 else 0.5)
        if not mask.any():
            continue
        box = block_bbox(mask, width, height)
        assert runs_bbox(rle_encode(mask), height, width) == (box.x, box.y, box.width, box.height)


@pytest.mark.parametrize("runs, message", [
    ([16], "empty"), ([5, 5, 5], "cover 15 cells"), ([0] * 20, "too many runs"), ([3, -1, 14], "negative")])
def test_runs_bbox_refuses_bad_runs(runs, message):
    with pytest.raises(CorruptStreamError, match=message):
        runs_bbox(runs, 64, 64)  # a 4x4 block grid
