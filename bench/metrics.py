"""Rate-distortion metrics: MS-SSIM (pytorch-msssim) and Bjontegaard delta rate."""

from __future__ import annotations

import numpy as np
import torch
from scipy.interpolate import PchipInterpolator


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM of two HxWx3 uint8 images (data range 255)."""
    from pytorch_msssim import ms_ssim as _ms_ssim  # here, so `roistream train` runs where it is not installed

    ta = torch.tensor(a).permute(2, 0, 1)[None].double()  # a copy: decoded images may be read-only
    tb = torch.tensor(b).permute(2, 0, 1)[None].double()
    return float(_ms_ssim(ta, tb, data_range=255.0))


def bd_rate(rate_ref: list[float], quality_ref: list[float], rate_test: list[float], quality_test: list[float]) -> float:
    """Bjontegaard delta rate (piecewise cubic, as in VCEG-AM91 / JVET's pchip variant), in %.

    Negative = the test codec needs fewer bits than the reference for the same quality, averaged
    over the overlapping quality range. NaN when the curves do not overlap.
    """

    def curve(rate, quality):
        order = np.argsort(quality)
        q = np.asarray(quality, float)[order]
        r = np.log(np.asarray(rate, float)[order])
        keep = np.concatenate(([True], np.diff(q) > 1e-9))  # strictly increasing for pchip
        return q[keep], r[keep]

    q_ref, r_ref = curve(rate_ref, quality_ref)
    q_test, r_test = curve(rate_test, quality_test)
    lo, hi = max(q_ref.min(), q_test.min()), min(q_ref.max(), q_test.max())
    if hi <= lo or len(q_ref) < 2 or len(q_test) < 2:
        return float("nan")
    int_ref = PchipInterpolator(q_ref, r_ref).integrate(lo, hi)
    int_test = PchipInterpolator(q_test, r_test).integrate(lo, hi)
    return float((np.exp((int_test - int_ref) / (hi - lo)) - 1) * 100)
