"""Image quality measures shared by the benchmarks, the demo and the tests (8-bit images)."""

from __future__ import annotations

import numpy as np


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """PSNR in dB of two uint8 images, over the pixels where `mask` is true (all when None)."""
    diff = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    mse = diff[mask].mean() if mask is not None else diff.mean()
    return float(10 * np.log10(255**2 / max(mse, 1e-10)))
