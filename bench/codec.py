"""Codec-core benchmark: speed, entropy-coding throughput, structured-bitstream overhead.

    python -m bench.codec [--images DIR] [--quality Q] [--threads N]

On each image: encode and decode seconds (one group), the same image coded as 1 group and as 4
irregular groups at equal quality (bits overhead), and the range coder's symbols/s on the real
latents. Writes bench/results/codec.json and codec.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from codec import paths
from codec.metrics import psnr

from .common import md_table, write_results


def voronoi_groups(grid: tuple[int, int], count: int, seed: int = 0) -> np.ndarray:
    """`count` irregular groups on the block grid: nearest of `count` random seeds, so boundaries
    cut through hyper cells (the overhead case) instead of following the 64-px grid."""
    rng = np.random.default_rng(seed)
    seeds = rng.uniform((0, 0), grid, size=(count, 2))
    yy, xx = np.mgrid[: grid[0], : grid[1]]
    d = (yy[None] + 0.5 - seeds[:, 0, None, None]) ** 2 + (xx[None] + 0.5 - seeds[:, 1, None, None]) ** 2
    return d.argmin(axis=0).astype(np.int32)


def entropy_throughput(codec, image: np.ndarray, q_index: int) -> tuple[float, float, int]:
    """(encode symbols/s, decode symbols/s, symbols) of the range coder on one image's y symbols."""
    from codec import entropy
    from codec.geometry import block_grid_shape, model_input

    padded = model_input(image)
    q = codec.coder.quantize(padded, np.ones(block_grid_shape(*image.shape[:2]), bool), q_index)
    symbols, cells = q.y_symbols.ravel(), q.y_cells.ravel()
    t0 = time.perf_counter()
    enc = entropy.new_encoder()
    entropy.encode_symbols(enc, symbols, cells, codec.coder.y_models)
    payload = entropy.finish(enc)
    t1 = time.perf_counter()
    out = entropy.decode_symbols(entropy.new_decoder(payload), cells, codec.coder.y_models)
    t2 = time.perf_counter()
    assert np.array_equal(out, symbols)
    return symbols.size / (t1 - t0), symbols.size / (t2 - t1), symbols.size


def run(images: list[Path], quality: float, threads: int) -> dict:
    import torch

    from codec.api import Codec
    from codec.data import load_rgb
    from codec.bitstream import quantize_quality
    from codec.geometry import block_grid_shape
    from codec.plan import FramePlan

    torch.set_num_threads(threads)
    codec = Codec.load()
    rows = []
    for path in images:
        image = load_rgb(path)
        h, w = image.shape[:2]
        grid = block_grid_shape(h, w)
        one = FramePlan.uniform(h, w, quality)
        four = FramePlan.from_groups(voronoi_groups(grid, 4), quality)
        codec.encode(image, one)  # warm-up (first call builds models lazily)
        t0 = time.perf_counter()
        frame1 = codec.encode(image, one)
        t1 = time.perf_counter()
        data1 = frame1.SerializeToString()
        decoded1 = codec.decode(data1).image
        t2 = time.perf_counter()
        frame4 = codec.encode(image, four)
        t3 = time.perf_counter()
        data4 = frame4.SerializeToString()
        decoded4 = codec.decode(data4).image
        t4 = time.perf_counter()
        enc_sps, dec_sps, nsym = entropy_throughput(codec, image, quantize_quality(quality))
        rows.append({"image": path.name, "pixels": h * w, "encode_s": t1 - t0, "decode_s": t2 - t1,
                     "encode4_s": t3 - t2, "decode4_s": t4 - t3,
                     "bytes_1group": len(data1), "bytes_4groups": len(data4),
                     "bpp_1group": len(data1) * 8 / (h * w), "psnr_1group": psnr(decoded1, image),
                     "psnr_4groups": psnr(decoded4, image), "entropy_encode_sym_s": enc_sps,
                     "entropy_decode_sym_s": dec_sps, "symbols": nsym})
        print(f"{path.name}: enc {t1 - t0:.3f}s dec {t2 - t1:.3f}s bpp {rows[-1]['bpp_1group']:.3f} "
              f"psnr {rows[-1]['psnr_1group']:.2f} overhead {len(data4) / len(data1) - 1:+.2%}", flush=True)
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k != "image"}
    overhead = sum(r["bytes_4groups"] for r in rows) / sum(r["bytes_1group"] for r in rows) - 1
    return {"quality": quality, "threads": threads, "weights_id": codec.weights_id, "images": len(rows),
            "mean": mean, "structured_overhead_4_groups": overhead, "per_image": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, default=paths.kodak_dir())
    parser.add_argument("--quality", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, default=0, help="first N images only")
    args = parser.parse_args()
    from codec.data import list_images

    images = list_images(args.images)[: args.limit or None]
    result = run(images, args.quality, args.threads)
    m = result["mean"]
    md = [f"# Codec benchmark ({result['images']} images from {args.images.name}, q={args.quality}, "
          f"{args.threads} threads, weights {result['weights_id']})", "",
          md_table(["metric", "value", "goal"], [
              ["encode s/image (1 group)", m["encode_s"], "<= 0.5"],
              ["decode s/image (1 group)", m["decode_s"], "<= 0.5"],
              ["encode s/image (4 groups)", m["encode4_s"], ""],
              ["decode s/image (4 groups)", m["decode4_s"], ""],
              ["bpp (1 group)", m["bpp_1group"], ""],
              ["PSNR dB (1 group)", m["psnr_1group"], ""],
              ["PSNR dB (4 groups)", m["psnr_4groups"], ""],
              ["entropy encode Msymbols/s", m["entropy_encode_sym_s"] / 1e6, ""],
              ["entropy decode Msymbols/s", m["entropy_decode_sym_s"] / 1e6, ""],
              ["4-group bits overhead", f"{result['structured_overhead_4_groups']:+.2%}", "<= +3%"],
          ])]
    write_results("codec", result, "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
