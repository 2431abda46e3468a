"""Round trip, group independence and determinism of the group codec, on real images."""

import numpy as np
import pytest
import torch

from codec.api import Codec
from codec.bitstream import EncodedFrame, parse_frame, record_crc
from codec.geometry import block_grid_shape, model_input, rle_encode, upsample_blocks
from codec.metrics import psnr
from codec.plan import FramePlan
from codec.runtime.torch_backend import TorchBackend

from .conftest import three_group_map


def test_decoder_y_hat_equals_encoder_y_hat(codec, small_image):
    gm = three_group_map(*small_image.shape[:2])
    padded = model_input(small_image)
    for gid in (0, 1, 2):
        mask = gm == gid
        payload, y_enc = codec.coder.encode(padded, mask, 200)
        out = codec.coder.decode(payload, mask, 200)
        assert np.array_equal(out.y_hat, y_enc)


def test_round_trip_quality_is_sane_and_rises_with_q(codec, small_image):
    h, w = small_image.shape[:2]
    gm = np.zeros(block_grid_shape(h, w), np.int32)
    results = []
    for q in (0.2, 0.9):
        data = codec.encode(small_image, FramePlan.from_groups(gm, q)).SerializeToString()
        image = codec.decode(data).image
        assert image.shape == small_image.shape
        results.append((len(data), psnr(image, small_image)))
    (bytes_lo, psnr_lo), (bytes_hi, psnr_hi) = results
    assert bytes_hi > bytes_lo
    assert psnr_hi > psnr_lo
    assert psnr_hi > 24.0


def test_every_group_decodes_alone_bit_identically(codec, small_frame):
    frame, gm = small_frame
    full = codec.decode(frame)
    assert set(full.groups) == {0, 1, 2}
    for record in frame.groups:
        alone = EncodedFrame()
        alone.header.CopyFrom(frame.header)
        alone.groups.add().CopyFrom(record)
        single = codec.decode(parse_frame(alone.SerializeToString()), groups=[record.group_id])
        g_full, g_alone = full.groups[record.group_id], single.groups[record.group_id]
        assert g_alone.bbox == g_full.bbox
        assert np.array_equal(g_alone.mask, g_full.mask)
        assert np.array_equal(g_alone.pixels, g_full.pixels)
        # and its pixels in the composited frame are exactly those of the full decode
        pm = upsample_blocks(gm == record.group_id)[: full.height, : full.width]
        assert np.array_equal(single.image[pm], full.image[pm])


def test_corrupting_other_groups_changes_nothing_in_a_group(codec, small_frame):
    frame, _ = small_frame
    reference = codec.decode(frame)
    for target in frame.groups:
        damaged = EncodedFrame()
        damaged.CopyFrom(frame)
        for rec in damaged.groups:
            if rec.group_id != target.group_id:
                rec.payload = bytes(b ^ 0x5A for b in rec.payload)
        out = codec.decode(damaged, on_error="skip")
        assert set(out.failures) == {r.group_id for r in frame.groups} - {target.group_id}
        assert np.array_equal(out.groups[target.group_id].pixels, reference.groups[target.group_id].pixels)


def test_group_computation_touches_only_its_crop(codec, small_image):
    """Changing pixels outside a group's blocks does not change its payload (independence at the encoder)."""
    gm = three_group_map(*small_image.shape[:2])
    other = small_image.copy()
    outside = ~upsample_blocks(gm == 1)[: small_image.shape[0], : small_image.shape[1]]
    other[outside] = 255 - other[outside]
    a = codec.coder.encode(model_input(small_image), gm == 1, 180)[0]
    b = codec.coder.encode(model_input(other), gm == 1, 180)[0]
    assert a == b


def test_float16_analysis_still_decodes_exactly(codec, small_image):
    """A stream whose analysis ran in reduced precision (as on a GPU) decodes symbol for symbol:
    the table cells and means come from integers only."""
    gm = three_group_map(*small_image.shape[:2])
    half = Codec(codec.weights, TorchBackend(codec.coder.transforms, dtype=torch.float16))
    padded = model_input(small_image)
    for gid in (0, 1):
        payload, y_enc = half.coder.encode(padded, gm == gid, 150)
        decoded = codec.coder.decode(payload, gm == gid, 150)
        assert np.array_equal(decoded.y_hat, y_enc)
    psnr_half = psnr(codec.decode(half.encode(small_image, FramePlan.from_groups(gm, 0.5)).SerializeToString()).image, small_image)
    psnr_full = psnr(codec.decode(codec.encode(small_image, FramePlan.from_groups(gm, 0.5)).SerializeToString()).image, small_image)
    assert abs(psnr_half - psnr_full) < 0.3


