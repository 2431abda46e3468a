"""The one table of runtimes, and the one way to get a backend or a codec on any of them.

    backend = load("onnxruntime", weights=None, models_dir=None, threads=2)
    codec, runs = make_codec("tensorrt")          # runs: what really runs, e.g. "tensorrt-fp16"

The edge, the cloud, the benchmarks and the export's verification all load through here, so a
runtime is added or changed in this table alone (as ultralytics' `export_formats()` lists its
formats). models_dir defaults to `codec.paths.models_dir(weights_id)`, where `roistream export`
writes: `$ROISTREAM_MODELS` when set, else the cache. The GPU runtimes' packages (onnxruntime-gpu,
tensorrt) are imported only when one of their backends is made.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .. import paths
from .backend import Backend, RuntimeUnavailable

if TYPE_CHECKING:  # the weights module imports torch; the table itself must not (for `roistream --help`)
    from ..weights import CodecWeights


@dataclass(frozen=True)
class Runtime:
    """One row of the table: what a runtime needs and how its backend is made."""

    name: str  # the value of --backend / --decoder
    package: str  # what it imports, lazily
    files: str  # what it reads besides the weights, and the command that writes it
    precisions: tuple[str, ...]  # the first is its default
    options: tuple[str, ...]  # the keyword options its backend takes besides precision
    make: Callable[..., Backend]

    def open(self, weights: CodecWeights, models_dir: Path, precision: str | None = None, **options) -> Backend:
        precision = precision or self.precisions[0]
        if precision not in self.precisions:
            raise ValueError(f"the {self.name} runtime runs {', '.join(self.precisions)}, not {precision!r}")
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise TypeError(f"the {self.name} runtime takes no option {', '.join(unknown)} "
                            f"(options: {', '.join(self.options) or 'none'})")
        return self.make(weights, models_dir, precision, **options)


def _torch(weights: CodecWeights, models_dir: Path, precision: str, *, device: str = "cpu") -> Backend:
    import torch

    from .torch_backend import TorchBackend
    from .transforms import TransformSet

    dtype = torch.float16 if precision == "fp16" else torch.float32
    return TorchBackend(TransformSet(weights), dtype=dtype, device=device)


def _onnxruntime(weights: CodecWeights, models_dir: Path, precision: str, **options) -> Backend:
    from .onnxruntime_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend(models_dir, options.pop("providers", None), weights_id=weights.weights_id,
                              precision=precision, **options)


def _tensorrt(weights: CodecWeights, models_dir: Path, precision: str, **options) -> Backend:
    from .tensorrt_backend import TensorRTBackend

    return TensorRTBackend(models_dir, precision, weights_id=weights.weights_id, **options)


RUNTIMES: tuple[Runtime, ...] = (
    Runtime("torch", "torch", "nothing: the weights file alone", ("fp32", "fp16"), ("device",), _torch),
    Runtime("onnxruntime", "onnxruntime (onnxruntime-gpu on NVIDIA)",
            "analysis.onnx, synthesis.onnx (and _fp16): `roistream export onnx`", ("fp32", "fp16"),
            ("providers", "threads", "strict", "fp16_synthesis", "profile", "trt_cache_dir"), _onnxruntime),
    Runtime("tensorrt", "tensorrt (NVIDIA GPU)", "analysis_fp16.engine, synthesis_fp32.engine, ...: "
            "`roistream export tensorrt`", ("fp16", "fp32"), ("fp16_synthesis",), _tensorrt),
)
RUNTIME_NAMES = tuple(r.name for r in RUNTIMES)


def runtime(name: str) -> Runtime:
    """The table row of a runtime name; ValueError naming the choices otherwise."""
    for row in RUNTIMES:
        if row.name == name:
            return row
    raise ValueError(f"unknown runtime {name!r} (choose from {', '.join(RUNTIME_NAMES)})")


def load(name: str, weights: CodecWeights | Path | str | None = None, models_dir: Path | str | None = None,
         **options) -> Backend:
    """A backend of runtime `name` for `weights` (default: the shipped weights), reading its models
    from `models_dir` (default: `codec.paths.models_dir`). options: `precision` and the row's options.
    Raises RuntimeUnavailable (with the command to run) when the runtime cannot run here."""
    from ..weights import load_codec_weights

    row = runtime(name)
    w = load_codec_weights(weights)
    folder = Path(models_dir) if models_dir else paths.models_dir(w.weights_id)
    return row.open(w, folder, **options)


def make_codec(name: str = "torch", weights: CodecWeights | Path | str | None = None,
               models_dir: Path | str | None = None, **options):
    """(codec.api.Codec, what really runs) on runtime `name`. The second item is read back from
    the backend (e.g. onnxruntime's provider), because onnxruntime-gpu falls back to the CPU
    silently when CUDA or TensorRT cannot start."""
    from ..api import Codec
    from ..weights import load_codec_weights

    w = load_codec_weights(weights)
    backend = load(name, w, models_dir, **options)
    codec = Codec(w, backend=backend)
    return codec, backend.name


__all__ = ["RUNTIMES", "RUNTIME_NAMES", "Runtime", "RuntimeUnavailable", "load", "make_codec", "runtime"]
