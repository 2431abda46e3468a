"""The float transforms of the coding path as torch modules.

`AnalysisGraph` (g_a with its gain, masked to the group's cells, then h_a) and `SynthesisGraph`
(inverse gain then g_s) are exactly the networks that leave PyTorch for ONNX / TensorRT; the
integer hyper-synthesis stays in numpy (`codec.intnet`), so streams decode exactly on any backend.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from ..bitstream import dequantize_quality
from ..gain import GainUnits
from ..model import Analysis, HyperAnalysis, Synthesis
from ..weights import CodecWeights


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
