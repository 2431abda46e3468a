"""`roistream export tensorrt`: TensorRT engines from the exported ONNX graphs, and a backend that
runs them.

Engines are built with the tensorrt Python API (10.x or 11.x) with one optimization profile
(min / opt / max frame sizes and batch). fp16 engines are built from the `_fp16` ONNX graphs, which
carry their precision in the graph (strongly typed: TensorRT 11 has no FP16 builder flag; on 10.x
the network is created STRONGLY_TYPED too); fp32 engines are built with TF32 disabled.

Each `<graph>_<precision>.engine` gets a `.json` sidecar: weights id, TensorRT version, GPU, profile
and the sha256 of the ONNX it came from. Engines are specific to a GPU model and TensorRT version;
`TensorRTBackend` refuses an engine whose sidecar names other weights or another TensorRT version.

tensorrt and CUDA are imported lazily: everything here imports on a CPU-only machine, and
`tensorrt_status()` says why TensorRT cannot run when it cannot.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .onnx import GRAPHS, INPUTS, SIZE_MULTIPLE, check_model_weights, model_filename, sha256

log = logging.getLogger(__name__)

ENGINE_PRECISIONS = ("fp16", "fp32")


class TensorRTUnavailable(RuntimeError):
    """TensorRT (or a CUDA device for it) is not available on this machine."""


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
        raise TensorRTUnavailable(reason)
    import tensorrt as trt

    major = int(trt.__version__.split(".")[0])
    if major < 10:
        raise TensorRTUnavailable(f"tensorrt {trt.__version__} is too old: roistream needs 10.x or newer")
    return trt


def parse_size(text: str) -> tuple[int, int]:
    """'HxW' (e.g. 1088x1920) -> (H, W), both multiples of 64."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"not a frame size: {text!r} (HxW, e.g. 1088x1920)") from None
    if h <= 0 or w <= 0 or h % SIZE_MULTIPLE or w % SIZE_MULTIPLE:
        raise ValueError(f"frame size {text!r}: height and width must be positive multiples of {SIZE_MULTIPLE}")
    return h, w


