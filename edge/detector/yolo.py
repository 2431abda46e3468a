"""Object detection for ROI groups: any segmentation model ultralytics loads (.pt / .onnx /
.engine / OpenVINO dirs), returning typed `Detection`s with a full-resolution boolean instance mask.

Offline default: the int8 YOLOv8n-seg ONNX model in ../shared/weights (320x320 input); on a machine
with internet and no local weights the default is `yolo11n-seg.pt`, which ultralytics downloads
itself. Images are RGB uint8 everywhere in roistream; ultralytics takes numpy images as BGR, so
the wrapper converts.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from codec import paths

from .classes import FACE_LABEL
from .detection import Detection, DetectorError
from .environment import keep_torch_threads, prepare_ultralytics_env
from .int8 import float_copy, is_dynamic_int8

ONLINE_DEFAULT = "yolo11n-seg.pt"


def default_detector_weights() -> str:
    """The shared offline int8 ONNX model when present, else the model ultralytics downloads."""
    local = paths.detector_weights()
    return str(local) if local.is_file() else ONLINE_DEFAULT


class Detector:
    """YOLO segmentation through ultralytics.

    weights: path or ultralytics model name (default `default_detector_weights()`); conf: minimum
    score; imgsz: inference size (None = the model's own; fixed-size ONNX models need theirs);
    classes: class names to keep (None = all); device: ultralytics device string ("cpu", "0");
    retina_masks: compute masks at frame resolution (sharper but slower; the default scales the
    model's masks up, ample for 16-px blocks). int8_as_float: run a dynamically quantized ONNX
    model (ConvInteger) as its cached float copy (`edge.detector.int8.float_copy`), because
    onnxruntime's CPU kernels for ConvInteger are far slower than its float convolutions; `runs`
    names the file actually loaded.
    """

    def __init__(self, weights: str | Path | None = None, conf: float = 0.35, iou: float = 0.5,
                 imgsz: int | None = None, classes: list[str] | None = None, device: str | None = None,
                 max_det: int = 100, retina_masks: bool = False, int8_as_float: bool = True):
        prepare_ultralytics_env()
        weights = str(weights or default_detector_weights())
        local = Path(weights)
        if not local.exists() and os.environ.get("YOLO_OFFLINE") == "1":
            raise DetectorError(f"detector weights {weights} are not on this machine and ultralytics runs offline "
                                f"(YOLO_OFFLINE=1); pass a local .pt/.onnx/.engine file")
        self.runs = weights
        try:
            if int8_as_float and local.suffix == ".onnx" and local.is_file():
                if is_dynamic_int8(local):
                    self.runs = str(float_copy(local))
            with keep_torch_threads():
                from ultralytics import YOLO

                self.model = YOLO(self.runs, task="segment")
                names = self.model.names  # sets the predictor up (and torch's thread count)
        except Exception as exc:  # ultralytics raises many kinds
            raise DetectorError(f"cannot load detector {weights}: {exc}") from exc
        self.weights = weights
        self.names: dict[int, str] = dict(names) if isinstance(names, dict) else dict(enumerate(names))
        self.conf, self.iou, self.imgsz, self.device, self.max_det = conf, iou, imgsz, device, max_det
        self.retina_masks = retina_masks  # False: masks at the model's resolution, scaled up afterwards
        self._class_ids: list[int] | None = None
        self.set_classes(classes)

    @property
    def class_names(self) -> list[str]:
        return [self.names[i] for i in sorted(self.names)]

    def set_classes(self, classes: list[str] | None) -> None:
        """Restrict detection to these class names (None = all)."""
        if classes is None:
            self._class_ids = None
            return
        by_name = {n: i for i, n in self.names.items()}
        unknown = [c for c in classes if c not in by_name and c != FACE_LABEL]
        if unknown:
            raise DetectorError(f"the detector has no class {', '.join(unknown)}")
        self._class_ids = sorted(by_name[c] for c in classes if c in by_name)

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Instances in an HxWx3 uint8 RGB image, best score first."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an HxWx3 uint8 RGB image, got {image.dtype} {image.shape}")
        if self._class_ids == []:
            return []
        kwargs = {"conf": self.conf, "iou": self.iou, "verbose": False, "retina_masks": self.retina_masks,
                  "max_det": self.max_det}
        if self.imgsz:
            kwargs["imgsz"] = self.imgsz
        if self.device:
            kwargs["device"] = self.device
        if self._class_ids is not None:
            kwargs["classes"] = self._class_ids
        bgr = np.ascontiguousarray(image[..., ::-1])
        with keep_torch_threads():
            result = self.model.predict(bgr, **kwargs)[0]
        return self._parse(result, image.shape[:2])

    def _parse(self, result, shape: tuple[int, int]) -> list[Detection]:
        h, w = shape
        if result.boxes is None or len(result.boxes) == 0:
            return []
        cls = result.boxes.cls.cpu().numpy().astype(int)
        conf = result.boxes.conf.cpu().numpy().astype(float)
        xyxy = result.boxes.xyxy.cpu().numpy().astype(float)
        masks = None
        if result.masks is not None:
            data = result.masks.data
            if tuple(data.shape[1:]) != (h, w):  # masks at the letterboxed input size: undo the letterbox
                from ultralytics.utils.ops import scale_masks

                data = scale_masks(data[None].float(), (h, w))[0]
            masks = data.cpu().numpy() > 0.5
        out = []
        for i in range(len(cls)):
            x0, y0, x1, y1 = xyxy[i]
            if masks is not None:
                mask = masks[i]
            else:  # detection-only model: the box is the mask
                mask = np.zeros((h, w), bool)
                mask[int(max(y0, 0)):int(np.ceil(min(y1, h))), int(max(x0, 0)):int(np.ceil(min(x1, w)))] = True
            out.append(Detection(self.names.get(int(cls[i]), str(cls[i])), int(cls[i]), float(conf[i]),
                                 (float(x0), float(y0), float(x1), float(y1)), mask))
        out.sort(key=lambda d: -d.score)
        return out
