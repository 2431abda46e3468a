"""Shared fixtures: the real codec with the shipped weights, real Kodak images."""

from __future__ import annotations

import os
import numpy as np
import pytest

from codec import paths

# ultralytics must never reach the network from tests
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "0")
os.environ.setdefault("YOLO_CONFIG_DIR", str(paths.cache_dir() / "ultralytics"))
os.environ.setdefault("MPLCONFIGDIR", str(paths.cache_dir() / "matplotlib"))


@pytest.fixture(scope="session")
def codec():
    import torch

    from codec.api import Codec

    torch.set_num_threads(1)
    return Codec.load()


@pytest.fixture(scope="session")
def kodak_image() -> np.ndarray:
    from codec.data import load_rgb

    return load_rgb(paths.kodak_dir() / "kodim23.png")


@pytest.fixture(scope="session")
def small_image(kodak_image: np.ndarray) -> np.ndarray:
    """A 200x232 crop (not a multiple of 64, so padding is exercised)."""
    return np.ascontiguousarray(kodak_image[100:300, 300:532])


def three_group_map(height: int, width: int) -> np.ndarray:
    """Background + two irregular objects on the block grid."""
    from codec.geometry import block_grid_shape

    hb, wb = block_grid_shape(height, width)
    gm = np.zeros((hb, wb), np.int32)
    gm[2:7, 3:8] = 1
    gm[4, 8] = 1  # irregular
    gm[8:12, 9:14] = 2
    return gm


@pytest.fixture(scope="session")
def small_frame(codec, small_image):
    """An encoded 3-group frame of small_image (background q=0.3, objects 0.8 and 0.6)."""
    gm = three_group_map(*small_image.shape[:2])
    from codec.plan import FramePlan

    plan = FramePlan.from_groups(gm, {0: 0.3, 1: 0.8, 2: 0.6}, labels={1: "person", 2: "dog"})
    frame = codec.encode(small_image, plan, stream_id="cam1", frame_index=7, timestamp_us=1_700_000_000_000_000)
    return frame, gm