def test_decoding_with_one_or_two_threads_is_bit_identical(codec, small_frame):
    frame, _ = small_frame
    data = frame.SerializeToString()
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a = codec.decode(data).image
        torch.set_num_threads(2)
        b = codec.decode(data).image
    finally:
        torch.set_num_threads(old)
    assert np.array_equal(a, b)


def test_group_map_shape_is_checked(codec, small_image):
    with pytest.raises(ValueError, match="group map"):
        codec.encode(small_image, FramePlan.from_groups(np.zeros((3, 3), np.int32)))
    h, w = 200, 232  # padded to 256x256: the last block row and the last 1.5 block columns are padding
    gm = np.zeros(block_grid_shape(h, w), np.int32)
    gm[-1, :] = 5
    frame = codec.encode(small_image[:h, :w], FramePlan.from_groups(gm))
    assert list(frame.header.group_ids) == [0]  # group 5 has no pixel in the frame: not coded
    gm[: -3, :] = 1  # objects cover every block of the frame: the background holds only padding
    assert list(codec.encode(small_image[:h, :w], FramePlan.from_groups(gm, groups=[0, 1])).header.group_ids) == [1]


def test_version_1_frames_still_decode(codec, small_frame):
    """Version 1 coded block masks over the whole grid; stored streams of that version stay readable."""
    frame, gm = small_frame
    old = EncodedFrame()
    old.CopyFrom(frame)
    old.header.format_version = 1
    for record in old.groups:
        record.block_runs[:] = rle_encode(gm == record.group_id)
        record.crc32 = record_crc(old.header, record)
    assert old.ByteSize() > frame.ByteSize()  # version 2 codes the runs within each group's bbox
    new, legacy = codec.decode(frame), codec.decode(parse_frame(old.SerializeToString()))
    assert np.array_equal(legacy.image, new.image)
    assert all(np.array_equal(legacy.groups[g].mask, new.groups[g].mask) for g in new.groups)


@pytest.mark.parametrize("factor", [2, 4])
def test_background_at_reduced_resolution(codec, kodak_image, factor):
    """A background coded at 1/2 or 1/4 resolution: far fewer bits, still decodable alone and
    bit-identically, its pixels only inside its own blocks, and a faithful (blurred) picture."""
    image = np.ascontiguousarray(kodak_image[:400, :600])  # not a multiple of 64 or of 4*64
    gm = three_group_map(*image.shape[:2])
    qualities = {0: 0.3, 1: 0.8, 2: 0.6}
    full = codec.encode(image, FramePlan.from_groups(gm, qualities))
    scaled = codec.encode(image, FramePlan.from_groups(gm, qualities, scales={0: factor}, labels={1: "person"}))
    sizes = {r.group_id: len(r.payload) for r in scaled.groups}
    assert [r.scale_log2 for r in scaled.groups] == [factor.bit_length() - 1, 0, 0]
    assert sizes[0] < 0.5 * len(full.groups[0].payload)
    assert sizes[1] == len(full.groups[1].payload)  # the other groups are untouched

    decoded = codec.decode(scaled.SerializeToString())
    bg = decoded.groups[0]
    assert np.array_equal(bg.mask, upsample_blocks(gm == 0)[bg.bbox.slices])
    assert not bg.pixels[~bg.mask].any()
    assert psnr(bg.pixels[bg.mask], image[bg.bbox.slices][bg.mask]) > 18.0
    alone = EncodedFrame()
    alone.header.CopyFrom(scaled.header)
    alone.groups.add().CopyFrom(scaled.groups[0])
    assert np.array_equal(codec.decode(alone, groups=[0]).groups[0].pixels, bg.pixels)
    assert np.array_equal(decoded.groups[1].pixels, codec.decode(full).groups[1].pixels)


def test_scale_is_authenticated_and_checked(codec, small_frame):
    from codec.bitstream import record_crc
    from codec.errors import CorruptStreamError

    frame, _ = small_frame
    tampered = EncodedFrame()
    tampered.CopyFrom(frame)
    tampered.groups[0].scale_log2 = 1  # covered by the CRC
    with pytest.raises(CorruptStreamError, match="CRC"):
        codec.decode(tampered)
    tampered.groups[0].scale_log2 = 9
    tampered.groups[0].crc32 = record_crc(tampered.header, tampered.groups[0])
    with pytest.raises(CorruptStreamError, match="scale"):
        codec.decode(tampered)
    with pytest.raises(ValueError, match="scale"):
        FramePlan.from_groups(np.zeros((4, 4), np.int32), 0.5, scales={0: 3})
