"""Encoder runtimes for the edge: torch (reference), ONNX Runtime and native TensorRT.

A thin layer over `export.backends` (the export issue owns the runtimes): `make_codec(backend)`
returns `(Codec, runtime name)`, where the name says what actually runs, e.g. `torch-cpu-float32`
or `onnxruntime-cpu-fp32`; ONNX Runtime reads the provider back from its session, because
onnxruntime-gpu falls back to the CPU silently when CUDA or TensorRT cannot start. Without exported
models, ONNX Runtime and TensorRT raise a clear error that says to run `roistream export onnx`
(or `roistream export tensorrt`) first.
"""

from __future__ import annotations

from pathlib import Path

from export.ort_backend import BackendUnavailable
from export.tensorrt import TensorRTUnavailable

BACKENDS = ("torch", "onnxruntime", "tensorrt")
RuntimeUnavailable = (BackendUnavailable, TensorRTUnavailable)

__all__ = ["BACKENDS", "BackendUnavailable", "RuntimeUnavailable", "TensorRTUnavailable", "make_codec",
           "onnx_model_dir"]


def onnx_model_dir(weights_id: str) -> Path:
    """Where `roistream export onnx` / `export tensorrt` put the models of a weights file."""
    from export.onnx import default_models_dir

    return default_models_dir(weights_id)


def make_codec(backend: str = "torch", weights: str | Path | None = None, *, onnx_dir: str | Path | None = None,
               precision: str | None = None, device: str = "cpu", providers: list[str] | None = None,
               threads: int | None = None):
    """(Codec, runtime description) for the chosen backend (see export.backends.make_codec)."""
    from export.backends import make_codec as _make_codec

    if backend not in BACKENDS:
        raise ValueError(f"unknown encoder backend {backend!r} (choose from {', '.join(BACKENDS)})")
    options: dict = {"precision": precision}
    if backend == "torch":
        options["device"] = device
    elif backend == "onnxruntime":
        options.update(providers=providers, threads=threads)
    return _make_codec(backend, weights, onnx_dir, **options)
