"""What every detector returns, and the error they raise."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class DetectorError(RuntimeError):
    """A detector cannot be loaded (missing weights, unknown class, ultralytics failure)."""


@dataclass
class Detection:
    label: str  # class name, e.g. "person" (or "face")
    class_id: int  # detector class index (-1 for faces)
    score: float
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels
    mask: np.ndarray  # bool [H, W] at frame resolution
    track_id: int = 0  # the object's track (edge.tracking), 0 = not tracked

    @property
    def area(self) -> int:
        return int(self.mask.sum())
