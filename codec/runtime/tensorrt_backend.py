"""`TensorRTBackend`: the codec's float transforms on TensorRT engines built by
`roistream export tensorrt`.

tensorrt and CUDA are imported inside the functions, so this module imports on a CPU-only machine
and `tensorrt_status()` can say why TensorRT cannot run. Buffers are torch CUDA tensors: torch is
already there for the reference backend, so TensorRT needs no second CUDA binding.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .backend import RuntimeUnavailable
from .models import GRAPHS, INPUTS, FrameProfile, check_engine_weights, engine_filename


def tensorrt_status() -> tuple[bool, str]:
    """(usable, reason): tensorrt importable and a CUDA device visible."""
    try:
        import tensorrt as trt
    except Exception as exc:  # ImportError, or a broken install that fails to load its libraries
        return False, (f"the tensorrt Python package is not importable ({type(exc).__name__}: {exc}); install it "
                       f"on an NVIDIA machine with `pip install roistream[gpu]` (or use the edge Docker image)")
    try:
        import torch

        if not torch.cuda.is_available():
            return False, f"tensorrt {trt.__version__} is installed but no CUDA device is visible"
    except Exception as exc:
        return False, f"cannot query CUDA through torch: {exc}"
    return True, f"tensorrt {trt.__version__} on {torch.cuda.get_device_name(0)}"


def import_tensorrt():
    ok, reason = tensorrt_status()
    if not ok:
        raise RuntimeUnavailable(reason)
    import tensorrt as trt

    major = int(trt.__version__.split(".")[0])
    if major < 10:
        raise RuntimeUnavailable(f"tensorrt {trt.__version__} is too old: roistream needs 10.x or newer")
    return trt


_TORCH_DTYPES = {}


def _torch_dtype(trt, dtype):
    import torch

    if not _TORCH_DTYPES:
        _TORCH_DTYPES.update({trt.float32: torch.float32, trt.float16: torch.float16, trt.int32: torch.int32})
        if hasattr(trt, "bfloat16"):
            _TORCH_DTYPES[trt.bfloat16] = torch.bfloat16
    return _TORCH_DTYPES[dtype]


class _Engine:
    """One deserialized engine with its execution context; buffers are torch CUDA tensors."""

    def __init__(self, trt, runtime, path: Path):
        self.path = path
        self.engine = runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise RuntimeUnavailable(f"TensorRT could not load {path} (built for another GPU or TensorRT version?)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.dtypes = {n: _torch_dtype(trt, self.engine.get_tensor_dtype(n)) for n in names}

    def __call__(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        stream = torch.cuda.current_stream()
        keep = []
        for name in self.inputs:
            t = torch.from_numpy(np.ascontiguousarray(feeds[name])).to("cuda", self.dtypes[name])
            keep.append(t)
            if not self.context.set_input_shape(name, tuple(t.shape)):
                raise ValueError(f"{self.path.name}: input {name} {tuple(t.shape)} is outside the engine's profile")
            self.context.set_tensor_address(name, t.data_ptr())
        outs = {}
        for name in self.outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            outs[name] = torch.empty(shape, dtype=self.dtypes[name], device="cuda")
            self.context.set_tensor_address(name, outs[name].data_ptr())
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError(f"TensorRT failed to run {self.path.name}")
        stream.synchronize()
        return {name: t.float().cpu().numpy() for name, t in outs.items()}


class TensorRTBackend:
    """codec.runtime.Backend on TensorRT engines built by `build_engines`.

    engine_dir: folder with `analysis_<precision>.engine` (and `synthesis_fp32.engine`, or the
    synthesis engine of the same precision when `fp16_synthesis`); weights_id: the loaded weights'
    id, engines from other weights are refused.
    """

    def __init__(self, engine_dir: Path | str, precision: str = "fp16", *, weights_id: str,
                 fp16_synthesis: bool = False):
        trt = import_tensorrt()
        self.engine_dir = Path(engine_dir)
        self.weights_id = weights_id
        self.precision = precision
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engines: dict[str, _Engine] = {}
        self.sidecars: dict[str, dict] = {}
        for graph in GRAPHS:
            p = precision if (graph == "analysis" or fp16_synthesis) else "fp32"
            path = self.engine_dir / engine_filename(graph, p)
            if not path.is_file():
                raise RuntimeUnavailable(f"no engine at {path}: build it with `roistream export tensorrt "
                                          f"--models {self.engine_dir} --precision {p}`")
            meta = check_engine_weights(path, self.weights_id)
            if meta.get("tensorrt") != trt.__version__:
                raise RuntimeUnavailable(f"{path} was built with TensorRT {meta.get('tensorrt')}, this is "
                                          f"{trt.__version__}: rebuild the engines on this machine")
            self.sidecars[graph] = meta
            self.engines[graph] = _Engine(trt, self.runtime, path)
            if sorted(self.engines[graph].inputs) != sorted(INPUTS[graph]):
                raise RuntimeUnavailable(f"{path} has inputs {self.engines[graph].inputs}, expected {INPUTS[graph]}")
        self.profile = FrameProfile(**{k: tuple(v) for k, v in self.sidecars["analysis"]["profile"].items()})
        self.provider = "TensorRT"
        self.name = f"tensorrt-{precision}"

    def _check(self, x: np.ndarray) -> None:
        b, _, h, w = x.shape
        if not self.profile.allows(h, w, b):
            raise ValueError(f"a {b}x{h}x{w} input is outside the engines' profile (min {self.profile.min}, max "
                             f"{self.profile.max}, batch {self.profile.batch}); rebuild with a larger --max")

    def analyze(self, x: np.ndarray, cell_mask: np.ndarray, gain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self._check(x)
        out = self.engines["analysis"]({"x": x, "cell_mask": cell_mask, "gain": gain})
        return out["y"], out["z"]

    def synthesize(self, y_hat: np.ndarray, inverse_gain: np.ndarray) -> np.ndarray:
        b, _, h, w = y_hat.shape
        self._check(np.empty((b, 0, h * 16, w * 16), np.float32))
        return self.engines["synthesis"]({"y_hat": y_hat, "inverse_gain": inverse_gain})["image"]
