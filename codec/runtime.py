"""Float transforms of the coding path and the backends that run them.

`AnalysisGraph` (g_a with its gain, masked to the group's cells, then h_a) and `SynthesisGraph`
(inverse gain then g_s) are exactly the networks that leave PyTorch for ONNX / TensorRT; the
integer hyper-synthesis stays in numpy (`codec.intnet`). A backend is anything with the
`analyze` / `synthesize` signatures below; `TorchBackend` is the reference.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
from torch import Tensor, nn

from .gain import GainUnits, dequantize_quality
from .model import Analysis, HyperAnalysis, Synthesis
from .weights import CodecWeights


class AnalysisGraph(nn.Module):
    """(x [B,3,H,W], cell_mask [B,1,H/16,W/16], gain [B,M]) -> (y [B,M,H/16,W/16], z [B,N,H/64,W/64])."""

    def __init__(self, g_a: Analysis, h_a: HyperAnalysis):
        super().__init__()
        self.g_a, self.h_a = g_a, h_a

    def forward(self, x: Tensor, cell_mask: Tensor, gain: Tensor) -> tuple[Tensor, Tensor]:
        y = self.g_a(x) * gain[:, :, None, None] * cell_mask
        return y, self.h_a(y)


class SynthesisGraph(nn.Module):
    """(y_hat [B,M,h,w], inverse_gain [B,M]) -> image [B,3,16h,16w] clamped to [0, 1]."""

    def __init__(self, g_s: Synthesis):
        super().__init__()
        self.g_s = g_s

    def forward(self, y_hat: Tensor, inverse_gain: Tensor) -> Tensor:
        return self.g_s(y_hat * inverse_gain[:, :, None, None]).clamp(0, 1)


class Backend(Protocol):
    name: str

    def analyze(self, x: np.ndarray, cell_mask: np.ndarray, gain: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def synthesize(self, y_hat: np.ndarray, inverse_gain: np.ndarray) -> np.ndarray: ...


class TransformSet:
    """The float networks of a weights file as torch modules (eval mode, float32)."""

    def __init__(self, weights: CodecWeights):
        n, m, nt = weights.config.n, weights.config.m, weights.config.transform_channels
        state = weights.float_state
        self.g_a, self.h_a, self.g_s, self.gains = Analysis(nt, m), HyperAnalysis(n, m), Synthesis(nt, m), GainUnits(m)
        for name, module in (("g_a", self.g_a), ("h_a", self.h_a), ("g_s", self.g_s), ("gains", self.gains)):
            prefix = name + "."
            module.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
            module.eval().requires_grad_(False)
        self.analysis = AnalysisGraph(self.g_a, self.h_a).eval()
        self.synthesis = SynthesisGraph(self.g_s).eval()

    def gain_vectors(self, q_index: int) -> tuple[np.ndarray, np.ndarray]:
        """(gain, inverse gain) [M] float32 for a record's quantized quality."""
        q = torch.tensor([dequantize_quality(q_index)])
        with torch.no_grad():
            return self.gains.gain(q)[0].numpy(), self.gains.inverse(q)[0].numpy()


class TorchBackend:
    """Reference backend. `dtype=torch.float16` (or bfloat16) runs the analysis in reduced precision,
    as a GPU encoder would; decoding stays exact because symbols depend only on integers.

    Both transforms run channels-last through oneDNN: the analysis about 1.4x and the synthesis
    about 2x faster on CPU than torch's native NCHW kernels (Kodak synthesis 464 -> 222 ms in
    bench/results/export.md). Decoded pixels do not depend on the thread count (tests/test_codec.py
    decodes with 1 and with 2 threads): GDN's channel mixing, whose oneDNN 1x1 convolution would
    round differently with each, is a matmul (codec.layers.GDN).
    """

    def __init__(self, transforms: TransformSet, dtype: torch.dtype = torch.float32, device: str = "cpu"):
        import copy

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
