"""Who watches the edge pipeline: observers with no-op defaults.

The pipeline loop only codes frames; everything that reports on them is an `EdgeObserver` it
calls: after each frame (`on_frame`), every `status_interval` seconds and at the end
(`on_status`), and once when a run ends (`on_end`). An observer overrides what it needs, like the
watchdog and status handlers of Roboflow's InferencePipeline. Here: `EdgeMetrics` (Prometheus),
`StatusLine` (the live one-line display) and `FrameCallback` (a function per frame).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from codec.plan import FramePlan

from .sinks import SinkState
from .sources import SourceStats
from .tracking import TrackUpdate


@dataclass(frozen=True)
class FrameResult:
    index: int  # stream frame index
    source_index: int
    plan: FramePlan
    nbytes: int
    group_bytes: dict[int, int]
    times: dict[str, float]
    frame: object = None  # the EncodedFrame (when the pipeline keeps frames)
    tracks: TrackUpdate | None = None  # the tracker's update (None without a tracker)

    @property
    def background(self) -> str:
        """Why the background was sent ("" = not sent, "fill" = only the blocks a fill sends)."""
        return self.plan.background_reason


@dataclass(frozen=True)
class EdgeStatus:
    """The pipeline's state as observers see it."""

    stream_id: str
    fps: float  # recent frames per second of wall time
    kbps: float  # recent kbit per second of video
    sink: SinkState
    source: SourceStats | None = None  # None when frames come from a plain iterable


class EdgeObserver:
    """Does nothing; subclasses override the calls they need."""

    def on_frame(self, result: FrameResult, status: EdgeStatus) -> None:
        """After each coded frame."""

    def on_status(self, result: FrameResult | None, status: EdgeStatus) -> None:
        """Every `status_interval` seconds during a run, and when the summary is made."""

    def on_end(self, frames: int) -> None:
        """When `run` returns, after `frames` frames."""


class FrameCallback(EdgeObserver):
    """Calls `function(result)` after each frame."""

    def __init__(self, function: Callable[[FrameResult], None]):
        self.function = function

    def on_frame(self, result: FrameResult, status: EdgeStatus) -> None:
        self.function(result)


def status_line(result: FrameResult, status: EdgeStatus) -> str:
    """One line: frame, rates, groups, background quality, queue, drops, cloud connection."""
    dropped = (status.source.dropped_slow if status.source is not None else 0) + status.sink.dropped
    st = status.sink.streamer
    cloud = ""
    if st is not None:
        refused = f" REFUSED {st.refused}" if st.refused else ""
        cloud = f" | cloud {'up' if st.connected else 'DOWN'} acked {st.stored + st.duplicate}{refused}"
    plan = result.plan
    bg = f"{plan.groups[0].quality:.2f}" if result.background and plan.has_background else "-"
    return (f"[{status.stream_id}] frame {result.index} | {status.fps:4.1f} fps | {status.kbps:7.1f} kbps | "
            f"groups {len(plan.object_ids):2d} | bg q {bg} | queue {status.sink.depth} | dropped {dropped}{cloud}")


class StatusLine(EdgeObserver):
    """The live status line, rewritten in place on a terminal stream (e.g. sys.stderr)."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def on_status(self, result: FrameResult | None, status: EdgeStatus) -> None:
        if result is not None:
            self.stream.write("\r" + status_line(result, status) + "\x1b[K")
            self.stream.flush()

    def on_end(self, frames: int) -> None:
        if frames:
            self.stream.write("\n")


class EdgeMetrics(EdgeObserver):
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

    def on_frame(self, result: FrameResult, status: EdgeStatus) -> None:
        plan = result.plan
        self.frames.inc()
        for gid, n in result.group_bytes.items():
            self.bytes.labels(self.stream, plan.groups[gid].label).inc(n)
        self.groups.set(len(plan.object_ids))
        if result.background == "fill":
            self.fills.inc()
        elif result.background:
            self.backgrounds.inc()
            if plan.has_background:
                self.bg_quality.set(plan.groups[0].quality)
        for stage, v in result.times.items():
            self.stage.labels(self.stream, stage).observe(v)
        self.fps.set(status.fps)
        self.kbps.set(status.kbps)
        self.queue.set(status.sink.depth)

    def on_status(self, result: FrameResult | None, status: EdgeStatus) -> None:
        s = self.stream
        if status.source is not None:
            self.dropped.labels(s, "slow_consumer").set(status.source.dropped_slow)
            self.dropped.labels(s, "fps_cap").set(status.source.dropped_fps_cap)
            self.reconnects.labels(s, "source").set(status.source.reconnects)
        if status.sink.spool:
            c = status.sink.spool
            self.dropped.labels(s, "spool_size").set(c["dropped_size"])
            self.dropped.labels(s, "spool_age").set(c["dropped_age"])
            for reason in ("rejected", "conflict", "oversize"):  # the cloud's permanent refusals (edge.spool.REFUSED)
                self.dropped.labels(s, reason).set(c.get(reason, 0))
        st = status.sink.streamer
        if st is not None:
            self.acked.labels(s, "stored").set(st.stored)
            self.acked.labels(s, "duplicate").set(st.duplicate)
            self.acked.labels(s, "rejected").set(st.rejected)
            self.acked.labels(s, "conflict").set(st.conflict)
            self.reconnects.labels(s, "cloud").set(st.reconnects)
