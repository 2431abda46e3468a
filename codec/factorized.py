"""Factorized prior for z: one learned univariate density per channel (Balle et al., 2018).

Each channel's cumulative is a small monotone network of the input; the likelihood of an integer
bin is the difference of two cumulatives. Its coding tables are built once when weights are saved.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

LIKELIHOOD_MIN = 1e-9


class FactorizedPrior(nn.Module):
    def __init__(self, channels: int, filters: tuple[int, ...] = (3, 3, 3), init_scale: float = 10.0):
        super().__init__()
        self.channels = channels
        dims = (1, *filters, 1)
        scale = init_scale ** (1 / (len(filters) + 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(filters) + 1):
            init = float(np.log(np.expm1(1 / scale / dims[i + 1])))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.empty(channels, dims[i + 1], 1).uniform_(-0.5, 0.5)))
            if i < len(filters):
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))

    def _logits_cumulative(self, x: Tensor) -> Tensor:
        """x: [C, 1, n] -> cumulative logits [C, 1, n]."""
        for i, (matrix, bias) in enumerate(zip(self.matrices, self.biases)):
            x = torch.matmul(F.softplus(matrix), x) + bias
            if i < len(self.factors):
                x = x + torch.tanh(self.factors[i]) * torch.tanh(x)
        return x

    def likelihood(self, z: Tensor) -> Tensor:
        """Likelihood of the unit bin around each element of z [B, C, H, W] (z may be noisy)."""
        b, c, h, w = z.shape
        v = z.permute(1, 0, 2, 3).reshape(c, 1, -1).float()
        lower = self._logits_cumulative(v - 0.5)
        upper = self._logits_cumulative(v + 0.5)
        sign = -torch.sign(lower + upper).detach()
        lik = (torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).abs()
        return lik.clamp_min(LIKELIHOOD_MIN).reshape(c, b, h, w).permute(1, 0, 2, 3)

    @torch.no_grad()
    def integer_pmfs(self, half_width: int) -> tuple[np.ndarray, np.ndarray]:
        """Per channel: float64 probabilities of the integers -T..T and the tail mass outside."""
        edges = torch.arange(-half_width, half_width + 2, dtype=torch.float32) - 0.5
        logits = self._logits_cumulative(edges.expand(self.channels, 1, -1).contiguous()).double()
        cdf = torch.sigmoid(logits)[:, 0, :]
        pmf = (cdf[:, 1:] - cdf[:, :-1]).clamp_min(0)
        tail = cdf[:, 0] + (1 - cdf[:, -1])
        return pmf.numpy(), tail.numpy()
