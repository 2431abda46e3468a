"""Frame geometry: padding, the 16-px block grid, group boxes and crops, run-length block masks.

One block (16x16 px) is one latent cell of y; one hyper cell (64x64 px) is 4x4 blocks and one
cell of z. A group is a set of blocks. Its computation runs on its *crop*: the bounding box of its
blocks, aligned outward to the 64-px hyper grid. Encoder and decoder derive the same crop from the
transmitted block mask, so the computation is deterministic on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLOCK = 16  # pixels per latent cell of y
HYPER = 64  # pixels per latent cell of z
BLOCKS_PER_HYPER = HYPER // BLOCK


def padded_size(height: int, width: int) -> tuple[int, int]:
    """Frame size rounded up to the hyper grid (64 px)."""
    return -(-height // HYPER) * HYPER, -(-width // HYPER) * HYPER


def pad_image(image: np.ndarray) -> np.ndarray:
    """Pad an HxWx3 image to the 64-px grid by edge replication."""
    h, w = image.shape[:2]
    ph, pw = padded_size(h, w)
    if (ph, pw) == (h, w):
        return image
    return np.pad(image, ((0, ph - h), (0, pw - w), (0, 0)), mode="edge")


def model_input(image: np.ndarray) -> np.ndarray:
    """An HxWx3 uint8 image as the networks take it: padded, 3xHxW float32 in [0, 1]."""
    return pad_image(image).transpose(2, 0, 1).astype(np.float32) / 255.0


@dataclass(frozen=True)
class Crop:
    """A group's computation window in hyper cells: rows [r0, r1), cols [c0, c1)."""

    r0: int
    c0: int
    r1: int
    c1: int

    @property
    def pixel_slices(self) -> tuple[slice, slice]:
        return slice(self.r0 * HYPER, self.r1 * HYPER), slice(self.c0 * HYPER, self.c1 * HYPER)

    @property
    def block_slices(self) -> tuple[slice, slice]:
        k = BLOCKS_PER_HYPER
        return slice(self.r0 * k, self.r1 * k), slice(self.c0 * k, self.c1 * k)


