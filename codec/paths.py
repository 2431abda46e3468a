"""Where roistream finds its shipped weights, offline data, exported models and cache.

This module sits at the bottom of the layer order (it imports nothing of roistream), so every
package may ask it for a location and each location is decided here once.

* The shipped codec weights are package data of `codec` (`codec/assets/`), found through
  `importlib.resources`, so a plain `pip install` (not only an editable one) has them.
* `ROISTREAM_SHARED` overrides the offline data folder (default: `../shared` beside a checkout;
  an installed package has no checkout, so there the default is `./shared`).
* `ROISTREAM_CACHE` overrides the cache (default: `.cache` in a checkout, else
  `$XDG_CACHE_HOME/roistream`, i.e. `~/.cache/roistream`).
* `ROISTREAM_MODELS` overrides the folder of exported models (`models_dir`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

# The folder holding the packages: a checkout when it has a pyproject.toml, else site-packages.
SOURCE_ROOT = Path(__file__).resolve().parents[1]
CHECKOUT = SOURCE_ROOT if (SOURCE_ROOT / "pyproject.toml").is_file() else None
# a regular (unzipped) install, so the package data is a file on disk
ASSETS_DIR = Path(os.fspath(resources.files("codec") / "assets"))
DEFAULT_WEIGHTS = ASSETS_DIR / "roistream-codec.npz"


def shared_dir() -> Path:
    if "ROISTREAM_SHARED" in os.environ:
        return Path(os.environ["ROISTREAM_SHARED"])
    return CHECKOUT.parent / "shared" if CHECKOUT else Path("shared").resolve()


def cache_dir() -> Path:
    if "ROISTREAM_CACHE" in os.environ:
        path = Path(os.environ["ROISTREAM_CACHE"])
    elif CHECKOUT:
        path = CHECKOUT / ".cache"
    else:
        path = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "roistream"
    path.mkdir(parents=True, exist_ok=True)
    return path


def models_dir(weights_id: str) -> Path:
    """Where `roistream export onnx|tensorrt` write the models of a weights file and where the
    runtimes look for them: `$ROISTREAM_MODELS` when set (one deployment, one weights file: the
    runtimes refuse models of other weights), else a folder per weights id in the cache."""
    if os.environ.get("ROISTREAM_MODELS"):
        return Path(os.environ["ROISTREAM_MODELS"])
    return cache_dir() / "export" / weights_id[:16]


def kodak_dir() -> Path:
    return shared_dir() / "data" / "kodak"


def photos_dir() -> Path:
    return shared_dir() / "data" / "photos"


def coco_dir() -> Path:
    return shared_dir() / "data" / "coco128-seg"


def video_path() -> Path:
    return shared_dir() / "data" / "video" / "vtest.avi"


def video_bench_dir() -> Path:
    """Benchmark clips measured beside vtest.avi (never trained on)."""
    return shared_dir() / "data" / "video-bench"


def detector_weights() -> Path:
    return shared_dir() / "weights" / "yolov8n-seg_int8.onnx"


def face_weights() -> Path:
    return shared_dir() / "weights" / "face_detection_yunet.onnx"


@contextmanager
def replacing(path: Path | str) -> Iterator[Path]:
    """A temporary path beside `path` to write to; it replaces `path` only when the block ends
    without an error, so readers never see a half-written file (each process writes its own)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
