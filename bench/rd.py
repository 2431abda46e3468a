"""Rate-distortion benchmark (`roistream bench rd`): our codec vs JPEG, WebP and AVIF.

Kodak by default (`--images DIR` for any folder): PSNR-RGB and MS-SSIM per quality, averaged over
images, BD-rate against each reference (from the mean curves), a PNG plot, JSON and markdown in
bench/results/.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from codec import paths
from codec.metrics import psnr

from .baselines import QUALITIES, encode_decode
from .common import md_table, run_module, save_figure, subplots, write_results
from .metrics import bd_rate, ms_ssim

OUR_QUALITIES = (0.0, 0.15, 0.3, 0.45, 0.6, 0.75, 0.9, 1.0)


def measure(images: list[np.ndarray], with_msssim: bool = True) -> dict[str, list[dict]]:
    """Mean (bpp, psnr, ms_ssim) per quality point for each codec."""
    from codec.api import Codec
    from codec.plan import FramePlan

    codec = Codec.load()
    points: dict[str, list[dict]] = {}

    def add(name: str, q, results: list[tuple[float, float, float]]) -> None:
        arr = np.asarray(results, dtype=np.float64)
        points.setdefault(name, []).append({"quality": q, "bpp": float(arr[:, 0].mean()),
                                            "psnr": float(arr[:, 1].mean()), "ms_ssim": float(arr[:, 2].mean())})

    for q in OUR_QUALITIES:
        res = []
        for img in images:
            h, w = img.shape[:2]
            data = codec.encode(img, FramePlan.uniform(h, w, q)).SerializeToString()
            dec = codec.decode(data).image
            res.append((len(data) * 8 / (h * w), psnr(dec, img), ms_ssim(dec, img) if with_msssim else np.nan))
        add("roistream", q, res)
        print(f"roistream q={q}: {points['roistream'][-1]}", flush=True)
    for name, qualities in QUALITIES.items():
        for q in qualities:
            res = []
            for img in images:
                size, dec = encode_decode(img, name, q)
                res.append((size * 8 / (img.shape[0] * img.shape[1]), psnr(dec, img),
                            ms_ssim(dec, img) if with_msssim else np.nan))
            add(name, q, res)
        print(f"{name}: done", flush=True)
    return points


def bd_rates(points: dict[str, list[dict]], metric: str) -> dict[str, float]:
    ours = points["roistream"]
    return {ref: bd_rate([p["bpp"] for p in pts], [p[metric] for p in pts],
                         [p["bpp"] for p in ours], [p[metric] for p in ours])
            for ref, pts in points.items() if ref != "roistream"}


def plot(points: dict[str, list[dict]], name: str, title: str) -> None:
    fig, axes = subplots(1, 2, figsize=(12, 4.5))
    for codec_name, pts in points.items():
        bpp = [p["bpp"] for p in pts]
        axes[0].plot(bpp, [p["psnr"] for p in pts], "o-", label=codec_name)
        axes[1].plot(bpp, [p["ms_ssim"] for p in pts], "o-", label=codec_name)
    for ax, ylabel in zip(axes, ("PSNR-RGB (dB)", "MS-SSIM")):
        ax.set_xlabel("bits per pixel")
        ax.set_ylabel(ylabel)
        ax.set_xlim(0, 1.5)
    fig.suptitle(title)
    save_figure(fig, name, axes)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--images", type=Path, default=paths.kodak_dir())
    p.add_argument("--limit", type=int, default=0, help="first N images only")
    p.add_argument("--name", default="rd", help="results file stem in bench/results/")
    p.add_argument("--no-msssim", action="store_true")


def run(args: argparse.Namespace) -> dict:
    from codec.data import list_images, load_rgb

    files = list_images(args.images)[: args.limit or None]
    images = [load_rgb(f) for f in files]
    points = measure(images, not args.no_msssim)
    result = {"images": str(args.images), "count": len(images), "points": points,
              "bd_rate_psnr_percent": bd_rates(points, "psnr"),
              "bd_rate_msssim_percent": bd_rates(points, "ms_ssim") if not args.no_msssim else {}}
    plot(points, args.name, f"{len(images)} images from {args.images.name}")
    rows = [[name, p["quality"], p["bpp"], p["psnr"], p["ms_ssim"]] for name, pts in points.items() for p in pts]
    bd = [[ref, result["bd_rate_psnr_percent"][ref], result["bd_rate_msssim_percent"].get(ref, float("nan"))]
          for ref in result["bd_rate_psnr_percent"]]
    md = "\n".join([f"# Rate-distortion: {len(images)} images from {args.images.name}", "",
                    f"![rd]({args.name}.png)", "", "## BD-rate of roistream against each codec (negative = fewer bits)", "",
                    md_table(["reference", "BD-rate PSNR %", "BD-rate MS-SSIM %"], bd), "", "## Mean points", "",
                    md_table(["codec", "quality", "bpp", "PSNR", "MS-SSIM"], rows)])
    write_results(args.name, result, md)
    print(md)
    return result


if __name__ == "__main__":
    run_module(__name__)
