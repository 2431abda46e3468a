"""The weights file: float transforms (fp16), the integer hyper-synthesis and the coding tables.

Tables are built once here, when weights are saved, and only loaded afterwards: scipy's incomplete
gamma could differ in the last bit between platforms, and a decoder must use exactly the encoder's
probabilities. The weights id (a hash of every array) goes into each stream header, so a stream
made with other weights is refused instead of decoded into garbage.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import ggm, paths
from .intnet import IntLayer, OUT_FRAC, check_exact_bounds
from .model import ModelConfig, RoiCodecModel

FORMAT = "roistream-codec-weights/1"
TAIL_TARGET = 2.0**-16  # a table covers -T..T with at most this much mass outside (the escape)
Y_MAX_HALF_WIDTH = 511
Z_MAX_HALF_WIDTH = 255


@dataclass(frozen=True)
class RaggedTables:
    """One probability row per table cell: values -T_c..T_c, then the escape symbol."""

    offsets: np.ndarray  # int64 [cells + 1] into probs
    half_width: np.ndarray  # int64 [cells]
    probs: np.ndarray  # float32, concatenated rows of length 2 T_c + 2

    def row(self, cell: int) -> np.ndarray:
        return self.probs[self.offsets[cell] : self.offsets[cell + 1]]

    @property
    def cells(self) -> int:
        return int(self.half_width.size)


def _ragged(rows: list[np.ndarray]) -> RaggedTables:
    sizes = np.array([r.size for r in rows], dtype=np.int64)
    return RaggedTables(np.concatenate(([0], np.cumsum(sizes))).astype(np.int64),
                        (sizes - 2) // 2, np.concatenate(rows).astype(np.float32))


def _row(pmf: np.ndarray, tail: float) -> np.ndarray:
    return np.append(pmf, max(tail, 1e-12))


def _half_width_for(pmf_fn, max_half_width: int) -> int:
    t = 4
    while t < max_half_width:
        _, tail = pmf_fn(t)
        if tail <= TAIL_TARGET:
            break
        t = min(t * 2, max_half_width)
    lo, hi = t // 2, t
    while lo < hi:  # smallest T meeting the target within (t/2, t]
        mid = (lo + hi) // 2
        if pmf_fn(mid)[1] <= TAIL_TARGET:
            hi = mid
        else:
            lo = mid + 1
    return max(hi, 1)


def build_y_tables(sig: np.ndarray, bet: np.ndarray) -> RaggedTables:
    """GGM tables for every (beta level, sigma level) cell; cell id = beta_idx * len(sig) + sigma_idx."""
    rows = []
    for b in bet:
        for s in sig:
            fn = lambda t, s=s, b=b: ggm.bin_pmf(float(s), float(b), t)  # noqa: E731
            rows.append(_row(*fn(_half_width_for(fn, Y_MAX_HALF_WIDTH))))
    return _ragged(rows)


def build_z_tables(model: RoiCodecModel) -> RaggedTables:
    """Factorized-prior tables, one per z channel, centred on zero."""
    pmf, _ = model.z_prior.integer_pmfs(Z_MAX_HALF_WIDTH)
    center = Z_MAX_HALF_WIDTH
    rows = []
    for c in range(pmf.shape[0]):
        inside_mass = np.array([pmf[c][center - t : center + t + 1].sum() for t in range(Z_MAX_HALF_WIDTH + 1)])
        good = np.flatnonzero(1 - inside_mass <= TAIL_TARGET)
        t = max(int(good[0]) if good.size else Z_MAX_HALF_WIDTH, 1)
        inside = pmf[c][center - t : center + t + 1]
        rows.append(_row(inside, float(max(1 - inside.sum(), 0.0))))
    return _ragged(rows)


@dataclass(frozen=True)
class CodecWeights:
    """Everything a coder needs, as loaded from a weights file."""

    config: ModelConfig
    float_state: dict[str, torch.Tensor]
    hs_layers: list[IntLayer]
    y_tables: RaggedTables
    z_tables: RaggedTables
    sigma_thresholds: np.ndarray  # int64, OUT_FRAC fixed point of log sigma
    beta_thresholds: np.ndarray  # int64, OUT_FRAC fixed point of the beta logit
    min_sigma_index: np.ndarray  # int64 per beta level
    sigma_levels: np.ndarray
    beta_levels: np.ndarray
    weights_id: str
    notes: dict


def _weights_id(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(key.encode() + str(a.dtype).encode() + str(a.shape).encode() + a.tobytes())
    return h.hexdigest()[:16]


def export_weights(model: RoiCodecModel, path: Path, notes: dict | None = None) -> Path:
    """Write a weights file from a trained model (tables built here, once)."""
    model = model.float().cpu().eval()
    arrays: dict[str, np.ndarray] = {}
    # Every float parameter (the coder needs g_a, g_s, h_a and the gains; h_s and the z prior
    # travel too so that training can resume from this file on a fresh machine).
    for name, tensor in model.state_dict().items():
        arrays[f"float/{name}"] = tensor.detach().to(torch.float16).numpy()
    for i, layer in enumerate(model.h_s.layers):
        for key, value in layer.export().items():
            arrays[f"hs/{i}/{key}"] = value
    sig, bet = ggm.sigma_levels(), ggm.beta_levels()
    for prefix, tables in (("y", build_y_tables(sig, bet)), ("z", build_z_tables(model))):
        arrays[f"{prefix}/offsets"], arrays[f"{prefix}/half_width"] = tables.offsets, tables.half_width
        arrays[f"{prefix}/probs"] = tables.probs
    unit = 2**OUT_FRAC
    arrays["cells/sigma_thresholds"] = np.ceil(ggm.sigma_thresholds(sig) * unit).astype(np.int64)
    arrays["cells/beta_thresholds"] = np.ceil(ggm.beta_logit_thresholds(bet) * unit).astype(np.int64)
    arrays["cells/min_sigma_index"] = ggm.min_sigma_index(sig, bet)
    arrays["cells/sigma_levels"], arrays["cells/beta_levels"] = sig, bet
    meta = {"format": FORMAT, "config": model.config.as_dict(), "notes": notes or {}}
    arrays["meta"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    check_exact_bounds([IntLayer.from_arrays(_layer_arrays(arrays, i)) for i in range(len(model.h_s.layers))])
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    with paths.replacing(path) as tmp:
        tmp.write_bytes(buf.getvalue())
    return path


def _layer_arrays(arrays: dict[str, np.ndarray], i: int) -> dict[str, np.ndarray]:
    prefix = f"hs/{i}/"
    return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}


def load_weights(path: Path) -> CodecWeights:
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(arrays["meta"].tobytes())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} file (format {meta.get('format')!r})")
    n_layers = len({k.split("/")[1] for k in arrays if k.startswith("hs/")})
    layers = [IntLayer.from_arrays(_layer_arrays(arrays, i)) for i in range(n_layers)]
    check_exact_bounds(layers)

    def tables(prefix: str) -> RaggedTables:
        return RaggedTables(arrays[f"{prefix}/offsets"], arrays[f"{prefix}/half_width"], arrays[f"{prefix}/probs"])

    return CodecWeights(
        config=ModelConfig(**meta["config"]),
        float_state={k[len("float/"):]: torch.from_numpy(v.astype(np.float32))
                     for k, v in arrays.items() if k.startswith("float/")},
        hs_layers=layers, y_tables=tables("y"), z_tables=tables("z"),
        sigma_thresholds=arrays["cells/sigma_thresholds"], beta_thresholds=arrays["cells/beta_thresholds"],
        min_sigma_index=arrays["cells/min_sigma_index"], sigma_levels=arrays["cells/sigma_levels"],
        beta_levels=arrays["cells/beta_levels"], weights_id=_weights_id(arrays), notes=meta.get("notes", {}),
    )


def load_codec_weights(weights: CodecWeights | Path | str | None = None) -> CodecWeights:
    """Loaded weights as they are, a weights file, or None: the weights shipped with the package."""
    if isinstance(weights, CodecWeights):
        return weights
    return load_weights(Path(weights) if weights else paths.DEFAULT_WEIGHTS)


def model_from_weights(weights: CodecWeights) -> RoiCodecModel:
    """The float training model held in a weights file (to resume or fine-tune training)."""
    model = RoiCodecModel(weights.config)
    model.load_state_dict(weights.float_state)
    return model
