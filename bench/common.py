"""Shared helpers for benchmarks: result files, machine facts, timing."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path


RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    import os

    import torch

    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(), "torch": torch.__version__}


def shipped_weights_id() -> str:
    """Id of the shipped weights (codec/assets/roistream-codec.npz), which every benchmark's codec
    loads by default."""
    from codec.weights import load_codec_weights

    return load_codec_weights().weights_id


def write_results(name: str, data: dict, markdown: str) -> tuple[Path, Path]:
    """bench/results/NAME.json and NAME.md, both naming the codec weights they were measured with
    (the shipped weights unless `data` says otherwise), so results from older weights show."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {"benchmark": name, "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine(),
            "weights_id": shipped_weights_id(), **data}
    json_path, md_path = RESULTS / f"{name}.json", RESULTS / f"{name}.md"
    json_path.write_text(json.dumps(data, indent=2) + "\n")
    md_path.write_text(markdown.rstrip() + f"\n\nCodec weights `{data['weights_id']}`, {data['date']}.\n")
    return json_path, md_path


def md_table(headers: list[str], rows: list[list]) -> str:
    def fmt(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def subplots(*args, **kwargs):
    """matplotlib figure and axes, headless."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def save_figure(fig, name: str, axes=()) -> Path:
    """Grid + legend on `axes`, then bench/results/NAME.png."""
    import matplotlib.pyplot as plt

    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run_module(module_name: str) -> None:
    """`python -m bench.X` for the benchmarks that define add_arguments(parser) and run(args)."""
    import argparse
    import sys

    module = sys.modules[module_name]
    parser = argparse.ArgumentParser(description=(module.__doc__ or "").splitlines()[0])
    module.add_arguments(parser)
    module.run(parser.parse_args())
