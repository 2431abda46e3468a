"""Where roistream finds its offline data, weights and cache.

`ROISTREAM_SHARED` overrides the shared data folder (default: `../shared` beside the checkout);
`ROISTREAM_CACHE` overrides the cache (default: `.cache` in the checkout).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
WEIGHTS_DIR = REPO_ROOT / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "roistream-codec.npz"


def shared_dir() -> Path:
    return Path(os.environ.get("ROISTREAM_SHARED", REPO_ROOT.parent / "shared"))


def cache_dir() -> Path:
    path = Path(os.environ.get("ROISTREAM_CACHE", REPO_ROOT / ".cache"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def kodak_dir() -> Path:
    return shared_dir() / "data" / "kodak"


def photos_dir() -> Path:
    return shared_dir() / "data" / "photos"


def coco_dir() -> Path:
    return shared_dir() / "data" / "coco128-seg"


def video_path() -> Path:
    return shared_dir() / "data" / "video" / "vtest.avi"


def detector_weights() -> Path:
    return shared_dir() / "weights" / "yolov8n-seg_int8.onnx"


def face_weights() -> Path:
    return shared_dir() / "weights" / "face_detection_yunet.onnx"