def group_crop(block_mask: np.ndarray) -> Crop:
    """The 64-px aligned bounding box (in hyper cells) of the blocks set in `block_mask`."""
    rows = np.flatnonzero(block_mask.any(axis=1))
    cols = np.flatnonzero(block_mask.any(axis=0))
    if rows.size == 0:
        raise ValueError("a group must hold at least one block")
    k = BLOCKS_PER_HYPER
    return Crop(int(rows[0]) // k, int(cols[0]) // k, int(rows[-1]) // k + 1, int(cols[-1]) // k + 1)


def hyper_mask(block_mask: np.ndarray) -> np.ndarray:
    """Hyper cells (z) holding at least one of the group's blocks. block_mask must be a multiple of 4."""
    hb, wb = block_mask.shape
    k = BLOCKS_PER_HYPER
    return block_mask.reshape(hb // k, k, wb // k, k).any(axis=(1, 3))


def block_grid_shape(height: int, width: int) -> tuple[int, int]:
    """Block-grid shape of a frame of this size (after padding)."""
    ph, pw = padded_size(height, width)
    return ph // BLOCK, pw // BLOCK


def frame_blocks(height: int, width: int) -> tuple[slice, slice]:
    """The rows and columns of the block grid that hold pixels of the frame (the rest is padding)."""
    return slice(0, -(-height // BLOCK)), slice(0, -(-width // BLOCK))


@dataclass(frozen=True)
class BBox:
    """A pixel rectangle of the frame."""

    x: int
    y: int
    width: int
    height: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y, self.y + self.height), slice(self.x, self.x + self.width)


def block_bbox(block_mask: np.ndarray, width: int, height: int) -> BBox:
    """Pixel box of the blocks set in `block_mask`, clipped to the true frame size."""
    rows = np.flatnonzero(block_mask.any(axis=1))
    cols = np.flatnonzero(block_mask.any(axis=0))
    x0, y0 = int(cols[0]) * BLOCK, int(rows[0]) * BLOCK
    x1, y1 = min((int(cols[-1]) + 1) * BLOCK, width), min((int(rows[-1]) + 1) * BLOCK, height)
    return BBox(x0, y0, max(x1 - x0, 0), max(y1 - y0, 0))


def bbox_blocks(box: BBox, width: int, height: int) -> tuple[slice, slice]:
    """The block rows and columns of the padded grid that a group's bbox spans. A box reaching the
    frame's right or bottom edge also spans the padding blocks beyond it (a background holds them)."""
    rows, cols = block_grid_shape(height, width)
    r1 = rows if box.y + box.height >= height else -(-(box.y + box.height) // BLOCK)
    c1 = cols if box.x + box.width >= width else -(-(box.x + box.width) // BLOCK)
    return slice(box.y // BLOCK, r1), slice(box.x // BLOCK, c1)


def upsample_blocks(block_mask: np.ndarray, factor: int = BLOCK) -> np.ndarray:
    """Block mask to pixel mask (nearest)."""
    return np.repeat(np.repeat(block_mask, factor, axis=0), factor, axis=1)


def rle_encode(mask: np.ndarray) -> list[int]:
    """Run lengths of a boolean mask in row-major order, starting with a run of False (may be 0)."""
    flat = np.asarray(mask, dtype=bool).ravel()
    if flat.size == 0:
        return []
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], change, [flat.size]))
    runs = np.diff(bounds).tolist()
    return [0, *runs] if flat[0] else runs


def rle_decode(runs: list[int], shape: tuple[int, int]) -> np.ndarray:
    """Inverse of rle_encode. Raises ValueError if the runs do not fill `shape` exactly."""
    total = shape[0] * shape[1]
    runs_arr = np.asarray(runs, dtype=np.int64)
    if (runs_arr < 0).any() or int(runs_arr.sum()) != total:
        raise ValueError(f"block-mask runs cover {int(runs_arr.sum())} cells, expected {total}")
    values = np.arange(runs_arr.size) % 2 == 1
    return np.repeat(values, runs_arr).reshape(shape)


@dataclass(frozen=True)
class RunBox:
    """What run lengths say about their mask without drawing it: the box of the set cells (rows
    [r0, r1), cols [c0, c1)) and how many cells are set."""

    r0: int
    c0: int
    r1: int
    c1: int
    count: int


def rle_box(runs: list[int], shape: tuple[int, int]) -> RunBox | None:
    """The set cells' box of runs over `shape` (None if no cell is set), in time linear in the runs
    rather than the mask's area. Raises ValueError if the runs do not fill `shape` exactly."""
    total = shape[0] * shape[1]
    runs_arr = np.asarray(runs, dtype=np.int64)
    if (runs_arr < 0).any() or int(runs_arr.sum()) != total:
        raise ValueError(f"block-mask runs cover {int(runs_arr.sum())} cells, expected {total}")
    starts = np.cumsum(runs_arr) - runs_arr
    on = (np.arange(runs_arr.size) % 2 == 1) & (runs_arr > 0)
    if not on.any():
        return None
    first, last = starts[on], starts[on] + runs_arr[on] - 1
    width = shape[1]
    one_row = first // width == last // width
    c0 = np.where(one_row, first % width, 0).min()
    c1 = np.where(one_row, last % width, width - 1).max() + 1
    return RunBox(int(first.min() // width), int(c0), int(last.max() // width + 1), int(c1), int(runs_arr[on].sum()))


def group_map_from_label_image(labels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Turn a per-pixel integer label image (0 = background) into a block-grid group map.

    A block belongs to the object label covering most of its pixels (ties to the lower id); a
    block with any object pixel in it goes to that object rather than to the background, so no
    object pixel is coded at background quality.
    """
    if labels.shape[:2] != (height, width):
        raise ValueError(f"label image is {labels.shape[1]}x{labels.shape[0]}, frame is {width}x{height}")
    ph, pw = padded_size(height, width)
    padded = np.zeros((ph, pw), dtype=np.int64)
    padded[:height, :width] = labels
    hb, wb = ph // BLOCK, pw // BLOCK
    blocks = padded.reshape(hb, BLOCK, wb, BLOCK).transpose(0, 2, 1, 3).reshape(hb, wb, BLOCK * BLOCK)
    ids = np.unique(padded)
    ids = ids[ids > 0]
    out = np.zeros((hb, wb), dtype=np.int32)
    if ids.size:
        counts = np.stack([(blocks == i).sum(axis=2) for i in ids])  # [K, hb, wb]
        best = counts.argmax(axis=0)
        has_object = counts.max(axis=0) > 0
        out[has_object] = ids[best[has_object]]
    return out
