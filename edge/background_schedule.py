"""When the background group (0) is sent: `BackgroundScheduler`.

A static camera should pay for its background once, not at every frame: the scheduler sends it
every `interval` frames and on a scene change (camera moved, lights switched), and the cloud's
composites reuse the last one in between.
"""

from __future__ import annotations

import numpy as np


class BackgroundScheduler:
    """Send the background every `interval` frames and on a scene change.

    interval: 1 = every frame; N = every N-th frame; 0 = only the first frame and scene changes.
    A scene change is more than `change_fraction` of a 64x48 grey thumbnail's pixels differing by
    more than `pixel_threshold` (0-255) from the thumbnail of the last background sent (camera
    moved, lights switched, ...). Moving ROI objects touch only a small fraction.
    """

    def __init__(self, interval: int = 1, change_fraction: float = 0.25, pixel_threshold: int = 30):
        if interval < 0:
            raise ValueError("background interval must be >= 0")
        self.interval, self.change_fraction, self.pixel_threshold = interval, change_fraction, pixel_threshold
        self._last_sent: int | None = None
        self._thumb: np.ndarray | None = None
        self.sent = 0
        self.scene_changes = 0

    @staticmethod
    def thumbnail(image: np.ndarray) -> np.ndarray:
        import cv2

        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        return cv2.resize(grey, (64, 48), interpolation=cv2.INTER_AREA).astype(np.int16)

    def scene_changed(self, image: np.ndarray) -> bool:
        if self._thumb is None:
            return True
        thumb = self.thumbnail(image)
        if thumb.shape != self._thumb.shape:
            return True
        return float((np.abs(thumb - self._thumb) > self.pixel_threshold).mean()) > self.change_fraction

    def decide(self, index: int, image: np.ndarray) -> tuple[bool, str]:
        """(send the background?, why) for the frame with this index; records a send."""
        if self.interval == 1:
            reason = "every frame"
        elif self._last_sent is None:
            reason = "first frame"
        elif self.interval and index - self._last_sent >= self.interval:
            reason = "interval"
        elif self.scene_changed(image):
            reason = "scene change"
            self.scene_changes += 1
        else:
            return False, ""
        self.force(index, image)
        return True, reason

    def force(self, index: int, image: np.ndarray) -> None:
        """Record a background sent for another reason (BackgroundFill asking for a refresh)."""
        self._last_sent = index
        if self.interval != 1:
            self._thumb = self.thumbnail(image)
        self.sent += 1
