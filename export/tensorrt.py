"""`roistream export tensorrt`: TensorRT engines from the exported ONNX graphs.

Engines are built with the tensorrt Python API (10.x or 11.x) with one optimization profile
(min / opt / max frame sizes and batch). fp16 engines are built from the `_fp16` ONNX graphs, which
carry their precision in the graph (strongly typed: TensorRT 11 has no FP16 builder flag; on 10.x
the network is created STRONGLY_TYPED too); fp32 engines are built with TF32 disabled.

Each `<graph>_<precision>.engine` gets a `.json` sidecar: weights id, TensorRT version, GPU, profile
and the sha256 of the ONNX it came from. Engines are specific to a GPU model and TensorRT version;
the runtime (`codec.runtime.tensorrt_backend`) refuses an engine whose sidecar names other weights
or another TensorRT version.

tensorrt and CUDA are imported lazily: everything here imports on a CPU-only machine, and
`codec.runtime.tensorrt_backend.tensorrt_status()` says why TensorRT cannot run when it cannot.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

from codec import paths
from codec.runtime.models import (ENGINE_PRECISIONS, GRAPHS, SIZE_MULTIPLE, FrameProfile, check_model_weights,
                                  engine_filename, engine_sidecar, model_filename)
from codec.runtime.tensorrt_backend import TensorRTBackend, import_tensorrt
from codec.weights import load_codec_weights

from .onnx import sha256

log = logging.getLogger(__name__)


def parse_size(text: str) -> tuple[int, int]:
    """'HxW' (e.g. 1088x1920) -> (H, W), both multiples of 64."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"not a frame size: {text!r} (HxW, e.g. 1088x1920)") from None
    if h <= 0 or w <= 0 or h % SIZE_MULTIPLE or w % SIZE_MULTIPLE:
        raise ValueError(f"frame size {text!r}: height and width must be positive multiples of {SIZE_MULTIPLE}")
    return h, w


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
    with paths.replacing(engine_path) as tmp:
        tmp.write_bytes(bytes(serialized))
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
            engine_sidecar(engine_path).write_text(json.dumps(sidecar, indent=2) + "\n")
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
