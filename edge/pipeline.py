"""The edge pipeline: capture -> detect -> group -> encode -> spool/send, with per-stage timings.

Drive it from Python::

    from edge.pipeline import EdgePipeline, MemorySink
    from edge.sources import open_source
    pipe = EdgePipeline(codec, policy, detector=Detector(), sink=MemorySink(), stream_id="cam0",
                        bg_interval=10, target_kbps=300)
    summary = pipe.run(open_source("video.avi"), max_frames=100)
    print(summary.to_dict())

A sink receives every encoded frame: `MemorySink` keeps them (tests, benchmarks, the demo),
`SpoolSink` writes them to the durable outbox that an `IngestStreamer` sends to the cloud.
Metrics go to a Prometheus registry (`EdgeMetrics`, served on a port when asked) and to an
optional one-line status display.
"""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Protocol, TextIO

import numpy as np

from .ratecontrol import RateController
from .roi import BackgroundFill, BackgroundScheduler, GroupPlan, RoiPolicy
from .sources import Frame, Source
from .spool import Spool
from .streaming import IngestStreamer

STAGES = ("capture", "detect", "group", "encode", "send")


# ---------------------------------------------------------------- sinks
class FrameSink(Protocol):
    def submit(self, frame, data: bytes) -> None: ...

    @property
    def depth(self) -> int: ...


class MemorySink:
    """Keeps the serialized frames in memory (and optionally calls `callback(frame, data)`)."""

    def __init__(self, callback: Callable | None = None, keep: bool = True):
        self.frames: list[bytes] = []
        self.callback, self.keep = callback, keep

    def submit(self, frame, data: bytes) -> None:
        if self.keep:
            self.frames.append(data)
        if self.callback:
            self.callback(frame, data)

    @property
    def depth(self) -> int:
        return 0


class SpoolSink:
    """Writes frames to the spool; the streamer (if any) sends them to the cloud."""

    def __init__(self, spool: Spool, streamer: IngestStreamer | None = None):
        self.spool, self.streamer = spool, streamer

    def submit(self, frame, data: bytes) -> None:
        if self.streamer is not None and self.streamer.fatal_error:
            raise RuntimeError(self.streamer.fatal_error)
        h = frame.header
        self.spool.put(data, h.stream_id, h.frame_index, created_us=h.timestamp_us if h.timestamp_us > 0 else None)

    @property
    def depth(self) -> int:
        return len(self.spool)


# ---------------------------------------------------------------- metrics
class EdgeMetrics:
    """Prometheus metrics of one edge pipeline, in their own registry."""

    def __init__(self, stream_id: str):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        r, s = self.registry, stream_id
        self.frames = Counter("roistream_edge_frames", "Frames encoded", ["stream"], registry=r).labels(s)
        self.bytes = Counter("roistream_edge_bytes", "Encoded bytes by group label", ["stream", "label"], registry=r)
        self.groups = Gauge("roistream_edge_groups", "Object groups in the last frame", ["stream"], registry=r).labels(s)
        self.fps = Gauge("roistream_edge_fps", "Frames per second (recent)", ["stream"], registry=r).labels(s)
        self.kbps = Gauge("roistream_edge_kbps", "Bitrate in kbit per second of video (recent)", ["stream"],
                          registry=r).labels(s)
        self.bg_quality = Gauge("roistream_edge_background_quality", "Quality of the last background sent",
                                ["stream"], registry=r).labels(s)
        self.backgrounds = Counter("roistream_edge_backgrounds", "Frames that carried the background",
                                   ["stream"], registry=r).labels(s)
        self.fills = Counter("roistream_edge_background_fills", "Frames that carried background blocks no "
                             "composite layer had", ["stream"], registry=r).labels(s)
        self.queue = Gauge("roistream_edge_queue_depth", "Frames waiting in the outbox", ["stream"],
                           registry=r).labels(s)
        self.dropped = Gauge("roistream_edge_dropped_frames", "Frames dropped, by reason", ["stream", "reason"],
                             registry=r)
        self.acked = Gauge("roistream_edge_acked_frames", "Frames acknowledged by the cloud, by status",
                           ["stream", "status"], registry=r)
        self.reconnects = Gauge("roistream_edge_reconnects", "Reconnections, by peer", ["stream", "peer"], registry=r)
        self.stage = Histogram("roistream_edge_stage_seconds", "Time per frame in each stage", ["stream", "stage"],
                               registry=r, buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2))
        self.stream = s
        self._server = None

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        from prometheus_client import start_http_server

        self._server = start_http_server(port, addr=addr, registry=self.registry)

    def close(self) -> None:
        if self._server is not None:
            server, _thread = self._server
            server.shutdown()
            self._server = None

    def exposition(self) -> str:
        from prometheus_client import generate_latest

        return generate_latest(self.registry).decode()


