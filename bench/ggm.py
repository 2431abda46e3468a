"""GGM ablation (`roistream bench ggm`): bits for the same latents under the trained GGM entropy
model vs Gaussian models.

For every y symbol we know its mean and table cell (sigma level, beta level). Ideal code lengths
(-log2 of the bin probability) are compared under:
  * the GGM with the cell's beta (what roistream codes with),
  * beta forced to 2 with the same sigma ("Gaussian, beta = 2"),
  * a Gaussian with the GGM's variance (moment-matched: std = sigma sqrt(G(3/b) / G(1/b))).
Kodak images as one group each, and coco128-seg with ground-truth instances as ROI groups, so the
saving is reported overall and for ROI groups.
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy.special import gammaincc, gammaln
from scipy.stats import norm

from codec import paths

from .common import md_table, run_module, write_results

MIN_P = 1e-9


def _ggm_bits(r: np.ndarray, sigma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    def lower(x):  # mass below -|x|
        return 0.5 * gammaincc(1 / beta, (np.abs(x) / sigma) ** beta)

    up = 0.5 - np.abs(r)
    cdf_up = np.where(up <= 0, lower(up), 1 - lower(up))
    p = cdf_up - lower(-np.abs(r) - 0.5)
    return -np.log2(np.maximum(p, MIN_P))


def _gauss_bits(r: np.ndarray, std: np.ndarray) -> np.ndarray:
    a = np.abs(r)
    p = norm.cdf(-a + 0.5, scale=std) - norm.cdf(-a - 0.5, scale=std)
    return -np.log2(np.maximum(p, MIN_P))


def group_bits(codec, image: np.ndarray, block_mask: np.ndarray, q: float) -> dict[str, float]:
    from codec.bitstream import quantize_quality
    from codec.geometry import model_input

    padded = model_input(image)
    sym = codec.coder.quantize(padded, block_mask, quantize_quality(q))
    w = codec.weights
    n_sigma = w.sigma_levels.size
    cells = sym.y_cells.ravel()
    sigma = w.sigma_levels[cells % n_sigma]
    beta = w.beta_levels[cells // n_sigma]
    r = sym.y_symbols.ravel().astype(np.float64)
    std = sigma * np.exp(0.5 * (gammaln(3 / beta) - gammaln(1 / beta)))
    return {"symbols": int(r.size), "ggm": float(_ggm_bits(r, sigma, beta).sum()),
            "gauss_beta2": float(_ggm_bits(r, sigma, np.full_like(beta, 2.0)).sum()),
            "gauss_matched": float(_gauss_bits(r, std).sum()),
            "beta_mean": float(beta.mean())}


def _acc(total: dict, part: dict) -> None:
    for k, v in part.items():
        total[k] = total.get(k, 0) + v


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--limit", type=int, default=0, help="first N images of each set")
    p.add_argument("--quality", type=float, default=0.5)
    p.add_argument("--name", default="ggm")


def run(args: argparse.Namespace) -> dict:
    from codec.api import Codec
    from codec.data import list_images, load_coco, load_rgb
    from codec.geometry import block_grid_shape, group_map_from_label_image

    from .roi import instance_labels

    codec = Codec.load()
    totals: dict[str, dict] = {"kodak": {}, "coco_roi": {}, "coco_background": {}}
    for f in list_images(paths.kodak_dir())[: args.limit or None]:
        img = load_rgb(f)
        _acc(totals["kodak"], group_bits(codec, img, np.ones(block_grid_shape(*img.shape[:2]), bool), args.quality))
    for item in [it for it in load_coco(paths.coco_dir()) if it.instances][: args.limit or None]:
        gm = group_map_from_label_image(instance_labels(item), *item.image.shape[:2])
        for gid in np.unique(gm):
            key = "coco_background" if gid == 0 else "coco_roi"
            _acc(totals[key], group_bits(codec, item.image, gm == gid, args.quality))
    rows, summary = [], {}
    for name, t in totals.items():
        s = {"symbols": t["symbols"], "ggm_bits": t["ggm"],
             "saving_vs_beta2_percent": (1 - t["ggm"] / t["gauss_beta2"]) * 100,
             "saving_vs_matched_gaussian_percent": (1 - t["ggm"] / t["gauss_matched"]) * 100}
        summary[name] = s
        rows.append([name, t["symbols"], t["ggm"] / 8 / 1024, t["gauss_beta2"] / 8 / 1024, t["gauss_matched"] / 8 / 1024,
                     f"{s['saving_vs_beta2_percent']:.2f}%", f"{s['saving_vs_matched_gaussian_percent']:.2f}%"])
    md = "\n".join([f"# GGM ablation (q={args.quality}, weights {codec.weights_id})", "",
                    "Ideal code length of the same y symbols (KiB) under each model; saving = 1 - GGM / Gaussian.", "",
                    md_table(["set", "symbols", "GGM KiB", "Gaussian beta=2 KiB", "moment-matched Gaussian KiB",
                              "saving vs beta=2", "saving vs matched"], rows)])
    result = {"quality": args.quality, "weights_id": codec.weights_id, "summary": summary}
    write_results(args.name, result, md)
    print(md)
    return result


if __name__ == "__main__":
    run_module(__name__)
