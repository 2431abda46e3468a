"""`roistream export detector`: ultralytics' exporter for the edge's YOLO-seg detector.

    roistream export detector --model yolo11n-seg.pt --format onnx|engine [--half] [--imgsz N]

ultralytics exports from a PyTorch checkpoint (.pt); `--format engine` needs TensorRT and a CUDA
device (ultralytics builds the engine through an ONNX file). Everything runs offline: ultralytics'
settings live under roistream's cache, downloads and automatic installs are off, so a model
name that is not a file is refused here rather than fetched.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from codec.runtime.backend import RuntimeUnavailable
from codec.runtime.tensorrt_backend import tensorrt_status
from edge.detector.environment import prepare_ultralytics_env

FORMATS = ("onnx", "engine")


def check_detector_args(model: Path | str, fmt: str, imgsz: int | None = None) -> Path:
    """Validate before anything heavy is imported; returns the model path."""
    if fmt not in FORMATS:
        raise ValueError(f"detector format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if imgsz is not None and (imgsz <= 0 or imgsz % 32):
        raise ValueError(f"--imgsz {imgsz}: the detector input size must be a positive multiple of 32")
    path = Path(model)
    if not path.is_file():
        raise FileNotFoundError(f"detector model {path} not found; ultralytics cannot download it here (offline): "
                                f"copy the .pt checkpoint to that path first")
    if path.suffix not in (".pt", ".yaml", ".yml"):
        raise ValueError(f"{path} is a {path.suffix or 'suffix-less'} file: ultralytics exports from a PyTorch .pt "
                         f"checkpoint (an exported .onnx/.engine cannot be exported again; the edge runs .onnx and "
                         f".engine detectors directly with --detector)")
    if fmt == "engine":
        ok, reason = tensorrt_status()
        if not ok:
            raise RuntimeUnavailable(f"--format engine needs TensorRT on an NVIDIA GPU: {reason}")
    return path


def export_detector(model: Path | str, fmt: str = "onnx", *, half: bool = False, imgsz: int | None = None,
                    out_dir: Path | str | None = None, device: str | None = None, dynamic: bool = False) -> Path:
    """Export a YOLO(-seg) checkpoint with ultralytics; returns the exported file (moved to out_dir if given)."""
    path = check_detector_args(model, fmt, imgsz)
    prepare_ultralytics_env()
    from ultralytics import YOLO

    kwargs: dict = {"format": fmt, "half": half, "dynamic": dynamic, "simplify": True}
    if imgsz:
        kwargs["imgsz"] = imgsz
    if device is not None:
        kwargs["device"] = device
    elif fmt == "engine":
        kwargs["device"] = 0
    else:
        kwargs["device"] = "cpu"
    result = YOLO(str(path)).export(**kwargs)
    exported = Path(result) if result else None
    if exported is None or not exported.exists():
        raise RuntimeError(f"ultralytics did not export {path} to {fmt}")
    if out_dir is not None:
        target = Path(out_dir)
        target.mkdir(parents=True, exist_ok=True)
        dest = target / exported.name
        if dest.resolve() != exported.resolve():
            shutil.move(str(exported), dest)
        exported = dest
    return exported
