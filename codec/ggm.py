"""Generalized Gaussian (GGM) conditional for y: bounds, likelihood for training, tables for coding.

density(y) = beta / (2 sigma Gamma(1/beta)) * exp(-|y / sigma|^beta)
CDF(x)     = 0.5 + 0.5 sign(x) P(1/beta, |x / sigma|^beta), P = regularized lower incomplete gamma.

beta = 2 is the Gaussian (up to the sqrt(2) scale convention), beta = 1 the Laplacian; per-element
beta lets the model follow the heavier tails of ROI latents (Zhang et al., TIP 2025).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

BETA_MIN = 0.5
BETA_MAX = 3.0
SIGMA_MIN = 0.11
SIGMA_MAX = 64.0
LIKELIHOOD_MIN = 1e-9
_FD_STEP = 1e-3  # central-difference step for d/da of the incomplete gamma
_T_MIN = 1e-9  # |x / sigma|^beta is evaluated from here up: its gradient is infinite at 0 when beta < 1
_LOG_DENSITY_MAX = 20.0  # keeps d/dx finite near 0, where the true derivative diverges for beta > 1


class _GammaIncC(torch.autograd.Function):
    """Q(a, x) = 1 - P(a, x) with d/dx analytic and d/da by central difference.

    torch has no derivative of the incomplete gamma with respect to its shape argument; the GGM
    paper estimates it by finite differences, which is accurate enough for SGD.
    """

    @staticmethod
    def forward(ctx, a: Tensor, x: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(a, x)
        return torch.special.gammaincc(a, x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        a, x = ctx.saved_tensors
        h = _FD_STEP
        d_a = (torch.special.gammaincc(a + h, x) - torch.special.gammaincc(a - h, x)) / (2 * h)
        log_density = (a - 1) * torch.log(x.clamp_min(_T_MIN)) - x - torch.lgamma(a)
        d_x = -torch.exp(log_density.clamp(max=_LOG_DENSITY_MAX))
        return grad * d_a, grad * d_x


def sigma_lower_bound(beta: Tensor) -> Tensor:
    """Scale lower bound that grows as beta shrinks: small beta with small sigma puts almost all mass
    in one bin and makes the incomplete gamma ill-conditioned (the GGM paper's dynamic bound)."""
    return SIGMA_MIN * torch.exp2((1.0 / beta - 1.0).clamp_min(0.0))


def bound_params(log_sigma: Tensor, beta_logit: Tensor) -> tuple[Tensor, Tensor]:
    """Map raw hyper-synthesis outputs to (sigma, beta) within their bounds."""
    beta = BETA_MIN + (BETA_MAX - BETA_MIN) * torch.sigmoid(beta_logit)
    sigma = torch.exp(log_sigma.clamp(max=math.log(SIGMA_MAX)))
    return torch.maximum(sigma, sigma_lower_bound(beta)), beta


def _lower_tail(x: Tensor, sigma: Tensor, beta: Tensor) -> Tensor:
    """Mass below -|x| (the CDF at -|x|): 0.5 * Q(1/beta, (|x| / sigma)^beta)."""
    t = (x.abs() / sigma).clamp_min(_T_MIN).pow(beta)
    return 0.5 * _GammaIncC.apply(1.0 / beta, t)


def likelihood(residual: Tensor, sigma: Tensor, beta: Tensor) -> Tensor:
    """P(integer bin around `residual`) under GGM(0, sigma, beta), bounded below.

    Evaluated on the lower tail (-|r|) where it is numerically accurate, as CompressAI does.
    """
    r = residual.abs()
    upper = 0.5 - r  # positive when |r| < 0.5: the bin straddles the mode
    half_tail = _lower_tail(upper, sigma, beta)  # 0.5 Q(1/beta, (|upper| / sigma)^beta)
    cdf_upper = torch.where(upper <= 0, half_tail, 1.0 - half_tail)
    cdf_lower = _lower_tail(-r - 0.5, sigma, beta)
    return (cdf_upper - cdf_lower).clamp_min(LIKELIHOOD_MIN)


# ---- table grid (used when weights are saved, and to pick a table cell at coding time) ----

def sigma_levels(count: int = 64) -> np.ndarray:
    """Log-spaced scale levels from SIGMA_MIN to SIGMA_MAX."""
    return np.exp(np.linspace(math.log(SIGMA_MIN), math.log(SIGMA_MAX), count))


def beta_levels(count: int = 12) -> np.ndarray:
    """Linearly spaced shape levels from BETA_MIN to BETA_MAX."""
    return np.linspace(BETA_MIN, BETA_MAX, count)


def sigma_thresholds(levels: np.ndarray) -> np.ndarray:
    """log-sigma values separating consecutive levels (geometric midpoints)."""
    logs = np.log(levels)
    return (logs[1:] + logs[:-1]) / 2


def beta_logit_thresholds(levels: np.ndarray) -> np.ndarray:
    """beta-logit values separating consecutive beta levels (midpoints mapped through the logit)."""
    mid = (levels[1:] + levels[:-1]) / 2
    p = (mid - BETA_MIN) / (BETA_MAX - BETA_MIN)
    return np.log(p / (1 - p))


def min_sigma_index(sig_levels: np.ndarray, bet_levels: np.ndarray) -> np.ndarray:
    """For each beta level, the lowest sigma level allowed by sigma_lower_bound."""
    bounds = sigma_lower_bound(torch.from_numpy(bet_levels)).numpy()
    return np.searchsorted(sig_levels, bounds * (1 - 1e-9)).astype(np.int64)


def bin_pmf(sigma: float, beta: float, half_width: int) -> tuple[np.ndarray, float]:
    """float64 probabilities of the integers -T..T and the mass outside, with scipy."""
    from scipy.special import gammaincc

    edges = np.arange(-half_width, half_width + 2, dtype=np.float64) - 0.5  # 2T+2 edges
    a = 1.0 / beta
    cdf = np.where(edges <= 0, 0.5 * gammaincc(a, (np.abs(edges) / sigma) ** beta),
                   1.0 - 0.5 * gammaincc(a, (np.abs(edges) / sigma) ** beta))
    pmf = np.diff(cdf)
    tail = float(cdf[0] + (1.0 - cdf[-1]))
    return pmf, tail
