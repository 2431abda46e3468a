"""The edge pipeline: capture -> detect -> track -> plan -> encode -> sink, with per-stage timings.

Drive it from Python::

    from edge.pipeline import EdgePipeline
    from edge.policy import RoiPolicy
    from edge.sinks import MemorySink
    from edge.sources import open_source
    pipe = EdgePipeline.init(codec, RoiPolicy.from_words("people"), detector=Detector(), sink=MemorySink(),
                             stream_id="cam0", bg_interval=10, target_kbps=300)
    summary = pipe.run(open_source("video.avi"), max_frames=100)
    print(summary.to_dict())

The constructor takes ready parts (codec, detector, tracker, planner, sink, observers) so each can be
swapped or tested alone; `EdgePipeline.init` builds them from the plain settings of
`roistream edge run`. The loop itself decides nothing: the planner says what to code
(`edge.planner`), the sink where it goes (`edge.sinks`), the observers report (`edge.observers`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import TextIO

from .detector import FrameDetector
from .observers import EdgeMetrics, EdgeObserver, EdgeStatus, FrameCallback, FrameResult, StatusLine
from .planner import FramePlanner
from .policy import RoiPolicy
from .sinks import FrameSink, MemorySink
from .sources import Frame, Source
from .tracking import ObjectTracker

log = logging.getLogger(__name__)

STAGES = ("capture", "detect", "track", "group", "encode", "send")


@dataclass
class EdgeSummary:
    stream_id: str
    frames: int = 0
    wall_s: float = 0.0
    video_s: float = 0.0  # span of the frames' timestamps plus one frame period
    bytes_total: int = 0
    bytes_per_class: dict[str, int] = field(default_factory=dict)
    groups_total: int = 0
    empty_frames: int = 0  # frames with nothing to send (no object, no background due): not sent
    background_frames: int = 0  # refreshes (first frame, interval, scene change, every frame)
    background_fills: int = 0  # frames that carried a fill (BackgroundFill)
    scene_changes: int = 0
    stage_ms: dict[str, float] = field(default_factory=dict)  # mean per frame
    source: dict = field(default_factory=dict)
    spool: dict = field(default_factory=dict)
    streamer: dict = field(default_factory=dict)
    encoder: str = ""
    first_index: int = 0
    last_index: int = -1

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def kbps(self) -> float:
        """Bitrate per second of video."""
        return self.bytes_total * 8 / 1000 / self.video_s if self.video_s > 0 else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["fps"], d["kbps"] = round(self.fps, 3), round(self.kbps, 2)
        d["stage_ms"] = {k: round(v, 2) for k, v in self.stage_ms.items()}
        return d


# ---------------------------------------------------------------- the pipeline
class EdgePipeline:
    """Capture, detect, plan, encode and hand frames to a sink.

    codec: codec.api.Codec; detector: edge.detector.FrameDetector; planner: edge.planner.FramePlanner;
    tracker: edge.tracking.ObjectTracker giving each detection its track id (None = untracked); sink:
    edge.sinks (MemorySink, SpoolSink); observers: edge.observers (metrics, status line,
    callbacks); key: EncryptionKey for the plan's encrypted groups; signer: codec.signing.SigningKey
    that signs every record (None = unsigned); first_index: stream frame index of
    the source's frame 0; keep_frames: keep each EncodedFrame in its FrameResult; status_interval:
    seconds between the observers' on_status calls; pipelined: capture and detect the next frame on a
    thread while the current one is encoded (both runtimes release the GIL).
    """

    def __init__(self, codec, detector: FrameDetector, planner: FramePlanner, sink: FrameSink, *,
                 tracker: ObjectTracker | None = None, stream_id: str = "cam0", key=None, signer=None,
                 first_index: int = 0,
                 observers: Sequence[EdgeObserver] = (), keep_frames: bool = False,
                 status_interval: float = 1.0, pipelined: bool = False):
        if planner.policy.encrypt and key is None:
            raise ValueError(f"classes to encrypt ({', '.join(sorted(planner.policy.encrypt))}) need a key "
                             f"(--key KEYFILE)")
        self.codec, self.detector, self.planner, self.sink = codec, detector, planner, sink
        self.tracker = tracker
        self.stream_id, self.key, self.signer, self.first_index = stream_id, key, signer, first_index
        self.observers = list(observers)
        self.keep_frames, self.status_interval, self.pipelined = keep_frames, status_interval, pipelined
        self.encoder_name = getattr(codec.coder.backend, "name", "")
        self._recent: deque[tuple[float, int, int]] = deque(maxlen=50)  # (wall time, bytes, video us)
        self._last_status = 0.0
        self._prev_ts: int | None = None
        self._default_dt = 0.1
        self._source: Source | None = None
        self._summary = EdgeSummary(stream_id)
        self._times = defaultdict(float)
        self._wall = 0.0  # seconds spent in run()
        self._index_shift = 0  # added to first_index + source index once the cloud said it holds those

    @classmethod
    def init(cls, codec, policy: RoiPolicy, *, detector=None, face_detector=None, sink: FrameSink | None = None,
             tracker: str | None = None, stream_id: str = "cam0", bg_interval: int = 1, bg_fill: bool = True,
             target_kbps: float | None = None,
             key=None, metrics: EdgeMetrics | None = None, status: TextIO | None = None,
             on_frame: Callable[[FrameResult], None] | None = None, **options) -> "EdgePipeline":
        """A pipeline from plain settings: detector (YOLO-seg, None = background only) and
        face_detector (used when the policy wants faces); tracker: "bytetrack" or "botsort" (None =
        no track ids); bg_interval: see BackgroundScheduler;
        bg_fill: with a refresh interval, send the background blocks the cloud's composite has no
        layer for (BackgroundFill); target_kbps: rate control; metrics, status (a stream for the
        status line) and on_frame become observers; `options` go to the constructor."""
        frame_detector = FrameDetector(detector, policy.detector_classes,
                                       face_detector if policy.wants_faces else None)
        planner = FramePlanner.init(policy, bg_interval=bg_interval, bg_fill=bg_fill, target_kbps=target_kbps)
        observers = [o for o in (metrics, StatusLine(status) if status is not None else None,
                                 FrameCallback(on_frame) if on_frame is not None else None) if o is not None]
        return cls(codec, frame_detector, planner, sink if sink is not None else MemorySink(),
                   tracker=ObjectTracker(tracker) if tracker else None, stream_id=stream_id, key=key,
                   observers=observers, **options)

    # ---- one frame
    def _capture_detect(self, it) -> tuple[Frame, float, list, float] | None:
        t = time.perf_counter()
        frame = next(it, None)
        capture = time.perf_counter() - t
        if frame is None:
            return None
        t = time.perf_counter()
        detections = self.detector.detect(frame.image)
        return frame, capture, detections, time.perf_counter() - t

    def process(self, frame: Frame, capture_s: float = 0.0, detections: list | None = None,
                detect_s: float | None = None) -> FrameResult:
        """Code one frame (detecting in it unless `detections` are given) and hand it to the sink."""
        times = {"capture": capture_s}
        t = time.perf_counter()
        if detections is None:
            detections = self.detector.detect(frame.image)
        times["detect"] = time.perf_counter() - t if detect_s is None else detect_s

        t = time.perf_counter()
        tracks = self.tracker.update(detections, frame.image) if self.tracker is not None else None
        if tracks is not None:
            detections = tracks.detections
        times["track"] = time.perf_counter() - t

        t = time.perf_counter()
        dt = self._default_dt if self._prev_ts is None else max((frame.timestamp_us - self._prev_ts) / 1e6, 1e-3)
        self._prev_ts = frame.timestamp_us
        plan = self.planner.plan(frame, detections, dt)
        times["group"] = time.perf_counter() - t

        t = time.perf_counter()
        index = self._frame_index(frame.index)
        encoded, data = None, b""
        if plan.groups:  # nothing detected and no background due: nothing to send
            encoded = self.codec.encode(frame.image, plan, key=self.key, signer=self.signer, stream_id=self.stream_id,
                                        frame_index=index, timestamp_us=frame.timestamp_us)
        times["encode"] = time.perf_counter() - t

        t = time.perf_counter()
        if encoded is not None:
            data = encoded.SerializeToString()
            self.sink.submit(encoded, data)
        times["send"] = time.perf_counter() - t

        group_bytes = {r.group_id: len(r.payload) for r in encoded.groups} if encoded is not None else {}
        self.planner.record(frame, plan, group_bytes, len(data), dt)
        result = FrameResult(index, frame.index, plan, len(data), group_bytes, times,
                             encoded if self.keep_frames else None, tracks)
        self._account(result, dt)
        if self.observers:
            status = self.status()
            for observer in self.observers:
                observer.on_frame(result, status)
        return result

    def _frame_index(self, source_index: int) -> int:
        """The stream index of a source frame: first_index + source index, moved past every index the cloud
        said it holds (CONFLICT acks, through the sink), so an edge that lost its numbering stops colliding."""
        index = self.first_index + source_index + self._index_shift
        floor = self.sink.index_floor()
        if index < floor:
            log.warning("the cloud holds %s up to frame %d: numbering continues there (was %d)", self.stream_id,
                        floor - 1, index)
            self._index_shift += floor - index
            index = floor
        return index

    def _account(self, r: FrameResult, dt: float) -> None:
        s = self._summary
        if s.frames == 0:
            s.first_index = r.index
        s.frames += 1
        s.empty_frames += r.nbytes == 0
        if r.nbytes:
            s.last_index = r.index
        s.bytes_total += r.nbytes
        s.video_s += dt
        if r.nbytes:
            overhead = r.nbytes - sum(r.group_bytes.values())
            s.bytes_per_class["(headers)"] = s.bytes_per_class.get("(headers)", 0) + overhead
        for gid, n in r.group_bytes.items():
            label = r.plan.groups[gid].label
            s.bytes_per_class[label] = s.bytes_per_class.get(label, 0) + n
        s.groups_total += len(r.plan.object_ids)
        s.background_frames += bool(r.background) and r.background != "fill"
        s.background_fills += r.background == "fill"
        for k, v in r.times.items():
            self._times[k] += v
        self._recent.append((time.monotonic(), r.nbytes, int(dt * 1e6)))

    def status(self) -> EdgeStatus:
        """Recent rates and the sink's and source's state, as the observers see them."""
        fps = 0.0
        if len(self._recent) >= 2:
            span = self._recent[-1][0] - self._recent[0][0]
            fps = (len(self._recent) - 1) / span if span > 0 else 0.0
        video_us = sum(r[2] for r in self._recent)
        kbps = sum(r[1] for r in self._recent) * 8 / 1000 / (video_us / 1e6) if video_us else 0.0
        return EdgeStatus(self.stream_id, fps, kbps, self.sink.state(),
                          self._source.stats if self._source is not None else None)

    # ---- the loop
    def run(self, source: Source | Iterable[Frame], max_frames: int | None = None,
            stop: threading.Event | None = None) -> EdgeSummary:
        """Process frames until the source ends, max_frames, or `stop` is set. Returns the summary."""
        src = source if isinstance(source, Source) else None
        self._source = src
        if src is not None and src.effective_fps:
            self._default_dt = 1.0 / src.effective_fps
        start = time.perf_counter()
        it = iter(source)
        n = 0
        pool = ThreadPoolExecutor(1, thread_name_prefix="edge-detect") if self.pipelined else None
        ahead = None

        def more() -> bool:
            return (max_frames is None or n < max_frames) and not (stop and stop.is_set())

        try:
            while more():
                if pool is None:
                    item = self._capture_detect(it)
                else:  # capture + detect frame n+1 on a thread while frame n is encoded
                    item = (ahead or pool.submit(self._capture_detect, it)).result()
                    wanted = item is not None and (max_frames is None or n + 1 < max_frames)
                    ahead = pool.submit(self._capture_detect, it) if wanted else None
                if item is None:
                    break
                frame, capture, detections, detect_s = item
                r = self.process(frame, capture, detections, detect_s)
                n += 1
                now = time.monotonic()
                if self.observers and now - self._last_status >= self.status_interval:
                    self._last_status = now
                    status = self.status()
                    for observer in self.observers:
                        observer.on_status(r, status)
        finally:
            if ahead is not None:
                ahead.cancel()
                try:
                    ahead.result()
                except Exception:
                    pass
            if pool is not None:
                pool.shutdown(wait=True)
            if hasattr(it, "close"):
                it.close()
        for observer in self.observers:
            observer.on_end(n)
        self._wall += time.perf_counter() - start
        return self.finalize()

    def finalize(self) -> EdgeSummary:
        """The summary of every frame processed so far (by `run` or `process`)."""
        status = self.status()
        for observer in self.observers:
            observer.on_status(None, status)
        s = self._summary
        s.wall_s = self._wall
        s.scene_changes = self.planner.background.scene_changes
        s.stage_ms = {k: 1000 * self._times[k] / max(s.frames, 1) for k in STAGES}
        s.encoder = self.encoder_name
        if status.source is not None:
            s.source = asdict(status.source)
        s.spool = dict(status.sink.spool)
        if status.sink.streamer is not None:
            s.streamer = asdict(status.sink.streamer)
        return s

    @property
    def summary(self) -> EdgeSummary:
        return self._summary
