"""Object tracks: each detection keeps one id across frames (ultralytics' ByteTrack or BoT-SORT).

The id goes into the group's record (GroupRecord.track_id), so the cloud can follow one object
through a stream and a later predictive coder can code a group against the same track's previous
reconstruction. ultralytics' trackers run offline on boxes alone (BoT-SORT without its ReID model,
its camera-motion compensation on the frame).

A track's life is explicit (`TrackUpdate`): `started` on the first frame an object is seen,
`lost` on the first frame it is missed, and `ended` once it has been missed for more than
`lost_frames` frames (ByteTrack's track buffer). A lost track seen again within that window keeps its
id; after it ended, the object gets a new id. A track seen once and never confirmed ends on the
next frame. Track ids start at 1 per tracker and are never reused; 0 means "not tracked".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .detector import Detection

TRACKERS = ("bytetrack", "botsort")
NOT_TRACKED = 0


@dataclass
class TrackUpdate:
    """One frame's tracked detections and the tracks that changed state on it."""

    detections: list[Detection]  # the frame's detections, track_id set (NOT_TRACKED when none matched)
    started: list[int] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)
    ended: list[int] = field(default_factory=list)


def _boxes(detections: Sequence[Detection], shape: tuple[int, int]):
    """Detections as the ultralytics Boxes the trackers take (x0, y0, x1, y1, score, class)."""
    from ultralytics.engine.results import Boxes

    rows = [[*d.box, d.score, d.class_id] for d in detections]
    return Boxes(np.asarray(rows, np.float32).reshape(-1, 6), shape)


class ObjectTracker:
    """Gives each detection the id of its track.

    tracker: "bytetrack" or "botsort" (ultralytics' default settings, from its packaged yaml);
    lost_frames: frames a missed track is kept before it ends; other keyword arguments override the
    tracker's settings (e.g. match_thresh, new_track_thresh).
    """

    def __init__(self, tracker: str = "bytetrack", lost_frames: int = 30, **settings):
        if tracker not in TRACKERS:
            raise ValueError(f"unknown tracker {tracker!r}; choose one of {', '.join(TRACKERS)}")
        if lost_frames < 0:
            raise ValueError("lost_frames must be >= 0")
        from ultralytics.trackers.track import TRACKER_MAP
        from ultralytics.utils import YAML, IterableSimpleNamespace
        from ultralytics.utils.checks import check_yaml

        cfg = IterableSimpleNamespace(**YAML.load(check_yaml(f"{tracker}.yaml")))
        cfg.track_buffer = lost_frames
        if tracker == "botsort":
            cfg.with_reid = False  # its ReID model would be downloaded; boxes and motion suffice here
        for name, value in settings.items():
            if not hasattr(cfg, name):
                raise ValueError(f"{tracker} has no setting {name!r}")
            setattr(cfg, name, value)
        self.name, self.lost_frames = tracker, lost_frames
        self._tracker = TRACKER_MAP[tracker](cfg)
        self._alive: set[int] = set()  # tracked or lost
        self._lost: set[int] = set()

    def update(self, detections: Sequence[Detection], image: np.ndarray) -> TrackUpdate:
        """Track one frame's detections (RGB image, as every detector here takes)."""
        t = self._tracker
        bgr = np.ascontiguousarray(image[..., ::-1])  # ultralytics' trackers take BGR frames (BoT-SORT's GMC)
        t.update(_boxes(detections, image.shape[:2]), bgr)
        ids = {int(s.idx): int(s.track_id) for s in t.tracked_stracks if s.frame_id == t.frame_id}
        tracked = [dataclasses.replace(d, track_id=ids.get(i, NOT_TRACKED)) for i, d in enumerate(detections)]
        alive = {int(s.track_id) for s in (*t.tracked_stracks, *t.lost_stracks)}
        lost = {int(s.track_id) for s in t.lost_stracks}
        update = TrackUpdate(tracked, started=sorted(set(ids.values()) - self._alive),
                             lost=sorted(lost - self._lost), ended=sorted(self._alive - alive))
        self._alive, self._lost = alive, lost
        return update
