"""YuNet faces (OpenCV's cv2.FaceDetectorYN) as elliptical masks labelled "face", for privacy
groups: a face box is a poor mask, an ellipse covers the face and little else."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from codec import paths

from .classes import FACE_LABEL
from .detection import Detection, DetectorError


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
