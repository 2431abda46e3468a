"""The coding path of one group: pixels -> bytes and bytes -> pixels.

A group is computed on its crop (the 64-px aligned bounding box of its blocks) with every pixel
outside its blocks set to zero; encoder and decoder derive the same crop from the transmitted
block mask. Table cells and means come from z-hat through the integer hyper-synthesis, so the
symbols decode exactly whatever hardware ran the analysis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import entropy
from .errors import CorruptStreamError
from .geometry import Crop, group_crop, hyper_mask, upsample_blocks
from .intnet import OUT_FRAC, run_float64
from .runtime.backend import Backend
from .runtime.torch_backend import TorchBackend
from .runtime.transforms import TransformSet
from .weights import CodecWeights


@dataclass
class GroupSymbols:
    """One group quantized: z-hat values [N, cells], y symbols and table cells [M, blocks] (in the
    coding order of the group's blocks), and the GGM means [M, h, w] over its crop."""

    local: np.ndarray  # bool block mask on the crop
    z_values: np.ndarray
    y_symbols: np.ndarray
    y_cells: np.ndarray
    mean: np.ndarray


@dataclass
class GroupPixels:
    """A decoded group on its crop: RGB float [3, h, w] in [0, 1], zero outside `pixel_mask`."""

    crop: Crop
    pixels: np.ndarray
    pixel_mask: np.ndarray  # bool [h, w]
    y_hat: np.ndarray  # [M, h/16, w/16] gained latents as decoded (for tests and analysis)


class ThresholdBins:
    """`np.searchsorted(thresholds, v, side="right")` for integer v through a lookup table over the
    thresholds' span (a few hundred entries): one table read per latent instead of a binary search."""

    def __init__(self, thresholds: np.ndarray):
        self.low = int(thresholds[0]) - 1
        span = np.arange(self.low, int(thresholds[-1]) + 1, dtype=np.int64)
        self.table = np.searchsorted(thresholds, span, side="right").astype(np.int64)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        return self.table[np.clip(values - self.low, 0, self.table.size - 1)]


class GroupCoder:
    def __init__(self, weights: CodecWeights, backend: Backend | None = None):
        self.weights = weights
        self.transforms = TransformSet(weights)
        self.backend: Backend = backend or TorchBackend(self.transforms)
        self.y_models = entropy.TableModels(weights.y_tables)
        self.z_models = entropy.TableModels(weights.z_tables)
        self._n_sigma = weights.sigma_levels.size
        self._sigma_bins = ThresholdBins(weights.sigma_thresholds)
        self._beta_bins = ThresholdBins(weights.beta_thresholds)

    def hyper_parameters(self, z_int: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """z-hat [N, h, w] (int64) -> GGM mean (float64) and table cell (int64), each [M, 4h, 4w]."""
        out = run_float64(self.weights.hs_layers, z_int[None])[0]
        m = self.weights.config.m
        mean_int, log_sigma_int, beta_logit_int = out[:m], out[m : 2 * m], out[2 * m :]
        beta_idx = self._beta_bins(beta_logit_int)
        sigma_idx = self._sigma_bins(log_sigma_int)
        sigma_idx = np.maximum(sigma_idx, self.weights.min_sigma_index[beta_idx])
        return mean_int / float(2**OUT_FRAC), beta_idx * self._n_sigma + sigma_idx

    def _z_cells(self, count: int) -> np.ndarray:
        return np.repeat(np.arange(self.weights.config.n, dtype=np.int64), count)

    def quantize(self, padded: np.ndarray, block_mask: np.ndarray, q_index: int) -> GroupSymbols:
        """Run the analysis of one group and quantize it: everything the entropy coder needs.

        padded: float32 [3, H, W] in [0, 1] on the 64-px grid; block_mask: bool block grid.
        """
        crop = group_crop(block_mask)
        local = block_mask[crop.block_slices]
        rows, cols = crop.pixel_slices
        x = padded[:, rows, cols] * upsample_blocks(local)[None]
        gain, _ = self.transforms.gain_vectors(q_index)
        y, z = self.backend.analyze(x[None].astype(np.float32), local[None, None].astype(np.float32), gain[None])
        z_mask = hyper_mask(local)
        z_int = np.rint(z[0]).astype(np.int64) * z_mask
        mean, cells = self.hyper_parameters(z_int)
        symbols = np.rint(y[0].astype(np.float64) - mean).astype(np.int64)
        return GroupSymbols(local, z_int[:, z_mask], symbols[:, local], cells[:, local], mean)

    def encode(self, padded: np.ndarray, block_mask: np.ndarray, q_index: int) -> tuple[bytes, np.ndarray]:
        """Code one group; returns the payload and the quantized latents (y-hat, gained) on its crop."""
        q = self.quantize(padded, block_mask, q_index)
        encoder = entropy.new_encoder()
        entropy.encode_symbols(encoder, q.z_values.ravel(), self._z_cells(q.z_values.shape[1]), self.z_models)
        entropy.encode_symbols(encoder, q.y_symbols.ravel(), q.y_cells.ravel(), self.y_models)
        y_hat = np.zeros(q.mean.shape)
        y_hat[:, q.local] = q.y_symbols + q.mean[:, q.local]
        return entropy.finish(encoder), y_hat

    def decode(self, payload: bytes, block_mask: np.ndarray, q_index: int) -> GroupPixels:
        """Bytes -> pixels, or CorruptStreamError: a payload is accepted only if it is exactly the
        coding of the symbols it decodes to (re-encoding them gives back its bytes), so garbage,
        trailing bytes and ciphertext read as plaintext are refused, never turned into wrong pixels."""
        crop = group_crop(block_mask)
        local = block_mask[crop.block_slices]
        z_mask = hyper_mask(local)
        z_cells = self._z_cells(int(z_mask.sum()))
        try:
            decoder = entropy.new_decoder(payload)
            z_values = entropy.decode_symbols(decoder, z_cells, self.z_models)
            z_int = np.zeros((self.weights.config.n, *z_mask.shape), np.int64)
            z_int[:, z_mask] = z_values.reshape(self.weights.config.n, -1)
            mean, cells = self.hyper_parameters(z_int)
            y_cells = cells[:, local].ravel()
            symbols = entropy.decode_symbols(decoder, y_cells, self.y_models)
            encoder = entropy.new_encoder()
            entropy.encode_symbols(encoder, z_values, z_cells, self.z_models)
            entropy.encode_symbols(encoder, symbols, y_cells, self.y_models)
            exact = entropy.finish(encoder) == bytes(payload)
        except CorruptStreamError:
            raise
        except BaseException as exc:  # noqa: BLE001 - a panic of constriction's is a BaseException
            if not entropy.is_decode_error(exc):
                raise
            raise CorruptStreamError(f"payload does not decode: {type(exc).__name__}: {exc}") from None
        if not exact:
            raise CorruptStreamError("payload is not the coding of the symbols it decodes to "
                                     "(damaged, trailing bytes, or ciphertext read as plaintext)")
        y_hat = np.zeros(mean.shape, np.float64)
        y_hat[:, local] = symbols.reshape(self.weights.config.m, -1) + mean[:, local]
        _, inverse = self.transforms.gain_vectors(q_index)
        pixels = self.backend.synthesize(y_hat[None].astype(np.float32), inverse[None])[0]
        if not np.isfinite(pixels).all():
            raise CorruptStreamError("payload decodes to latents the synthesis cannot represent")
        pixel_mask = upsample_blocks(local)
        return GroupPixels(crop, pixels * pixel_mask[None], pixel_mask, y_hat)
