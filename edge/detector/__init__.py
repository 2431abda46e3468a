"""The edge's detectors: ultralytics YOLO segmentation (`yolo`), YuNet faces (`faces`), the
ultralytics offline environment (`environment`), the float copy of int8 ONNX detectors (`int8`),
and the class names they report (`classes`). `export.detector` exports models with the same
environment; nothing here imports `export`.
"""

from .classes import COCO_CLASSES, FACE_LABEL
from .detection import Detection, DetectorError
from .faces import FaceDetector
from .yolo import Detector, default_detector_weights

__all__ = ["COCO_CLASSES", "FACE_LABEL", "Detection", "Detector", "DetectorError", "FaceDetector",
           "default_detector_weights"]
