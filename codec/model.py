"""The ROI group codec: a mean-scale hyperprior with a GGM conditional, gain units and an
integer hyper-synthesis.

Training path: `forward(x, block_mask, q)` -> reconstruction and likelihoods for one group per
sample (the input is already zero outside the group's blocks, exactly as the encoder sees it).
Coding path: `codec.coder.GroupCoder` runs the same transforms with the exported integer h_s and
the stored tables, and turns them into bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import ggm
from .factorized import FactorizedPrior
from .gain import GainUnits
from .intnet import ACT_FRAC, OUT_FRAC, QuantConv
from .layers import GDN, conv, deconv, ste_round


@dataclass(frozen=True)
class ModelConfig:
    n: int = 96  # channels of z and of the hidden layers (of g_a / g_s too unless nt is set)
    m: int = 160  # channels of y
    nt: int = 0  # channels of the hidden layers of g_a / g_s (0 = n); see widen_transforms

    @property
    def transform_channels(self) -> int:
        return self.nt or self.n

    def as_dict(self) -> dict[str, int]:
        return {"n": self.n, "m": self.m, **({"nt": self.nt} if self.nt else {})}


class Analysis(nn.Module):
    """g_a: image [B,3,H,W] in [0,1] -> y [B,M,H/16,W/16]."""

    def __init__(self, n: int, m: int):
        super().__init__()
        self.net = nn.Sequential(conv(3, n), GDN(n), conv(n, n), GDN(n), conv(n, n), GDN(n), conv(n, m))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class Synthesis(nn.Module):
    """g_s: y-hat -> image."""

    def __init__(self, n: int, m: int):
        super().__init__()
        self.net = nn.Sequential(deconv(m, n), GDN(n, inverse=True), deconv(n, n), GDN(n, inverse=True),
                                 deconv(n, n), GDN(n, inverse=True), deconv(n, 3))

    def forward(self, y_hat: Tensor) -> Tensor:
        return self.net(y_hat)


class HyperAnalysis(nn.Module):
    """h_a: y -> z at 1/64 resolution."""

    def __init__(self, n: int, m: int):
        super().__init__()
        self.net = nn.Sequential(conv(m, n, 3, 1), nn.ReLU(inplace=True), conv(n, n), nn.ReLU(inplace=True), conv(n, n))

    def forward(self, y: Tensor) -> Tensor:
        return self.net(y)


class HyperSynthesis(nn.Module):
    """h_s: z-hat (integers) -> GGM mean, log-scale and shape logit per element of y.

    Every layer is a QuantConv, so this module computes (up to float rounding in training)
    what the integer runtime computes at coding time.
    """

    def __init__(self, n: int, m: int):
        super().__init__()
        mid = n * 3 // 2
        self.m = m
        self.layers = nn.ModuleList([
            QuantConv(deconv(n, n), 0, ACT_FRAC, relu=True),
            QuantConv(deconv(n, mid), ACT_FRAC, ACT_FRAC, relu=True),
            QuantConv(conv(mid, 3 * m, 3, 1), ACT_FRAC, OUT_FRAC, relu=False),
        ])

    def forward(self, z_hat: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = z_hat
        for layer in self.layers:
            x = layer(x)
        mean, log_sigma, beta_logit = x.split(self.m, dim=1)
        return mean, log_sigma, beta_logit


def cell_mask_to_hyper(block_mask: Tensor) -> Tensor:
    """[B,1,h,w] block mask -> [B,1,h/4,w/4] mask of hyper cells touching the group."""
    return F.max_pool2d(block_mask, 4)


class RoiCodecModel(nn.Module):
    def __init__(self, config: ModelConfig = ModelConfig()):
        super().__init__()
        self.config = config
        n, m = config.n, config.m
        self.g_a = Analysis(config.transform_channels, m)
        self.g_s = Synthesis(config.transform_channels, m)
        self.h_a = HyperAnalysis(n, m)
        self.h_s = HyperSynthesis(n, m)
        self.gains = GainUnits(m)
        self.z_prior = FactorizedPrior(n)

    def analyze(self, x: Tensor, block_mask: Tensor, q: Tensor) -> tuple[Tensor, Tensor]:
        """Encoder-side float transforms: gained y (masked to the group's cells) and z."""
        y = self.g_a(x).float() * self.gains.gain(q)[:, :, None, None]
        y = y * block_mask
        return y, self.h_a(y).float()

    def synthesize(self, y_hat: Tensor, q: Tensor) -> Tensor:
        return self.g_s(y_hat * self.gains.inverse(q)[:, :, None, None]).float()

    def forward(self, x: Tensor, block_mask: Tensor, q: Tensor) -> dict[str, Tensor]:
        """x: [B,3,H,W] zero outside the group; block_mask: [B,1,H/16,W/16] in {0,1}; q: [B]."""
        y, z = self.analyze(x, block_mask, q)
        hyper = cell_mask_to_hyper(block_mask)
        z_noisy = z + torch.empty_like(z).uniform_(-0.5, 0.5)
        z_likelihood = self.z_prior.likelihood(z_noisy)
        z_hat = ste_round(z) * hyper
        mean, log_sigma, beta_logit = self.h_s(z_hat)
        sigma, beta = ggm.bound_params(log_sigma, beta_logit)
        y_noisy = y + torch.empty_like(y).uniform_(-0.5, 0.5)
        y_likelihood = ggm.likelihood(y_noisy - mean, sigma, beta)
        y_hat = (ste_round(y - mean) + mean) * block_mask
        x_hat = self.synthesize(y_hat, q)
        return {"x_hat": x_hat, "y_likelihood": y_likelihood, "z_likelihood": z_likelihood,
                "y_mask": block_mask, "z_mask": hyper}


_GDN_CROSS_INIT = 1e-3  # gamma parameter between old and new channels: gamma = 1e-6, nearly no mixing yet


def _grow(old: Tensor, new: Tensor, out_dim: int, in_dim: int | None, fill: float = 0.0) -> Tensor:
    """`new` (freshly initialised, larger) with `old` in its leading corner and `fill` where old
    outputs would read new inputs, so the old outputs compute what they computed."""
    out = new.detach().clone()
    corner = [slice(None)] * new.dim()
    corner[out_dim] = slice(0, old.shape[out_dim])
    if in_dim is not None:
        corner[in_dim] = slice(0, old.shape[in_dim])
        out[tuple(corner)] = old
        corner[in_dim] = slice(old.shape[in_dim], None)
        out[tuple(corner)] = fill
    else:
        out[tuple(corner)] = old
    return out


def widen_transforms(model: RoiCodecModel, channels: int, seed: int = 0) -> RoiCodecModel:
    """A copy of `model` whose g_a / g_s hidden layers have `channels` channels (Net2Net-style growth).

    Old channels keep their weights and read nothing from the new ones (their GDN cross terms are
    1e-6), and nothing old reads the new channels (zero outgoing weights), so the widened model codes
    as the old one did, to float rounding. The new channels start from the default initialisation
    and have gradients at once: training adds capacity to a trained model instead of starting over.
    """
    old_n = model.config.transform_channels
    if channels <= old_n:
        raise ValueError(f"cannot widen the transforms from {old_n} to {channels} channels")
    torch.manual_seed(seed)
    wide = RoiCodecModel(ModelConfig(model.config.n, model.config.m, channels))
    state = wide.state_dict()
    old_state = model.state_dict()
    for name, old in old_state.items():
        new = state[name]
        if new.shape == old.shape:
            state[name] = old.clone()
        elif name.endswith("gamma"):  # both ways between old and new channels: 1e-6, so gradients flow
            state[name] = _grow(old, new, 0, 1, fill=_GDN_CROSS_INIT)
            state[name][old_n:, :old_n] = _GDN_CROSS_INIT
        elif name.endswith("beta") or name.endswith("bias"):
            state[name] = _grow(old, new, 0, None)
        else:  # conv [out, in, k, k]; transposed conv [in, out, k, k]
            transposed = name.startswith("g_s.")
            state[name] = _grow(old, new, 1 if transposed else 0, 0 if transposed else 1)
    wide.load_state_dict(state)
    return wide
