"""The video codecs a camera without roistream would stream, run through PyAV (FFmpeg's libx264,
libx265, libsvtav1 and dav1d as PyAV's wheels bundle them), so the edge's bandwidth is compared with
real encoders at their real settings rather than with still-image JPEG.

`PEERS` names each configuration; `encode_clip(frames, peer, quality, fps, rois)` codes a list of
RGB frames as one stream and decodes it back, returning the bytes and the decoded RGB frames.
x264 with ROI offsets gets per-frame rectangles through FFmpeg's `addroi` filter, which attaches
AVRegionOfInterest side data to each frame; libx264 turns it into per-macroblock quantizer offsets
(its adaptive quantization must be on, which is x264's default).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np


@dataclass(frozen=True)
class Peer:
    name: str
    encoder: str  # FFmpeg encoder
    decoder: str  # FFmpeg decoder of its bitstream
    options: dict[str, str]  # encoder private options (besides the quality knob)
    quality_option: str  # "crf" (x264, x265, SVT-AV1)
    sweep: tuple[int, ...]  # quality settings, best first
    roi_qoffset: float | None = None  # FFmpeg ROI qoffset in [-1, 1] (negative = finer) on the ROI rectangles
    notes: str = ""


X264_SWEEP = (16, 20, 24, 28, 32, 36, 40)
ROI_SWEEP = (20, 24, 28, 32, 36, 40, 44, 48)  # the finer ROI needs coarser settings to reach the same ROI PSNR
PEERS: dict[str, Peer] = {p.name: p for p in (
    Peer("x264 veryfast zerolatency", "libx264", "h264", {"preset": "veryfast", "tune": "zerolatency"}, "crf",
         X264_SWEEP, notes="what an IP camera streams: no B-frames, no lookahead"),
    Peer("x264 medium", "libx264", "h264", {"preset": "medium"}, "crf", X264_SWEEP),
    Peer("x265 medium", "libx265", "hevc", {"preset": "medium", "x265-params": "log-level=error"}, "crf",
         (16, 20, 24, 28, 32, 36, 40)),
    Peer("SVT-AV1 preset 10 rtc", "libsvtav1", "libdav1d", {"preset": "10", "svtav1-params": "rtc=1:lp=2"}, "crf",
         (20, 28, 36, 44, 50, 56, 63), notes="SVT-AV1's real-time mode (rtc=1: low delay) at preset 10"),
    Peer("x264 veryfast zerolatency + ROI -0.3", "libx264", "h264", {"preset": "veryfast", "tune": "zerolatency"},
         "crf", ROI_SWEEP, roi_qoffset=-0.3, notes="person rectangles finer by FFmpeg qoffset 0.3"),
    Peer("x264 veryfast zerolatency + ROI -0.6", "libx264", "h264", {"preset": "veryfast", "tune": "zerolatency"},
         "crf", ROI_SWEEP, roi_qoffset=-0.6, notes="person rectangles finer by FFmpeg qoffset 0.6"),
)}

Rect = tuple[int, int, int, int]  # x, y, width, height in pixels


def available(peer: Peer) -> bool:
    import av

    return peer.encoder in av.codecs_available and peer.decoder in av.codecs_available


def _with_rois(frame, rects: Sequence[Rect], qoffset: float):
    """The frame with AVRegionOfInterest side data on `rects` (FFmpeg's addroi filter)."""
    if not rects:
        return frame
    from av.filter import Graph

    graph = Graph()
    node = graph.add_buffer(template=frame)
    head = node
    for x, y, w, h in rects:
        roi = graph.add("addroi", f"x={x}:y={y}:w={w}:h={h}:qoffset={qoffset:.3f}")
        node.link_to(roi)
        node = roi
    sink = graph.add("buffersink")
    node.link_to(sink)
    graph.configure()
    head.push(frame)
    return sink.pull()


@dataclass
class Coded:
    nbytes: int
    frames: list[np.ndarray]  # decoded RGB
    encode_s: float


def encode_clip(frames: Sequence[np.ndarray], peer: Peer, quality: int, fps: float,
                rois: Sequence[Sequence[Rect]] | None = None) -> Coded:
    """Code `frames` (RGB uint8, one size) as one stream at `quality`, then decode it.

    rois: per frame, the rectangles to code finer (used when the peer has a roi_qoffset)."""
    import os

    import av

    os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1: errors only
    h, w = frames[0].shape[:2]
    rate = Fraction(fps).limit_denominator(1001)
    enc = av.CodecContext.create(peer.encoder, "w")
    enc.width, enc.height, enc.pix_fmt = w, h, "yuv420p"
    enc.time_base, enc.framerate = 1 / rate, rate
    enc.options = {**peer.options, peer.quality_option: str(quality)}
    dec = av.CodecContext.create(peer.decoder, "r")
    packets, start = [], time.perf_counter()
    for i, image in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24").reformat(format="yuv420p")
        frame.pts, frame.time_base = i, enc.time_base
        if peer.roi_qoffset is not None and rois is not None:
            frame = _with_rois(frame, rois[i], peer.roi_qoffset)
        packets += enc.encode(frame)
    packets += enc.encode(None)
    encode_s = time.perf_counter() - start
    nbytes = sum(p.size for p in packets)
    decoded = []
    for packet in [*packets, None]:
        decoded += [f.to_ndarray(format="rgb24") for f in dec.decode(packet)]
    if len(decoded) != len(frames):
        raise RuntimeError(f"{peer.name} at {quality}: {len(decoded)} frames decoded of {len(frames)}")
    return Coded(nbytes, decoded, encode_s)
