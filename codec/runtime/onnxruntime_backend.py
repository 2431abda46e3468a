"""`OnnxRuntimeBackend`: the codec's float transforms on ONNX Runtime.

Implements `codec.runtime.Backend` (numpy float32 in and out) with the graphs written by
`roistream export onnx`; onnxruntime (or onnxruntime-gpu) is imported when a backend is made.
Execution providers are tried in the order TensorRT > CUDA > CPU among those onnxruntime offers; the provider a session *actually* runs on is read back from the session
(`.provider`), because onnxruntime-gpu silently falls back to the CPU when CUDA or TensorRT cannot
start. Models exported from other weights are refused (`ModelMismatchError`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .backend import RuntimeUnavailable
from .models import GRAPHS, INPUTS, FrameProfile, check_model_weights, model_filename

log = logging.getLogger(__name__)

PROVIDER_ORDER = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
SHORT_NAMES = {"tensorrt": "TensorrtExecutionProvider", "trt": "TensorrtExecutionProvider",
               "cuda": "CUDAExecutionProvider", "cpu": "CPUExecutionProvider"}


def _full_provider_name(name: str) -> str:
    return SHORT_NAMES.get(name.lower(), name)


def session_options(threads: int | None = None):
    """Sessions that leave the cores to the numpy coding steps between their runs."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Idle intra-op threads would otherwise spin after each run and take the cores from the
    # entropy coding and integer hyper-synthesis that follow.
    opts.add_session_config_entry("session.force_spinning_stop", "1")
    if threads:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    return opts


def _trt_options(graph: str, cache_dir: Path, profile: FrameProfile | None) -> dict:
    """TensorRT EP options: engine and timing caches, and the min/opt/max profile of our inputs."""
    opts = {"trt_engine_cache_enable": "True", "trt_engine_cache_path": str(cache_dir),
            "trt_timing_cache_enable": "True", "trt_timing_cache_path": str(cache_dir)}
    if profile is not None:
        shapes = profile.input_shapes(graph)
        for i, key in enumerate(("trt_profile_min_shapes", "trt_profile_opt_shapes", "trt_profile_max_shapes")):
            opts[key] = ",".join(f"{name}:{'x'.join(str(d) for d in dims[i])}" for name, dims in shapes.items())
    return opts


class OnnxRuntimeBackend:
    """codec.runtime.Backend on onnxruntime sessions.

    models_dir: folder of `roistream export onnx`. providers: names in order of preference
    (full names or cpu/cuda/tensorrt; default TensorRT > CUDA > CPU among those available).
    weights_id: the loaded weights' id; models from other weights are refused.
    precision: "fp32" or "fp16" (the `_fp16` analysis graph; synthesis stays fp32 unless
    `fp16_synthesis`). strict: raise instead of warning when the session does not run on the first
    requested provider. threads: onnxruntime intra-op threads (default: onnxruntime's choice).
    """

    def __init__(self, models_dir: Path | str, providers: list[str] | tuple[str, ...] | None = None, *,
                 weights_id: str, precision: str = "fp32", threads: int | None = None,
                 strict: bool = False, fp16_synthesis: bool = False, profile: FrameProfile | None = None,
                 trt_cache_dir: Path | str | None = None):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise RuntimeUnavailable(f"onnxruntime is not installed ({exc}): `pip install onnxruntime` "
                                     f"(or onnxruntime-gpu), or use the torch runtime") from exc

        self.models_dir = Path(models_dir)
        self.weights_id = weights_id
        precisions = {"analysis": precision, "synthesis": precision if fp16_synthesis else "fp32"}
        files = {g: self.models_dir / model_filename(g, precisions[g]) for g in GRAPHS}
        missing = [str(p) for p in files.values() if not p.is_file()]
        if missing:
            raise RuntimeUnavailable(f"no exported models at {', '.join(missing)}: run `roistream export onnx "
                                     f"--out {self.models_dir}` first (or use --backend torch)")
        self.metadata = {g: check_model_weights(p, self.weights_id, g) for g, p in files.items()}
        available = ort.get_available_providers()
        requested = [_full_provider_name(p) for p in providers] if providers else list(PROVIDER_ORDER)
        wanted = [p for p in requested if p in available]
        if not wanted:
            raise RuntimeUnavailable(f"none of the providers {requested} is available in this onnxruntime "
                                     f"({available}); NVIDIA GPUs need `pip install roistream[gpu]`")
        if strict and wanted[0] != requested[0]:
            raise RuntimeUnavailable(f"{requested[0]} is not available in this onnxruntime ({available})")
        if "CPUExecutionProvider" not in wanted and not strict:
            wanted.append("CPUExecutionProvider")
        cache = Path(trt_cache_dir) if trt_cache_dir else self.models_dir / "ort-trt-cache"
        self.sessions = {}
        self.providers: dict[str, str] = {}
        self._input_names: dict[str, list[str]] = {}
        for graph, path in files.items():
            plist: list = []
            for p in wanted:
                if p == "TensorrtExecutionProvider":
                    cache.mkdir(parents=True, exist_ok=True)
                    plist.append((p, _trt_options(graph, cache, profile)))
                elif p == "CUDAExecutionProvider":  # fp32 stays fp32: no TF32 rounding of convolution inputs
                    plist.append((p, {"use_tf32": "0"}))
                else:
                    plist.append(p)
            try:
                sess = ort.InferenceSession(str(path), session_options(threads), providers=plist)
            except Exception as exc:  # a GPU provider that fails to start
                if strict:
                    raise RuntimeUnavailable(f"onnxruntime could not start {wanted[0]} for {path.name}: {exc}") from exc
                log.warning("onnxruntime providers %s failed for %s (%s); using the CPU", wanted, path.name, exc)
                sess = ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])
            self.sessions[graph] = sess
            self.providers[graph] = sess.get_providers()[0]
            self._input_names[graph] = [i.name for i in sess.get_inputs()]
            if self._input_names[graph] != list(INPUTS[graph]):
                raise RuntimeUnavailable(f"{path} has inputs {self._input_names[graph]}, expected {list(INPUTS[graph])}")
        self.requested = wanted
        self.provider = self.providers["analysis"]  # what actually runs the encoder
        if self.provider != wanted[0]:
            msg = f"onnxruntime was asked for {wanted[0]} but runs on {self.provider}"
            if strict:
                raise RuntimeUnavailable(msg)
            log.warning(msg)
        self.precision = precision
        short = self.provider.removesuffix("ExecutionProvider").lower()
        self.name = f"onnxruntime-{short}-{precision}"

    def _run(self, graph: str, *arrays: np.ndarray) -> list[np.ndarray]:
        feeds = {n: np.ascontiguousarray(a, np.float32) for n, a in zip(self._input_names[graph], arrays)}
        return self.sessions[graph].run(None, feeds)

    def analyze(self, x: np.ndarray, cell_mask: np.ndarray, gain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y, z = self._run("analysis", x, cell_mask, gain)
        return y, z

    def synthesize(self, y_hat: np.ndarray, inverse_gain: np.ndarray) -> np.ndarray:
        return self._run("synthesis", y_hat, inverse_gain)[0]
