"""Gain units for continuous variable rate (Cui et al., asymmetric gained VAE).

L trained levels, each with a gain vector (applied to y before quantization) and an inverse-gain
vector (applied before synthesis). Any quality q in [0, 1] sits between two levels and uses their
exponential interpolation, so one model covers the whole rate range continuously.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

# lambda per level (MSE on [0,1] images times 255^2, as CompressAI's bmshj2018 qualities 1..6),
# with one lower level for cheap backgrounds.
LAMBDAS = (0.0009, 0.0018, 0.0035, 0.0067, 0.013, 0.025, 0.0483)


def _position(q: Tensor, levels: int) -> tuple[Tensor, Tensor]:
    p = q.clamp(0, 1) * (levels - 1)
    low = p.floor().clamp(max=levels - 2).long()
    return low, p - low


def interpolate_lambda(q: Tensor) -> Tensor:
    """lambda(q): exponential interpolation between the trained levels."""
    log_l = torch.log(torch.tensor(LAMBDAS, dtype=torch.float32, device=q.device))
    low, t = _position(q, len(LAMBDAS))
    return torch.exp(log_l[low] * (1 - t) + log_l[low + 1] * t)


class GainUnits(nn.Module):
    def __init__(self, channels: int, levels: int = len(LAMBDAS)):
        super().__init__()
        # Start from a geometric ladder (higher quality = finer quantization) so training begins
        # with distinct rates per level; the vectors are learned per channel.
        ladder = (torch.arange(levels, dtype=torch.float32) - (levels - 1) / 2) * 0.35
        self.log_gain = nn.Parameter(ladder[:, None].repeat(1, channels))
        self.log_inverse = nn.Parameter(-ladder[:, None].repeat(1, channels))

    def _interp(self, table: Tensor, q: Tensor) -> Tensor:
        low, t = _position(q, table.shape[0])
        t = t[:, None]
        return torch.exp(table[low] * (1 - t) + table[low + 1] * t)

    def gain(self, q: Tensor) -> Tensor:
        """[B] qualities -> [B, M] gains."""
        return self._interp(self.log_gain, q)

    def inverse(self, q: Tensor) -> Tensor:
        return self._interp(self.log_inverse, q)
