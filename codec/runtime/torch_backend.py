"""The reference backend: the float transforms on torch (CPU or CUDA).

`dtype=torch.float16` (or bfloat16) runs the analysis in reduced precision, as a GPU encoder would;
decoding stays exact because the symbols depend only on integers.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from .transforms import TransformSet


class TorchBackend:
    """`codec.runtime.Backend` on torch modules copied from a `TransformSet`.

    Both transforms run channels-last, because oneDNN's blocked CPU kernels beat torch's NCHW ones
    (bench/results/export.md measures both). Decoded pixels do not depend on the thread count (tests/test_codec.py
    decodes with 1 and with 2 threads): GDN's channel mixing, whose oneDNN 1x1 convolution would
    round differently with each, is a matmul (codec.layers.GDN).
    """

    def __init__(self, transforms: TransformSet, dtype: torch.dtype = torch.float32, device: str = "cpu"):
        self.name = f"torch-{device}-{str(dtype).removeprefix('torch.')}"
        self.dtype, self.device = dtype, torch.device(device)
        self.analysis = copy.deepcopy(transforms.analysis).to(self.device, dtype, memory_format=torch.channels_last)
        self.synthesis = copy.deepcopy(transforms.synthesis).to(self.device, memory_format=torch.channels_last)

    def analyze(self, x: np.ndarray, cell_mask: np.ndarray, gain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        args = [torch.from_numpy(a).to(self.device, self.dtype) for a in (x, cell_mask, gain)]
        args[0] = args[0].contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            y, z = self.analysis(*args)
        return y.float().contiguous().cpu().numpy(), z.float().contiguous().cpu().numpy()

    def synthesize(self, y_hat: np.ndarray, inverse_gain: np.ndarray) -> np.ndarray:
        y = torch.from_numpy(y_hat).to(self.device).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            return self.synthesis(y, torch.from_numpy(inverse_gain).to(self.device)).contiguous().cpu().numpy()
