"""The edge's detectors: ultralytics YOLO segmentation (`yolo`), YuNet faces (`faces`), the
ultralytics offline environment (`environment`), the float copy of int8 ONNX detectors (`int8`),
the class names they report (`classes`), and both run on one frame with the per-process cache of
loaded detectors (`combined`). `export.detector` exports models with the same environment;
nothing here imports `export`.
"""

from .classes import COCO_CLASSES, FACE_LABEL
from .combined import FrameDetector, shared_detector, shared_face_detector
from .detection import Detection, DetectorError
from .faces import FaceDetector
from .yolo import Detector, default_detector_weights

__all__ = ["COCO_CLASSES", "FACE_LABEL", "Detection", "Detector", "DetectorError", "FaceDetector", "FrameDetector",
           "default_detector_weights", "shared_detector", "shared_face_detector"]
