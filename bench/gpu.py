"""GPU encoder benchmark, for an NVIDIA machine with `pip install .[gpu]`.

    python -m bench.gpu [--frames 20] [--images 4] [--models DIR] [--skip-build]

Encoder frames per second at 720p (1280x720, padded 768x1280) and 1080p (1920x1080, padded
1088x1920), from Kodak images resized to those sizes, for each runtime that can run here:

* torch CUDA fp32 and fp16 (eager),
* onnxruntime CUDA provider (fp32 graphs, TF32 off),
* onnxruntime TensorRT provider (fp16 graphs),
* TensorRT fp16 engines (and fp32) built by `roistream export tensorrt`.

Two figures per runtime: the analysis transform alone (as the Backend API runs it: host arrays in
and out) and the whole encode of a frame as one group (transform + integer hyper-synthesis + range
coding, on the CPU). Each runtime's streams are then decoded on the CPU by the standard torch
decoder, whose y-hat must equal the encoder's bit for bit (reduced-precision analysis must not
break decodability). A runtime that cannot start is listed with the reason, never silently
replaced: onnxruntime's providers are checked on the session (`get_providers()`).

Without a CUDA device it prints why and exits 0. Writes bench/results/gpu.json and gpu.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from codec import paths

SIZES = {"720p": (720, 1280), "1080p": (1080, 1920)}


def _frames(n_images: int, height: int, width: int) -> list[np.ndarray]:
    import cv2

    from codec.data import load_rgb

    files = sorted(paths.kodak_dir().glob("kodim*.png"))[:n_images]
    return [cv2.resize(load_rgb(p), (width, height), interpolation=cv2.INTER_CUBIC) for p in files]


def _backends(w, folder: Path, build: bool) -> tuple[dict, dict]:
    """{name: backend} and {name: reason it is missing}."""
    import onnxruntime as ort

    from codec.runtime import load
    from codec.runtime.models import FrameProfile
    from codec.runtime.tensorrt_backend import tensorrt_status
    from export.tensorrt import build_engines

    ready, missing = {}, {}
    ready["torch-cuda-fp32"] = load("torch", w, folder, device="cuda")
    ready["torch-cuda-fp16"] = load("torch", w, folder, precision="fp16", device="cuda")
    available = ort.get_available_providers()
    for name, provider, precision in (("ort-cuda-fp32", "CUDAExecutionProvider", "fp32"),
                                      ("ort-tensorrt-fp16", "TensorrtExecutionProvider", "fp16")):
        if provider not in available:
            missing[name] = f"{provider} not in onnxruntime's providers {available} (is onnxruntime-gpu installed?)"
            continue
        try:
            profile = FrameProfile(min=(64, 64), opt=(768, 1280), max=(1088, 1920))
            ready[name] = load("onnxruntime", w, folder, precision=precision, providers=[provider], strict=True,
                               profile=profile)
        except Exception as exc:
            missing[name] = f"{provider} did not start: {exc}"
    ok, reason = tensorrt_status()
    if not ok:
        missing["tensorrt-fp16"] = missing["tensorrt-fp32"] = reason
        return ready, missing
    try:
        if build or not (folder / "analysis_fp16.engine").is_file():
            print("building TensorRT engines (min 64x64, opt 768x1280, max 1088x1920) ...", flush=True)
            build_engines(folder, weights=w, verify=False)
        for precision in ("fp16", "fp32"):
            ready[f"tensorrt-{precision}"] = load("tensorrt", w, folder, precision=precision)
    except Exception as exc:
        missing["tensorrt-fp16"] = missing.get("tensorrt-fp16") or f"engine build/load failed: {exc}"
    return ready, missing


def _fps(fn, frames: list, n: int) -> float:
    for f in frames[:2]:  # warm-up (TensorRT EP builds its engine, cuDNN picks algorithms)
        fn(f)
    t = time.perf_counter()
    for i in range(n):
        fn(frames[i % len(frames)])
    return n / (time.perf_counter() - t)


def run(n_frames: int, n_images: int, models: Path | None, build: bool) -> dict | None:
    import torch

    if not torch.cuda.is_available():
        return None
    from codec.api import Codec
    from codec.bitstream import quantize_quality
    from codec.geometry import block_grid_shape, model_input
    from codec.weights import load_codec_weights
    from export.onnx import ensure_exported

    w = load_codec_weights(None)
    folder = models or ensure_exported(w)
    backends, missing = _backends(w, folder, build)
    reference = Codec(w)  # CPU torch: the standard decoder
    q = quantize_quality(0.5)
    gain, _ = reference.coder.transforms.gain_vectors(q)
    results: dict = {"gpu": torch.cuda.get_device_name(0), "missing": missing, "fps": {}, "exact_decoding": {}}
    for label, (h, wd) in SIZES.items():
        frames = _frames(n_images, h, wd)
        padded = [model_input(f) for f in frames]
        xs = [p[None] for p in padded]
        cells = np.ones((1, 1, xs[0].shape[2] // 16, xs[0].shape[3] // 16), np.float32)
        mask = np.ones(block_grid_shape(h, wd), bool)
        for name, be in backends.items():
            codec = Codec(w, backend=be)
            try:
                ana = _fps(lambda x: be.analyze(x, cells, gain[None]), xs, n_frames)
                enc = _fps(lambda p: codec.coder.encode(p, mask, q), padded, max(n_frames // 4, 2))
            except Exception as exc:
                missing[f"{name}@{label}"] = f"failed: {exc}"
                continue
            exact = 0
            for p in padded:
                payload, y_enc = codec.coder.encode(p, mask, q)
                exact += bool(np.array_equal(reference.coder.decode(payload, mask, q).y_hat, y_enc))
            results["fps"].setdefault(name, {})[label] = {"analysis_fps": round(ana, 1), "encode_fps": round(enc, 2)}
            results["exact_decoding"].setdefault(name, {})[label] = f"{exact}/{len(padded)}"
            print(f"{label} {name}: analysis {ana:.1f} fps, full encode {enc:.2f} fps, exact {exact}/{len(padded)}",
                  flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20, help="timed frames per runtime and size")
    parser.add_argument("--images", type=int, default=4, help="Kodak images resized to each size")
    parser.add_argument("--models", type=Path, help="exported models/engines (default: the export cache)")
    parser.add_argument("--build", action="store_true", help="rebuild the TensorRT engines")
    args = parser.parse_args(argv)
    results = run(args.frames, args.images, args.models, args.build)
    if results is None:
        print("CUDA is not available on this machine: skipping the GPU benchmark (run it on an NVIDIA machine "
              "with `pip install .[gpu]`; nothing was measured)")
        return 0
    from .common import md_table, write_results

    rows = []
    for name, per in results["fps"].items():
        for label in SIZES:
            if label in per:
                rows.append([name, label, per[label]["analysis_fps"], per[label]["encode_fps"],
                             results["exact_decoding"][name][label]])
    md = [f"# GPU encoder benchmark on {results['gpu']}", "",
          "analysis = the float analysis transform as the Backend API runs it (host arrays in/out); encode = a "
          "whole frame coded as one group (transform + integer hyper-synthesis + range coding on the CPU).", "",
          md_table(["runtime", "size", "analysis fps", "encode fps", "decodes exactly on CPU"], rows), ""]
    md += [f"- not measured: {k}: {v}" for k, v in results["missing"].items()]
    write_results("gpu", results, "\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