# ---------------------------------------------------------------- results
@dataclass
class FrameResult:
    index: int  # stream frame index
    source_index: int
    plan: GroupPlan
    nbytes: int
    group_bytes: dict[int, int]
    background: str  # why the background was sent ("" = not sent, "fill" = only the blocks a fill sends)
    times: dict[str, float]
    frame: object = None  # the EncodedFrame
    tracks: object = None  # the tracker's edge.tracking.TrackUpdate (None without a tracker)


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
    """Capture, detect, group, encode and hand frames to a sink.

    codec: codec.api.Codec; policy: RoiPolicy; detector: edge.detector.Detector (None = no objects,
    background only); face_detector: optional FaceDetector (used when the policy wants faces); tracker:
    an edge.tracking.ObjectTracker giving each detection its track id (carried in its group's record);
    bg_interval: see BackgroundScheduler; bg_fill: with a refresh interval, send the background blocks
    the cloud's composite has no layer for once they are free (BackgroundFill); target_kbps: enables
    rate control; key: EncryptionKey for the policy's encrypted classes; first_index: stream frame
    index of the source's frame 0;
    status: a stream for the live status line (None = off); pipelined: capture and detect the next
    frame on a thread while the current one is encoded (both runtimes release the GIL).
    """

    def __init__(self, codec, policy: RoiPolicy, *, detector=None, face_detector=None, tracker=None,
                 sink: FrameSink | None = None,
                 stream_id: str = "cam0", bg_interval: int = 1, bg_fill: bool = True,
                 target_kbps: float | None = None,
                 rate: RateController | None = None, key=None, metrics: EdgeMetrics | None = None,
                 status: TextIO | None = None, status_interval: float = 1.0, first_index: int = 0,
                 streamer: IngestStreamer | None = None, encoder_name: str = "", keep_frames: bool = False,
                 on_frame: Callable[[FrameResult], None] | None = None, pipelined: bool = False):
        if policy.encrypt and key is None:
            raise ValueError(f"classes to encrypt ({', '.join(sorted(policy.encrypt))}) need a key (--key KEYFILE)")
        self.codec, self.policy, self.detector, self.face_detector = codec, policy, detector, face_detector
        self.tracker = tracker
        if detector is not None:
            detector.set_classes(policy.detector_classes)
        self.sink = sink or MemorySink()
        self.stream_id, self.key, self.first_index = stream_id, key, first_index
        self.background = BackgroundScheduler(bg_interval)
        self.fill = BackgroundFill(bg_interval) if bg_fill and bg_interval != 1 else None
        self.rate = rate or (RateController(target_kbps) if target_kbps else None)
        self.metrics = metrics
        self.status, self.status_interval = status, status_interval
        self.streamer = streamer
        self.encoder_name = encoder_name or getattr(codec.coder.backend, "name", "")
        self.keep_frames, self.on_frame, self.pipelined = keep_frames, on_frame, pipelined
        self._recent: deque[tuple[float, int, int]] = deque(maxlen=50)  # (wall time, bytes, video us)
        self._last_status = 0.0
        self._prev_ts: int | None = None
        self._default_dt = 0.1
        self._summary = EdgeSummary(stream_id)
        self._times = defaultdict(float)
        self._wall = 0.0  # seconds spent in run()

    # ---- one frame
    def detect(self, image: np.ndarray) -> list:
        dets = self.detector.detect(image) if self.detector is not None else []
        if self.face_detector is not None and self.policy.wants_faces:
            dets = dets + self.face_detector.detect(image)
        return dets

    def _capture_detect(self, it) -> tuple[Frame, float, list, float] | None:
        t = time.perf_counter()
        frame = next(it, None)
        capture = time.perf_counter() - t
        if frame is None:
            return None
        t = time.perf_counter()
        detections = self.detect(frame.image)
        return frame, capture, detections, time.perf_counter() - t

    def process(self, frame: Frame, capture_s: float = 0.0, detections: list | None = None,
                detect_s: float | None = None) -> FrameResult:
        """Code one frame (detecting in it unless `detections` are given) and hand it to the sink."""
        times = {"capture": capture_s}
        t = time.perf_counter()
        if detections is None:
            detections = self.detect(frame.image)
        times["detect"] = time.perf_counter() - t if detect_s is None else detect_s

        t = time.perf_counter()
        tracks = self.tracker.update(detections, frame.image) if self.tracker is not None else None
        h, w = frame.image.shape[:2]
        plan = self.policy.plan(tracks.detections if tracks else detections, h, w)
        send_bg, reason = self.background.decide(frame.index, frame.image)
        plan.send_background = send_bg
        if not send_bg and self.fill is not None:
            action = self.fill.decide(frame.index, plan, h, w)
            if action == "fill":
                reason = "fill"
            elif action == "refresh":  # holes remain and no periodic refresh would ever cover them
                self.background.force(frame.index, frame.image)
                send_bg = plan.send_background = True
                reason = "holes"
        dt = self._default_dt if self._prev_ts is None else max((frame.timestamp_us - self._prev_ts) / 1e6, 1e-3)
        self._prev_ts = frame.timestamp_us
        if self.rate is not None:
            period = 1 if self.background.interval == 1 else max(self.background.interval, 1)
            self.rate.plan(plan, dt, period if send_bg else 1)
        times["group"] = time.perf_counter() - t

        t = time.perf_counter()
        index = self.first_index + frame.index
        encoded, data = None, b""
        if plan.coded_ids:  # nothing detected and no background due: nothing to send
            encoded = self.codec.encode(frame.image, key=self.key, stream_id=self.stream_id, frame_index=index,
                                        timestamp_us=frame.timestamp_us, **plan.encode_kwargs())
        times["encode"] = time.perf_counter() - t

        t = time.perf_counter()
        if encoded is not None:
            data = encoded.SerializeToString()
            self.sink.submit(encoded, data)
        times["send"] = time.perf_counter() - t

        group_bytes = {r.group_id: len(r.payload) for r in encoded.groups} if encoded is not None else {}
        if self.fill is not None and 0 in group_bytes:
            self.fill.record(frame.index, plan, refresh=send_bg)
        if self.rate is not None:
            self.rate.update(plan, group_bytes, len(data), dt)
        result = FrameResult(index, frame.index, plan, len(data), group_bytes, reason, times,
                             encoded if self.keep_frames else None, tracks)
        self._account(result, frame, dt)
        return result

    def _account(self, r: FrameResult, frame: Frame, dt: float) -> None:
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
        m = self.metrics
        if m is not None:
            m.frames.inc()
            for gid, n in r.group_bytes.items():
                m.bytes.labels(m.stream, r.plan.groups[gid].label).inc(n)
            m.groups.set(len(r.plan.object_ids))
            if r.background == "fill":
                m.fills.inc()
            elif r.background:
                m.backgrounds.inc()
                m.bg_quality.set(r.plan.groups[0].quality)
            for stage, v in r.times.items():
                m.stage.labels(m.stream, stage).observe(v)
            m.fps.set(self.recent_fps)
            m.kbps.set(self.recent_kbps)
            m.queue.set(self.sink.depth)

    @property
    def recent_fps(self) -> float:
        if len(self._recent) < 2:
            return 0.0
        span = self._recent[-1][0] - self._recent[0][0]
        return (len(self._recent) - 1) / span if span > 0 else 0.0

    @property
    def recent_kbps(self) -> float:
        video_us = sum(r[2] for r in self._recent)
        return sum(r[1] for r in self._recent) * 8 / 1000 / (video_us / 1e6) if video_us else 0.0

    def _update_external_metrics(self, source: Source | None) -> None:
        m = self.metrics
        if m is None:
            return
        if source is not None:
            m.dropped.labels(m.stream, "slow_consumer").set(source.stats.dropped_slow)
            m.dropped.labels(m.stream, "fps_cap").set(source.stats.dropped_fps_cap)
            m.reconnects.labels(m.stream, "source").set(source.stats.reconnects)
        if isinstance(self.sink, SpoolSink):
            c = self.sink.spool.counters()
            m.dropped.labels(m.stream, "spool_size").set(c["dropped_size"])
            m.dropped.labels(m.stream, "spool_age").set(c["dropped_age"])
            m.dropped.labels(m.stream, "rejected").set(c["rejected"])
        if self.streamer is not None:
            st = self.streamer.stats
            m.acked.labels(m.stream, "stored").set(st.stored)
            m.acked.labels(m.stream, "duplicate").set(st.duplicate)
            m.acked.labels(m.stream, "rejected").set(st.rejected)
            m.reconnects.labels(m.stream, "cloud").set(st.reconnects)

    def status_line(self, r: FrameResult, source: Source | None = None) -> str:
        dropped = source.stats.dropped_slow if source is not None else 0
        if isinstance(self.sink, SpoolSink):
            dropped += self.sink.spool.dropped
        cloud = ""
        if self.streamer is not None:
            st = self.streamer.stats
            cloud = f" | cloud {'up' if st.connected else 'DOWN'} acked {st.stored + st.duplicate}"
        bg = f"{r.plan.groups[0].quality:.2f}" if r.background else "-"
        return (f"[{self.stream_id}] frame {r.index} | {self.recent_fps:4.1f} fps | {self.recent_kbps:7.1f} kbps | "
                f"groups {len(r.plan.object_ids):2d} | bg q {bg} | queue {self.sink.depth} | dropped {dropped}{cloud}")

    # ---- the loop
    def run(self, source: Source | Iterable[Frame], max_frames: int | None = None,
            stop: threading.Event | None = None) -> EdgeSummary:
        """Process frames until the source ends, max_frames, or `stop` is set. Returns the summary."""
        src = source if isinstance(source, Source) else None
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
                if self.on_frame:
                    self.on_frame(r)
                now = time.monotonic()
                if self.status is not None and now - self._last_status >= self.status_interval:
                    self._last_status = now
                    self._update_external_metrics(src)
                    self.status.write("\r" + self.status_line(r, src) + "\x1b[K")
                    self.status.flush()
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
        if self.status is not None and n:
            self.status.write("\n")
        self._wall += time.perf_counter() - start
        return self.finalize(src)

    def finalize(self, source: Source | None = None) -> EdgeSummary:
        """The summary of every frame processed so far (by `run` or `process`)."""
        src = source
        self._update_external_metrics(src)
        s = self._summary
        s.wall_s = self._wall
        s.scene_changes = self.background.scene_changes
        s.stage_ms = {k: 1000 * self._times[k] / max(s.frames, 1) for k in STAGES}
        s.encoder = self.encoder_name
        if src is not None:
            s.source = asdict(src.stats)
        if isinstance(self.sink, SpoolSink):
            s.spool = {**self.sink.spool.counters(), "depth": len(self.sink.spool)}
        if self.streamer is not None:
            s.streamer = asdict(self.streamer.stats)
        return s

    @property
    def summary(self) -> EdgeSummary:
        return self._summary


def status_stream(enabled: bool) -> TextIO | None:
    return sys.stderr if enabled else None