@dataclass(frozen=True)
class FrameProfile:
    """Padded frame sizes (H, W) and batch sizes of an optimization profile: min / opt / max.

    Defaults: from one 64x64 hyper cell to padded 1080p, tuned for padded 720p, batch 1.
    The edge codes group crops, so every crop size between min and max must be allowed.
    """

    min: tuple[int, int] = (64, 64)
    opt: tuple[int, int] = (768, 1280)
    max: tuple[int, int] = (1088, 1920)
    batch: tuple[int, int, int] = (1, 1, 1)

    def __post_init__(self):
        for size in (self.min, self.opt, self.max):
            if size[0] % SIZE_MULTIPLE or size[1] % SIZE_MULTIPLE or min(size) <= 0:
                raise ValueError(f"profile size {size}: multiples of {SIZE_MULTIPLE} needed")
        for i in range(2):
            if not self.min[i] <= self.opt[i] <= self.max[i]:
                raise ValueError(f"profile needs min <= opt <= max, got {self.min} {self.opt} {self.max}")
        if not 1 <= self.batch[0] <= self.batch[1] <= self.batch[2]:
            raise ValueError(f"profile batch needs 1 <= min <= opt <= max, got {self.batch}")

    def input_shapes(self, graph: str, m: int = 160) -> dict[str, tuple[tuple[int, ...], ...]]:
        """{input: (min shape, opt shape, max shape)} of a graph."""
        sizes = (self.min, self.opt, self.max)
        if graph == "analysis":
            return {"x": tuple((b, 3, h, w) for b, (h, w) in zip(self.batch, sizes)),
                    "cell_mask": tuple((b, 1, h // 16, w // 16) for b, (h, w) in zip(self.batch, sizes)),
                    "gain": tuple((b, m) for b in self.batch)}
        return {"y_hat": tuple((b, m, h // 16, w // 16) for b, (h, w) in zip(self.batch, sizes)),
                "inverse_gain": tuple((b, m) for b in self.batch)}

    def allows(self, height: int, width: int, batch: int = 1) -> bool:
        return (self.min[0] <= height <= self.max[0] and self.min[1] <= width <= self.max[1]
                and self.batch[0] <= batch <= self.batch[2])


def engine_filename(graph: str, precision: str) -> str:
    if precision not in ENGINE_PRECISIONS:
        raise ValueError(f"engine precision must be one of {ENGINE_PRECISIONS}, got {precision!r}")
    return f"{graph}_{precision}.engine"


def _network_flags(trt) -> int:
    flags = 0
    # strongly typed: the precision is the ONNX graph's (always on and required in TensorRT 11)
    strongly = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if strongly is not None:
        flags |= 1 << int(strongly)
    return flags


def build_engine(onnx_path: Path, engine_path: Path, shapes: dict, *, workspace_gb: float = 4.0,
                 timing_cache: Path | None = None) -> dict:
    """Build and serialize one engine. shapes: {input: (min, opt, max)}. Returns build facts."""
    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(_network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * 2**30))
    tf32 = getattr(trt.BuilderFlag, "TF32", None)
    if tf32 is not None:  # fp32 engines must stay fp32 (TF32 would round the convolutions' inputs)
        config.clear_flag(tf32)
    cache = None
    if timing_cache is not None:
        blob = timing_cache.read_bytes() if timing_cache.is_file() else b""
        cache = config.create_timing_cache(blob)
        config.set_timing_cache(cache, ignore_mismatch=False)
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in shapes.items():
        profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(profile)
    start = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path} (see the log above)")
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = engine_path.with_suffix(".tmp")
    tmp.write_bytes(bytes(serialized))
    tmp.replace(engine_path)
    if cache is not None:
        timing_cache.write_bytes(bytes(cache.serialize()))
    return {"build_seconds": round(time.perf_counter() - start, 1), "bytes": engine_path.stat().st_size}


def _gpu_facts() -> dict:
    import torch

    props = torch.cuda.get_device_properties(0)
    return {"gpu": props.name, "compute_capability": f"{props.major}.{props.minor}"}


def build_engines(models_dir: Path | str, out_dir: Path | str | None = None, *, weights=None,
                  precisions: tuple[str, ...] = ENGINE_PRECISIONS, profile: FrameProfile = FrameProfile(),
                  graphs: tuple[str, ...] = GRAPHS, workspace_gb: float = 4.0, verify: bool = True,
                  verify_images: int = 2) -> dict:
    """Engines for every graph and precision from the ONNX files in models_dir (into out_dir,
    default the same folder), each checked against the weights; then verified like the ONNX export."""
    from .onnx import load_codec_weights

    trt = import_tensorrt()
    w = load_codec_weights(weights)
    models_dir = Path(models_dir)
    out = Path(out_dir) if out_dir else models_dir
    built: dict[str, dict] = {}
    for precision in precisions:
        for graph in graphs:
            onnx_path = models_dir / model_filename(graph, precision)
            if not onnx_path.is_file():
                raise FileNotFoundError(f"{onnx_path} is missing: run `roistream export onnx --out {models_dir}` first")
            check_model_weights(onnx_path, w.weights_id, graph)
            engine_path = out / engine_filename(graph, precision)
            facts = build_engine(onnx_path, engine_path, profile.input_shapes(graph, w.config.m),
                                 workspace_gb=workspace_gb, timing_cache=out / "timing.cache")
            sidecar = {"weights_id": w.weights_id, "graph": graph, "precision": precision,
                       "tensorrt": trt.__version__, **_gpu_facts(), "profile": asdict(profile),
                       "onnx": onnx_path.name, "onnx_sha256": sha256(onnx_path), **facts}
            engine_path.with_suffix(".engine.json").write_text(json.dumps(sidecar, indent=2) + "\n")
            built[engine_path.name] = sidecar
            log.info("built %s in %.1f s", engine_path, facts["build_seconds"])
    report = {"out": str(out), "engines": built}
    if verify:
        from .verify import FP16_TOLERANCE, verify_backend

        report["verification"] = {}
        for precision in precisions:
            backend = TensorRTBackend(out, precision=precision, weights_id=w.weights_id)
            # TensorRT picks its own convolution kernels: fp32 gets 1e-3, not ONNX Runtime's 1e-4
            report["verification"][precision] = verify_backend(
                backend, w, n_images=verify_images, label=backend.name,
                tolerance=1e-3 if precision == "fp32" else FP16_TOLERANCE)
    return report


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
            raise TensorRTUnavailable(f"TensorRT could not load {path} (built for another GPU or TensorRT version?)")
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
    synthesis engine of the same precision when `fp16_synthesis`); weights_id: the loaded weights
    (default: the shipped weights), engines from other weights are refused.
    """

    def __init__(self, engine_dir: Path | str, precision: str = "fp16", *, weights_id: str | None = None,
                 fp16_synthesis: bool = False):
        trt = import_tensorrt()
        from .ort_backend import default_weights_id

        self.engine_dir = Path(engine_dir)
        self.weights_id = weights_id or default_weights_id()
        self.precision = precision
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engines: dict[str, _Engine] = {}
        self.sidecars: dict[str, dict] = {}
        for graph in GRAPHS:
            p = precision if (graph == "analysis" or fp16_synthesis) else "fp32"
            path = self.engine_dir / engine_filename(graph, p)
            if not path.is_file():
                raise TensorRTUnavailable(f"no engine at {path}: build it with `roistream export tensorrt "
                                          f"--models {self.engine_dir} --precision {p}`")
            meta_path = path.with_suffix(".engine.json")
            meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
            if meta.get("weights_id") != self.weights_id:
                from .onnx import ModelMismatchError

                raise ModelMismatchError(f"{path} was built from weights {meta.get('weights_id')}, the loaded weights "
                                         f"are {self.weights_id}: rebuild with `roistream export tensorrt`")
            if meta.get("tensorrt") != trt.__version__:
                raise TensorRTUnavailable(f"{path} was built with TensorRT {meta.get('tensorrt')}, this is "
                                          f"{trt.__version__}: rebuild the engines on this machine")
            self.sidecars[graph] = meta
            self.engines[graph] = _Engine(trt, self.runtime, path)
            if sorted(self.engines[graph].inputs) != sorted(INPUTS[graph]):
                raise TensorRTUnavailable(f"{path} has inputs {self.engines[graph].inputs}, expected {INPUTS[graph]}")
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
