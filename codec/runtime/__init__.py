"""Runtimes of the codec's float transforms: one registry, one model-file contract, three backends.

    from codec.runtime import load, make_codec, RUNTIMES
    codec, runs = make_codec("onnxruntime")       # (codec.api.Codec, e.g. "onnxruntime-cpu-fp32")

* `registry`: the table of runtimes (`RUNTIMES`), `load(name, weights, models_dir, **options)`
  and `make_codec`; the only place that decides which backend runs.
* `models`: the contract with `roistream export` (graph names, inputs, file names, size multiple,
  TensorRT profile, weights-id checks).
* `backend`: the `Backend` protocol and `RuntimeUnavailable`, the one error of a runtime that
  cannot run here.
* `transforms` (the torch graphs), `torch_backend`, `onnxruntime_backend`, `tensorrt_backend`.

`export/` builds and verifies the files this package reads; it never runs a model itself.
"""

from .backend import Backend, RuntimeUnavailable
from .models import ModelMismatchError
from .registry import RUNTIME_NAMES, RUNTIMES, Runtime, load, make_codec, runtime

__all__ = ["RUNTIMES", "RUNTIME_NAMES", "Backend", "ModelMismatchError", "Runtime", "RuntimeUnavailable", "load",
           "make_codec", "runtime"]
