"""`roistream bench <name>`: the benchmarks that take command-line options."""

from __future__ import annotations

import argparse
from importlib import import_module

BENCHMARKS = {
    "rd": "rate-distortion on Kodak (or --images DIR) vs JPEG, WebP, AVIF",
    "roi": "ROI-PSNR at equal rate on coco128-seg: uniform vs ROI mode vs WebP/AVIF",
    "downstream": "detector mAP50 on decoded coco128-seg: ROI mode vs JPEG/WebP/AVIF at matched bpp",
    "ggm": "bits under the trained GGM vs Gaussian entropy models",
    "video": "bytes at equal ROI PSNR vs x264, x265, SVT-AV1 and x264 with ROI offsets (PyAV) per clip",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="run a benchmark (results in bench/results/)")
    names = p.add_subparsers(dest="benchmark", required=True)
    for name, help_text in BENCHMARKS.items():
        module = import_module(f"bench.{name}")
        b = names.add_parser(name, help=help_text)
        module.add_arguments(b)
        b.set_defaults(func=lambda args, m=module: m.run(args) and 0)
