"""Detector export: argument checks and clear errors offline; the real ultralytics path on an
untrained checkpoint built from ultralytics' own model YAML (no download)."""

from __future__ import annotations

import pytest

from export.detector import check_detector_args, export_detector
from codec import paths


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found.*offline"):
        export_detector(tmp_path / "yolo11n-seg.pt", "onnx")
    from roistream.cli import main

    assert main(["export", "detector", "--model", str(tmp_path / "yolo11n-seg.pt"), "--format", "onnx"]) == 2


def test_arguments_are_validated(tmp_path):
    pt = tmp_path / "m.pt"
    pt.write_bytes(b"")
    with pytest.raises(ValueError, match="format"):
        check_detector_args(pt, "tflite")
    with pytest.raises(ValueError, match="multiple of 32"):
        check_detector_args(pt, "onnx", imgsz=100)
    assert check_detector_args(pt, "onnx", imgsz=640) == pt
    from roistream.cli import build_parser

    args = build_parser().parse_args(["export", "detector", "--model", "yolo11n-seg.pt", "--format", "engine",
                                      "--half", "--imgsz", "640"])
    assert args.format == "engine" and args.half and args.imgsz == 640
    with pytest.raises(SystemExit):
        build_parser().parse_args(["export", "detector", "--model", "x.pt", "--format", "tflite"])


def test_already_exported_onnx_detector_is_refused():
    onnx_model = paths.detector_weights()  # the shared int8 YOLOv8n-seg ONNX
    if not onnx_model.is_file():
        pytest.skip(f"shared detector weights missing: {onnx_model}")
    with pytest.raises(ValueError, match=r"\.onnx file.*PyTorch \.pt"):
        export_detector(onnx_model, "onnx")


def test_engine_needs_tensorrt(tmp_path):
    from codec.runtime import RuntimeUnavailable
    from codec.runtime.tensorrt_backend import tensorrt_status

    ok, reason = tensorrt_status()
    if ok:
        pytest.skip(f"TensorRT is usable here ({reason})")
    pt = tmp_path / "m.pt"
    pt.write_bytes(b"")
    with pytest.raises(RuntimeUnavailable, match="--format engine needs TensorRT"):
        export_detector(pt, "engine")


@pytest.mark.slow
def test_real_export_of_an_untrained_checkpoint(tmp_path):
    """ultralytics' real exporter, offline: a YOLO11n-seg checkpoint built from the package's YAML
    (random weights: we have no trained .pt offline), exported to ONNX and run by onnxruntime."""
    import numpy as np
    import onnxruntime as ort

    from edge.detector.environment import prepare_ultralytics_env

    prepare_ultralytics_env()
    from ultralytics import YOLO

    pt = tmp_path / "yolo11n-seg.pt"
    YOLO("yolo11n-seg.yaml").save(str(pt))
    out = export_detector(pt, "onnx", imgsz=128, out_dir=tmp_path / "out")
    assert out == tmp_path / "out" / "yolo11n-seg.onnx" and out.is_file()
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].shape == [1, 3, 128, 128]
    outputs = sess.run(None, {sess.get_inputs()[0].name: np.zeros((1, 3, 128, 128), np.float32)})
    assert len(outputs) == 2  # detections + mask prototypes: a segmentation model
