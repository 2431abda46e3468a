"""Building blocks of the transforms: GDN, strided convolutions, straight-through rounding."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def conv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)


def deconv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, kernel, stride=stride, padding=kernel // 2, output_padding=stride - 1)


def ste_round(x: Tensor) -> Tensor:
    """Round with an identity gradient."""
    return x + (torch.round(x) - x).detach()


class GDN(nn.Module):
    """Generalized divisive normalization (Balle et al.), or its inverse.

    Parameters are squared so beta stays positive and gamma non-negative. The channel mixing is a
    matmul rather than a 1x1 convolution: oneDNN's 1x1 convolution rounds differently with 1 and
    2 threads, the matmul does not, so decoded pixels do not depend on the thread count.
    """

    def __init__(self, channels: int, inverse: bool = False, gamma_init: float = 0.1):
        super().__init__()
        self.inverse = inverse
        self.beta = nn.Parameter(torch.ones(channels))
        self.gamma = nn.Parameter(torch.eye(channels) * gamma_init**0.5)

    def forward(self, x: Tensor) -> Tensor:
        beta = self.beta**2 + 1e-6
        gamma = self.gamma**2
        if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            # Channels-last (the encoder's and training's layout): mix along the last axis of the
            # [B, H, W, C] view, with no layout conversion.
            pixels = x.permute(0, 2, 3, 1)
            norm = torch.sqrt(torch.matmul(pixels * pixels, gamma.t()) + beta)
            out = pixels * norm if self.inverse else pixels / norm
            return out.permute(0, 3, 1, 2)
        b, c, h, w = x.shape
        mixed = torch.matmul(gamma, (x * x).reshape(b, c, h * w)) + beta[:, None]
        norm = torch.sqrt(mixed.reshape(b, c, h, w))
        return x * norm if self.inverse else x / norm
