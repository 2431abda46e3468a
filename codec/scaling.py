"""Groups coded at reduced resolution (record field `scale_log2`).

A background only gives context, and at low quality most of its bits go to detail nobody looks
at: coding it at 1/2 or 1/4 of the frame's resolution costs 3-10x fewer bits (and encodes and
decodes 4-16x fewer pixels). The group stays independent: its block mask is still sent on the
full-resolution grid, and encoder and decoder both derive the coarse grid's mask from it
(`coarse_block_mask`). The encoder codes a box-filtered copy of the frame; the decoder upsamples
what it decoded with a masked bilinear filter, so pixels outside the coded blocks never bleed in.
"""

from __future__ import annotations

import cv2
import numpy as np

from .geometry import block_grid_shape

MAX_SCALE_LOG2 = 3  # down to 1/8 of the frame's resolution
FACTORS = tuple(1 << s for s in range(MAX_SCALE_LOG2 + 1))


def scale_log2(factor: int) -> int:
    """1, 2, 4 or 8 -> 0..3; anything else is refused."""
    if factor not in FACTORS:
        raise ValueError(f"a group's scale must be one of {FACTORS}, got {factor}")
    return factor.bit_length() - 1


def scaled_size(height: int, width: int, factor: int) -> tuple[int, int]:
    return -(-height // factor), -(-width // factor)


def downscale(image: np.ndarray, factor: int) -> np.ndarray:
    """HxWx3 uint8 -> box-filtered ceil(H/f) x ceil(W/f) x 3 uint8 (edges replicated to fill)."""
    h, w = image.shape[:2]
    sh, sw = scaled_size(h, w, factor)
    padded = np.pad(image, ((0, sh * factor - h), (0, sw * factor - w), (0, 0)), mode="edge")
    boxes = padded.reshape(sh, factor, sw, factor, 3).astype(np.float32).mean(axis=(1, 3))
    return np.rint(boxes).astype(np.uint8)


def coarse_block_mask(block_mask: np.ndarray, height: int, width: int, factor: int) -> np.ndarray:
    """The blocks of the downscaled frame's grid that cover any of the group's (full-grid) blocks."""
    ch, cw = block_grid_shape(*scaled_size(height, width, factor))
    fine = np.zeros((ch * factor, cw * factor), bool)
    rows, cols = min(block_mask.shape[0], fine.shape[0]), min(block_mask.shape[1], fine.shape[1])
    fine[:rows, :cols] = block_mask[:rows, :cols]  # full-grid blocks past that are padding only
    return fine.reshape(ch, factor, cw, factor).any(axis=(1, 3))


def upsample(pixels: np.ndarray, pixel_mask: np.ndarray, factor: int) -> np.ndarray:
    """Decoded coarse pixels [3, h, w] (valid where pixel_mask) -> [3, h*f, w*f], bilinear over the
    valid pixels only (normalised by the interpolated mask)."""
    h, w = pixel_mask.shape
    size = (w * factor, h * factor)
    weight = pixel_mask.astype(np.float32)
    num = cv2.resize(np.ascontiguousarray((pixels * weight[None]).transpose(1, 2, 0), np.float32), size,
                     interpolation=cv2.INTER_LINEAR)
    den = cv2.resize(weight, size, interpolation=cv2.INTER_LINEAR)
    out = np.where(den[..., None] > 1e-6, num / np.maximum(den, 1e-6)[..., None], 0.0)
    return out.transpose(2, 0, 1)

