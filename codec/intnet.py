"""Integer-exact hyper-synthesis: the determinism guarantee of the bitstream.

The decoder derives every y symbol's table cell and mean from z-hat. If encoder and decoder
computed those even one ulp apart, an index would flip and decoding would derail (CompressAI #279,
Balle et al., ICLR 2019). So h_s is an integer network:

* weights: int8 per output channel, scale s_c a multiple of 2^-SCALE_FRAC; biases: integers;
* activations: fixed point with ACT_FRAC fraction bits, floored, clamped to [0, 2^15) after ReLU;
* outputs: fixed point with OUT_FRAC fraction bits.

It is trained quantization-aware (`QuantConv.forward` fakes exactly this arithmetic with
straight-through gradients) and evaluated at coding time by float64 convolutions over
integer-valued tensors, which are exact in any summation order while every partial sum stays below
2^53; `check_exact_bounds` proves that statically. `reference_forward` is a numpy int64
implementation used by the tests to confirm the float64 path.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

ACT_FRAC = 8
OUT_FRAC = 6
ACT_MAX = 2**15 - 1
OUT_MAX = 2**24
IN_MAX = 2**15 - 1  # |z-hat| is clamped to this before h_s
SCALE_FRAC = 18
WEIGHT_MAX = 127
EXACT_LIMIT = 2**53


def _ste(quantized: Tensor, x: Tensor) -> Tensor:
    return x + (quantized - x).detach()


class QuantConv(nn.Module):
    """A conv (or transposed conv) layer trained with the integer arithmetic of the decoder."""

    def __init__(self, conv: nn.Conv2d | nn.ConvTranspose2d, in_frac: int, out_frac: int, relu: bool):
        super().__init__()
        self.conv = conv
        self.in_frac, self.out_frac, self.relu = in_frac, out_frac, relu
        self.transposed = isinstance(conv, nn.ConvTranspose2d)
        self._out_dim = 1 if self.transposed else 0

    def weight_scale(self) -> Tensor:
        """Per-output-channel weight scale, rounded up to a multiple of 2^-SCALE_FRAC."""
        w = self.conv.weight.detach()
        dims = [d for d in range(w.dim()) if d != self._out_dim]
        s = w.abs().amax(dim=dims) / WEIGHT_MAX
        step = 2.0**-SCALE_FRAC
        return (torch.ceil(s / step) * step).clamp_min(step)

    def _shape(self, v: Tensor) -> Tensor:
        shape = [1] * self.conv.weight.dim()
        shape[self._out_dim] = -1
        return v.reshape(shape)

    def forward(self, x: Tensor) -> Tensor:
        s = self.weight_scale()
        w = self.conv.weight
        w_q = _ste(torch.round(w / self._shape(s)).clamp(-WEIGHT_MAX, WEIGHT_MAX) * self._shape(s), w)
        b_step = s * 2.0**-self.in_frac
        b_q = _ste(torch.round(self.conv.bias / b_step) * b_step, self.conv.bias)
        if self.transposed:
            y = F.conv_transpose2d(x, w_q, b_q, self.conv.stride, self.conv.padding, self.conv.output_padding)
        else:
            y = F.conv2d(x, w_q, b_q, self.conv.stride, self.conv.padding)
        unit = 2.0**self.out_frac
        y = _ste(torch.floor(y * unit) / unit, y)
        if self.relu:
            return y.clamp(0, ACT_MAX / unit)
        return y.clamp(-OUT_MAX / unit, OUT_MAX / unit)

    def export(self) -> dict[str, np.ndarray]:
        """Integer form: int8 weights, integer biases, per-channel multipliers."""
        s = self.weight_scale()
        w_int = torch.round(self.conv.weight.detach() / self._shape(s)).clamp(-WEIGHT_MAX, WEIGHT_MAX)
        b_int = torch.round(self.conv.bias.detach() / (s * 2.0**-self.in_frac))
        m = torch.round(s * 2.0**SCALE_FRAC)
        return {
            "weight": w_int.to(torch.int8).numpy(),
            "bias": b_int.to(torch.int64).numpy(),
            "multiplier": m.to(torch.int64).numpy(),
            "meta": np.array([int(self.transposed), self.conv.stride[0], self.conv.padding[0],
                              self.conv.output_padding[0] if self.transposed else 0,
                              self.in_frac, self.out_frac, int(self.relu)], dtype=np.int64),
        }


@dataclass(frozen=True)
class IntLayer:
    weight: np.ndarray  # int8 [out, in, k, k] (conv) or [in, out, k, k] (transposed)
    bias: np.ndarray  # int64 [out]
    multiplier: np.ndarray  # int64 [out]
    transposed: bool
    stride: int
    padding: int
    output_padding: int
    in_frac: int
    out_frac: int
    relu: bool

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "IntLayer":
        t, st, pad, opad, fin, fout, relu = (int(v) for v in arrays["meta"])
        return cls(arrays["weight"], arrays["bias"], arrays["multiplier"], bool(t), st, pad, opad, fin, fout, bool(relu))

    @cached_property
    def float64_params(self) -> tuple[Tensor, Tensor, Tensor]:
        """weight, bias [1, out, 1, 1] and multiplier [1, out, 1, 1] as float64 tensors (made once)."""
        return (torch.from_numpy(self.weight.astype(np.float64)),
                torch.from_numpy(self.bias.astype(np.float64)).view(1, -1, 1, 1),
                torch.from_numpy(self.multiplier.astype(np.float64)).view(1, -1, 1, 1))

    @property
    def shift(self) -> int:
        return SCALE_FRAC + self.in_frac - self.out_frac

    @property
    def in_max(self) -> int:
        return IN_MAX if self.in_frac == 0 else ACT_MAX

    def clamp(self, out: np.ndarray | Tensor):
        if self.relu:
            return out.clip(0, ACT_MAX)
        return out.clip(-OUT_MAX, OUT_MAX)


def check_exact_bounds(layers: list[IntLayer]) -> None:
    """Raise if any accumulator times its multiplier could reach 2^53 (float64 would round)."""
    for i, layer in enumerate(layers):
        w = np.abs(layer.weight.astype(np.int64))
        per_out = w.sum(axis=(0, 2, 3)) if layer.transposed else w.sum(axis=(1, 2, 3))
        acc = per_out * layer.in_max + np.abs(layer.bias)
        worst = int((acc * layer.multiplier).max())
        if worst >= EXACT_LIMIT:
            raise ValueError(f"h_s layer {i} may exceed 2^53 ({worst}); float64 evaluation would not be exact")


def run_float64(layers: list[IntLayer], z_hat: np.ndarray) -> np.ndarray:
    """Evaluate the integer network with float64 torch convolutions (exact, see module doc).

    z_hat: integer array [1, C, h, w]. Returns int64 [1, C_out, 4h, 4w] in OUT_FRAC fixed point.
    """
    x = torch.from_numpy(np.clip(z_hat, -IN_MAX, IN_MAX).astype(np.float64))
    with torch.no_grad():
        for layer in layers:
            w, bias, multiplier = layer.float64_params
            if layer.transposed:
                acc = F.conv_transpose2d(x, w, None, layer.stride, layer.padding, layer.output_padding)
            else:
                acc = F.conv2d(x, w, None, layer.stride, layer.padding)
            scaled = (acc + bias) * multiplier
            x = layer.clamp(torch.floor(scaled / 2.0**layer.shift))
    return x.numpy().astype(np.int64)


def _conv_int64(x: np.ndarray, w: np.ndarray, stride: int, padding: int) -> np.ndarray:
    """Plain int64 convolution (cross-correlation), x [C, H, W], w [O, C, k, k]."""
    k = w.shape[-1]
    xp = np.pad(x, ((0, 0), (padding, padding), (padding, padding)))
    ho = (xp.shape[1] - k) // stride + 1
    wo = (xp.shape[2] - k) // stride + 1
    out = np.zeros((w.shape[0], ho, wo), dtype=np.int64)
    for i in range(k):
        for j in range(k):
            patch = xp[:, i : i + stride * ho : stride, j : j + stride * wo : stride]
            out += np.einsum("oc,chw->ohw", w[:, :, i, j], patch)
    return out


def reference_forward(layers: list[IntLayer], z_hat: np.ndarray) -> np.ndarray:
    """numpy int64 implementation of `run_float64`, for tests."""
    x = np.clip(z_hat[0].astype(np.int64), -IN_MAX, IN_MAX)
    for layer in layers:
        w = layer.weight.astype(np.int64)
        if layer.transposed:
            s, k = layer.stride, w.shape[-1]
            up = np.zeros((x.shape[0], (x.shape[1] - 1) * s + 1, (x.shape[2] - 1) * s + 1), dtype=np.int64)
            up[:, ::s, ::s] = x
            lo, hi = k - 1 - layer.padding, k - 1 - layer.padding + layer.output_padding
            up = np.pad(up, ((0, 0), (lo, hi), (lo, hi)))
            acc = _conv_int64(up, w.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1], 1, 0)
        else:
            acc = _conv_int64(x, w, layer.stride, layer.padding)
        acc = acc + layer.bias[:, None, None]
        x = layer.clamp(np.floor_divide(acc * layer.multiplier[:, None, None], 2**layer.shift))
    return x[None]
