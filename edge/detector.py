"""Object detection for ROI groups: ultralytics YOLO segmentation, optional YuNet faces.

`Detector` wraps any segmentation model ultralytics loads (.pt / .onnx / .engine / OpenVINO dirs)
and returns typed `Detection`s with a full-resolution boolean instance mask. Offline default: the
int8 YOLOv8n-seg ONNX model in ../shared/weights (320x320 input); on a machine with internet and
no local weights the default is `yolo11n-seg.pt`, which ultralytics downloads itself.

`FaceDetector` runs OpenCV's YuNet (cv2.FaceDetectorYN) for privacy groups labelled "face".

Images are RGB uint8 everywhere in roistream; ultralytics takes numpy images as BGR, so the
wrapper converts.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from roistream import paths

ONLINE_DEFAULT = "yolo11n-seg.pt"

# the 80 COCO classes, in the order of the ultralytics COCO models
COCO_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)
FACE_LABEL = "face"


def prepare_ultralytics_env() -> None:
    """Keep ultralytics offline and its settings inside the project cache. Call before importing it."""
    cache = paths.cache_dir()
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "0")
    os.environ.setdefault("YOLO_VERBOSE", "False")  # its INFO lines go to stdout and would mix with our JSON
    os.environ.setdefault("YOLO_CONFIG_DIR", str(cache / "ultralytics"))
    os.environ.setdefault("MPLCONFIGDIR", str(cache / "matplotlib"))


def default_detector_weights() -> str:
    """The shared offline int8 ONNX model when present, else the model ultralytics downloads."""
    local = paths.detector_weights()
    return str(local) if local.is_file() else ONLINE_DEFAULT


class DetectorError(RuntimeError):
    pass


@contextmanager
def _keep_torch_threads():
    """ultralytics' device selection sets torch to cpu_count - 1 threads (1 on 2 cores), which would
    slow the codec's encoder in the same process: put the caller's setting back."""
    import torch

    threads = torch.get_num_threads()
    try:
        yield
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


@dataclass
class Detection:
    label: str  # class name, e.g. "person" (or "face")
    class_id: int  # detector class index (-1 for faces)
    score: float
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels
    mask: np.ndarray  # bool [H, W] at frame resolution

    @property
    def area(self) -> int:
        return int(self.mask.sum())


class Detector:
    """YOLO segmentation through ultralytics.

    weights: path or ultralytics model name (default `default_detector_weights()`); conf: minimum
    score; imgsz: inference size (None = the model's own; fixed-size ONNX models need theirs);
    classes: class names to keep (None = all); device: ultralytics device string ("cpu", "0");
    retina_masks: compute masks at frame resolution (sharper, 14 ms slower per 768x576 frame on 2 cores;
    the default scales the model's masks up, ample for 16-px blocks). int8_as_float: run
    a dynamically quantized ONNX model (ConvInteger) as its cached float copy, about 6x faster on
    onnxruntime's CPU kernels (`export.detector.float_copy`); `runs` names the file actually loaded.
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
                from export.detector import float_copy, is_dynamic_int8

                if is_dynamic_int8(local):
                    self.runs = str(float_copy(local))
            with _keep_torch_threads():
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
        with _keep_torch_threads():
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


class FaceDetector:
    """YuNet faces (cv2.FaceDetectorYN) as elliptical masks labelled "face"."""

    def __init__(self, weights: str | Path | None = None, score_threshold: float = 0.6, nms_threshold: float = 0.3,
                 expand: float = 1.2):
        import cv2

        path = Path(weights or paths.face_weights())
        if not path.is_file():
            raise DetectorError(f"face detector weights {path} not found")
        self._det = cv2.FaceDetectorYN.create(str(path), "", (320, 320), score_threshold, nms_threshold, 5000)
        self._size: tuple[int, int] | None = None
        self.expand = expand

    def detect(self, image: np.ndarray) -> list[Detection]:
        import cv2

        h, w = image.shape[:2]
        if self._size != (w, h):
            self._det.setInputSize((w, h))
            self._size = (w, h)
        _, faces = self._det.detect(np.ascontiguousarray(image[..., ::-1]))
        out = []
        for f in [] if faces is None else faces:
            x, y, fw, fh, score = float(f[0]), float(f[1]), float(f[2]), float(f[3]), float(f[-1])
            cx, cy = x + fw / 2, y + fh / 2
            ax, ay = fw / 2 * self.expand, fh / 2 * self.expand
            mask = np.zeros((h, w), np.uint8)
            cv2.ellipse(mask, (int(round(cx)), int(round(cy))), (max(1, int(round(ax))), max(1, int(round(ay)))),
                        0, 0, 360, 1, -1)
            box = (max(cx - ax, 0.0), max(cy - ay, 0.0), min(cx + ax, float(w)), min(cy + ay, float(h)))
            out.append(Detection(FACE_LABEL, -1, score, box, mask.astype(bool)))
        out.sort(key=lambda d: -d.score)
        return out
