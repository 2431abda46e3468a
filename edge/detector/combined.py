"""All detections of one frame: `FrameDetector` runs YOLO-seg for the wanted classes and, when
faces are wanted, YuNet, so the pipeline and `roistream encode --detect` ask one object."""

from __future__ import annotations

import functools

import numpy as np

from .detection import Detection
from .faces import FaceDetector
from .yolo import Detector


class FrameDetector:
    """detector: YOLO-seg (None = no objects); classes: the classes it reports (None = all);
    faces: a face detector whose detections are added (None = no faces)."""

    def __init__(self, detector: Detector | None = None, classes: list[str] | None = None,
                 faces: FaceDetector | None = None):
        self.detector, self.faces = detector, faces
        if detector is not None:
            detector.set_classes(classes)

    def detect(self, image: np.ndarray) -> list[Detection]:
        detections = self.detector.detect(image) if self.detector is not None else []
        if self.faces is not None:
            detections = detections + self.faces.detect(image)
        return detections


@functools.lru_cache(maxsize=4)
def shared_detector(conf: float = 0.35) -> Detector:
    """One YOLO-seg detector per confidence threshold for the life of the process: loading the
    model dominates a one-image call such as `roistream encode --detect`."""
    return Detector(conf=conf)


@functools.lru_cache(maxsize=1)
def shared_face_detector() -> FaceDetector:
    """The face detector, loaded once per process (see shared_detector)."""
    return FaceDetector()
