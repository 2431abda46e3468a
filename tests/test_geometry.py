import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from codec.geometry import (Crop, block_grid_shape, group_crop, group_map_from_label_image, hyper_mask, pad_image,
                            padded_size, rle_decode, rle_encode)


@settings(max_examples=200, deadline=None)
@given(arrays(bool, st.tuples(st.integers(1, 20), st.integers(1, 20))))
def test_rle_round_trip(mask):
    assert np.array_equal(rle_decode(rle_encode(mask), mask.shape), mask)


def test_rle_rejects_runs_that_do_not_fill_the_grid():
    with pytest.raises(ValueError, match="cover"):
        rle_decode([3, 4], (3, 3))
    with pytest.raises(ValueError):
        rle_decode([-1, 10], (3, 3))


def test_padding_and_grid():
    assert padded_size(512, 768) == (512, 768)
    assert padded_size(200, 232) == (256, 256)
    assert block_grid_shape(576, 768) == (36, 48)
    img = np.arange(200 * 232 * 3, dtype=np.uint8).reshape(200, 232, 3)
    p = pad_image(img)
    assert p.shape == (256, 256, 3)
    assert np.array_equal(p[:200, :232], img)
    assert np.array_equal(p[255, 231], img[199, 231])  # edge replicate


def test_group_crop_is_aligned_to_hyper_cells():
    m = np.zeros((16, 16), bool)
    m[5, 6] = m[9, 3] = True
    assert group_crop(m) == Crop(1, 0, 3, 2)
    hm = hyper_mask(m)
    assert hm.shape == (4, 4) and hm.sum() == 2 and hm[1, 1] and hm[2, 0]
    with pytest.raises(ValueError):
        group_crop(np.zeros((4, 4), bool))


def test_label_image_to_group_map():
    labels = np.zeros((100, 70), np.int64)
    labels[10:20, 10:20] = 3  # straddles blocks (0,0),(0,1),(1,0),(1,1)
    labels[60:90, 40:60] = 5
    gm = group_map_from_label_image(labels, 100, 70)
    assert gm.shape == (8, 8)
    assert set(np.unique(gm)) == {0, 3, 5}
    assert gm[0, 0] == 3 and gm[1, 1] == 3  # any object pixel claims the block
    assert (gm[4:6, 3] == 5).all()
    with pytest.raises(ValueError):
        group_map_from_label_image(labels, 99, 70)
