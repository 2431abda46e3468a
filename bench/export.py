"""Export benchmark: onnxruntime vs torch eager on the CPU, same threads, same process.

    python -m bench.export [--images N] [--threads 2] [--quality 0.5] [--repeats 1] [--models DIR]

On each Kodak image coded as one group: the float transforms alone (analysis g_a + h_a, synthesis
g_s) and the whole group encode (transforms + integer hyper-synthesis + range coding) and decode,
for torch eager and for onnxruntime on the exported graphs, interleaved image by image so both
see the same machine load; the faster of `--repeats` runs counts. Every ONNX-encoded stream is
decoded by the standard torch decoder and must give the encoder's y-hat bit for bit. Writes
bench/results/export.json and export.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from codec import paths
from codec.metrics import psnr

from .common import md_table, write_results


def _timed(fn, repeats: int):
    best, out = float("inf"), None
    for _ in range(max(repeats, 1)):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def run(n_images: int, threads: int, quality: float, repeats: int, models: Path | None) -> dict:
    import onnxruntime as ort
    import torch

    from codec.api import Codec
    from codec.data import load_rgb
    from codec.bitstream import quantize_quality
    from codec.geometry import block_grid_shape, model_input
    from codec.runtime import load
    from codec.weights import load_codec_weights
    from export.onnx import ensure_exported

    torch.set_num_threads(threads)
    w = load_codec_weights(None)
    folder = models or ensure_exported(w)
    reference = Codec(w)
    onnx_be = load("onnxruntime", w, folder, providers=["cpu"], threads=threads)
    onnx_codec = Codec(w, backend=onnx_be)
    torch_be = reference.coder.backend
    q = quantize_quality(quality)
    gain, inverse = reference.coder.transforms.gain_vectors(q)
    images = sorted(paths.kodak_dir().glob("kodim*.png"))[:n_images]
    rows, per_image = [], []
    totals = {k: 0.0 for k in ("torch_analysis", "ort_analysis", "torch_synthesis", "ort_synthesis",
                                "torch_encode", "ort_encode", "torch_decode", "ort_decode")}
    max_y = max_z = 0.0
    exact = 0
    warm = model_input(load_rgb(images[0]))[None]
    warm_cells = np.ones((1, 1, warm.shape[2] // 16, warm.shape[3] // 16), np.float32)
    for be in (torch_be, onnx_be):  # first-run allocations and kernel selection stay out of the figures
        be.analyze(warm, warm_cells, gain[None])
    for i, path in enumerate(images):
        image = load_rgb(path)
        padded = model_input(image)
        x = padded[None]
        cells = np.ones((1, 1, x.shape[2] // 16, x.shape[3] // 16), np.float32)
        mask = np.ones(block_grid_shape(*image.shape[:2]), bool)
        t_ta, (y_t, z_t) = _timed(lambda: torch_be.analyze(x, cells, gain[None]), repeats)
        t_oa, (y_o, z_o) = _timed(lambda: onnx_be.analyze(x, cells, gain[None]), repeats)
        max_y, max_z = max(max_y, float(np.abs(y_o - y_t).max())), max(max_z, float(np.abs(z_o - z_t).max()))
        y_hat = np.rint(y_t).astype(np.float32)
        t_ts, _ = _timed(lambda: torch_be.synthesize(y_hat, inverse[None]), repeats)
        t_os, _ = _timed(lambda: onnx_be.synthesize(y_hat, inverse[None]), repeats)
        t_te, (payload_t, _) = _timed(lambda: reference.coder.encode(padded, mask, q), repeats)
        t_oe, (payload_o, y_enc) = _timed(lambda: onnx_codec.coder.encode(padded, mask, q), repeats)
        t_td, dec_t = _timed(lambda: reference.coder.decode(payload_t, mask, q), repeats)
        t_od, _ = _timed(lambda: onnx_codec.coder.decode(payload_o, mask, q), repeats)
        by_torch = reference.coder.decode(payload_o, mask, q)  # ONNX-encoded stream, standard decoder
        ok = bool(np.array_equal(by_torch.y_hat, y_enc))
        exact += ok
        h, wd = image.shape[:2]
        to_u8 = lambda d: np.rint(d.pixels.transpose(1, 2, 0)[:h, :wd] * 255).astype(np.uint8)  # noqa: E731
        p_t, p_o = psnr(to_u8(dec_t), image), psnr(to_u8(by_torch), image)
        for k, v in zip(totals, (t_ta, t_oa, t_ts, t_os, t_te, t_oe, t_td, t_od)):
            totals[k] += v
        per_image.append({"image": path.name, "size": [wd, h], "analysis_ms": [t_ta * 1e3, t_oa * 1e3],
                          "synthesis_ms": [t_ts * 1e3, t_os * 1e3], "encode_ms": [t_te * 1e3, t_oe * 1e3],
                          "decode_ms": [t_td * 1e3, t_od * 1e3], "bytes": [len(payload_t), len(payload_o)],
                          "psnr_db": [p_t, p_o], "decodes_exactly": ok})
        rows.append([path.name, t_te * 1e3, t_oe * 1e3, t_td * 1e3, t_od * 1e3, t_ta * 1e3, t_oa * 1e3,
                     round(p_t, 2), round(p_o, 2), "yes" if ok else "NO"])
        print(f"{i + 1}/{len(images)} {path.name}: encode {t_te * 1e3:.0f}/{t_oe * 1e3:.0f} ms, "
              f"decode {t_td * 1e3:.0f}/{t_od * 1e3:.0f} ms (torch/onnxruntime), exact={ok}", flush=True)
    n = len(images)
    ratio = lambda a, b: round(totals[a] / totals[b], 3)  # noqa: E731
    summary = {
        "images": n, "threads": threads, "quality": quality, "repeats": repeats,
        "onnxruntime": ort.__version__, "provider": onnx_be.provider,
        "mean_ms": {k: round(v / n * 1e3, 1) for k, v in totals.items()},
        "speedup_onnxruntime_over_torch": {"encode": ratio("torch_encode", "ort_encode"),
                                           "decode": ratio("torch_decode", "ort_decode"),
                                           "analysis": ratio("torch_analysis", "ort_analysis"),
                                           "synthesis": ratio("torch_synthesis", "ort_synthesis")},
        "parity_max_abs_diff": {"y": max_y, "z": max_z},
        "onnx_streams_decoding_exactly": f"{exact}/{n}",
    }
    return {"summary": summary, "per_image": per_image, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24, help="Kodak images (default all 24)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads = onnxruntime intra-op threads")
    parser.add_argument("--quality", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=3, help="time each step this many times, keep the best")
    parser.add_argument("--models", type=Path, help="exported ONNX folder (default: export to the cache)")
    args = parser.parse_args(argv)
    out = run(args.images, args.threads, args.quality, args.repeats, args.models)
    s = out["summary"]
    sp, ms = s["speedup_onnxruntime_over_torch"], s["mean_ms"]
    md = [f"# Export benchmark: onnxruntime vs torch eager (CPU, {s['threads']} threads)", "",
          f"{s['images']} Kodak images, one group per image, q={s['quality']}, best of {s['repeats']}; "
          f"onnxruntime {s['onnxruntime']} on {s['provider']}.", "",
          md_table(["", "torch ms", "onnxruntime ms", "speed-up"],
                   [["encode (group)", ms["torch_encode"], ms["ort_encode"], sp["encode"]],
                    ["decode (group)", ms["torch_decode"], ms["ort_decode"], sp["decode"]],
                    ["analysis transform", ms["torch_analysis"], ms["ort_analysis"], sp["analysis"]],
                    ["synthesis transform", ms["torch_synthesis"], ms["ort_synthesis"], sp["synthesis"]]]), "",
          f"Parity (max |onnxruntime - torch|): y {s['parity_max_abs_diff']['y']:.3g}, "
          f"z {s['parity_max_abs_diff']['z']:.3g}. ONNX-encoded streams decoded bit-exactly by the torch decoder: "
          f"{s['onnx_streams_decoding_exactly']}.", "", "## Per image", "",
          md_table(["image", "enc torch", "enc ort", "dec torch", "dec ort", "ana torch", "ana ort",
                    "PSNR torch", "PSNR ort→torch", "exact"], out["rows"])]
    write_results("export", {"summary": s, "per_image": out["per_image"]}, "\n".join(md))
    print("\n".join(md[:8]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
