"""One entry point for the edge (and benchmarks) to get a codec on any runtime.

    codec, name = make_codec("onnxruntime", weights=None, models_dir=None)

backend: "torch" (reference, CPU or `device="cuda"`), "onnxruntime" (exported ONNX graphs,
providers TensorRT > CUDA > CPU) or "tensorrt" (engines from `roistream export tensorrt`).
models_dir defaults to `export.onnx.default_models_dir(weights_id)`, where `roistream export onnx`
and `roistream export tensorrt` write by default.
"""

from __future__ import annotations

from pathlib import Path

BACKENDS = ("torch", "onnxruntime", "tensorrt")


def make_backend(backend: str, weights, models_dir: Path | str | None = None, *, precision: str | None = None,
                 providers: list[str] | None = None, threads: int | None = None, device: str = "cpu",
                 strict: bool = False):
    """A codec.runtime.Backend for loaded CodecWeights `weights`."""
    from .onnx import default_models_dir

    folder = Path(models_dir) if models_dir else default_models_dir(weights.weights_id)
    if backend == "torch":
        from codec.runtime import TorchBackend, TransformSet

        import torch

        dtype = torch.float16 if precision == "fp16" else torch.float32
        return TorchBackend(TransformSet(weights), dtype=dtype, device=device)
    if backend == "onnxruntime":
        from .ort_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(folder, providers, weights_id=weights.weights_id, precision=precision or "fp32",
                                  threads=threads, strict=strict)
    if backend == "tensorrt":
        from .tensorrt import TensorRTBackend

        return TensorRTBackend(folder, precision=precision or "fp16", weights_id=weights.weights_id)
    raise ValueError(f"unknown encoder backend {backend!r} (choose from {', '.join(BACKENDS)})")


def make_codec(backend: str = "torch", weights: Path | str | None = None, models_dir: Path | str | None = None,
               **options):
    """(codec.api.Codec, backend name) for a weights file (default: the shipped weights)."""
    from codec.api import Codec

    from .onnx import load_codec_weights

    w = load_codec_weights(weights)
    if backend == "torch" and not options.get("precision") and options.get("device", "cpu") == "cpu":
        codec = Codec(w)
    else:
        codec = Codec(w, backend=make_backend(backend, w, models_dir, **options))
    return codec, getattr(codec.coder.backend, "name", backend)
