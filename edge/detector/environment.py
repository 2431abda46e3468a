"""ultralytics' environment for roistream: offline, quiet, settings inside the project cache, and
torch's thread count left as the caller set it. Shared by the detector and its export."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from codec import paths


def prepare_ultralytics_env() -> None:
    """Keep ultralytics offline and its settings inside the project cache. Call before importing it."""
    cache = paths.cache_dir()
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "0")
    os.environ.setdefault("YOLO_VERBOSE", "False")  # its INFO lines go to stdout and would mix with our JSON
    os.environ.setdefault("YOLO_CONFIG_DIR", str(cache / "ultralytics"))
    os.environ.setdefault("MPLCONFIGDIR", str(cache / "matplotlib"))


@contextmanager
def keep_torch_threads() -> Iterator[None]:
    """ultralytics' device selection sets torch to cpu_count - 1 threads (1 on 2 cores), which would
    slow the codec's encoder in the same process: put the caller's setting back."""
    import torch

    threads = torch.get_num_threads()
    try:
        yield
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
