"""A whole roistream deployment in one process: an embedded cloud server on 127.0.0.1 and an edge
pipeline streaming a source to it. Used by the end-to-end demo and the edge benchmark.

Also the bandwidth yardstick both report: the smallest full-frame JPEG whose PSNR over the ROI
pixels matches ours.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codec.metrics import psnr


@contextmanager
def local_cloud(data_dir: Path, codec=None) -> Iterator:
    """A running `cloud.server.CloudServer` (plaintext gRPC, no auth) on an ephemeral port."""
    from cloud.server import CloudServer, ServerConfig

    server = CloudServer(ServerConfig(data_dir=data_dir, port=0, grace_s=1.0), codec=codec).start()
    try:
        yield server
    finally:
        server.stop(grace=1.0)


@dataclass
class Delivery:
    flushed: bool  # every frame acknowledged before the timeout
    wall_with_acks_s: float
    stored: int
    reconnects: int


def stream_source(server, codec, detector, policy, source, *, stream: str, spool_path: Path, bg_interval: int,
                  max_frames: int | None, bg_fill: bool = True, key=None, target_kbps: float | None = None,
                  on_frame=None, status=None, flush_timeout_s: float = 120.0, pipelined: bool = True):
    """Run the edge pipeline on `source` into `server` through a durable spool; wait for the acks.

    Returns (EdgeSummary, Delivery).
    """
    from edge.pipeline import EdgePipeline
    from edge.sinks import SpoolSink
    from edge.spool import Spool
    from edge.streaming import IngestStreamer

    spool = Spool(spool_path)
    streamer = IngestStreamer(f"127.0.0.1:{server.port}", spool, tls=False).start()
    try:
        pipe = EdgePipeline.init(codec, policy, detector=detector, sink=SpoolSink(spool, streamer), stream_id=stream,
                                 bg_interval=bg_interval, bg_fill=bg_fill, keep_frames=on_frame is not None,
                                 on_frame=on_frame, key=key, target_kbps=target_kbps, status=status,
                                 pipelined=pipelined)
        start = time.perf_counter()
        summary = pipe.run(source, max_frames=max_frames)
        flushed = streamer.flush(flush_timeout_s)
        delivery = Delivery(flushed, time.perf_counter() - start, streamer.stats.stored, streamer.stats.reconnects)
    finally:
        streamer.close()
        spool.close()
    return summary, delivery


def roi_psnr(codec, frame, image: np.ndarray) -> tuple[float, np.ndarray]:
    """PSNR over the pixels of a frame's object groups as decoded, and that pixel mask."""
    ids = [g.group_id for g in frame.groups if g.group_id != 0]
    if not ids:
        return float("nan"), np.zeros(image.shape[:2], bool)
    dec = codec.decode(frame, groups=ids)
    return psnr(image, dec.image, dec.mask), dec.mask


def jpeg_at_psnr(image: np.ndarray, mask: np.ndarray, target_db: float) -> tuple[int, int, float]:
    """(bytes, quality, ROI PSNR) of the smallest full-frame JPEG whose ROI PSNR >= target."""
    import cv2

    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)

    def enc(q):
        _, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, q])
        dec = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        return len(buf), psnr(image, dec, mask)

    lo, hi = 1, 100
    best = (*enc(100), 100)
    while lo <= hi:  # JPEG PSNR grows with quality (monotone enough for a bisection)
        mid = (lo + hi) // 2
        size, db = enc(mid)
        if db >= target_db:
            best, hi = (size, db, mid), mid - 1
        else:
            lo = mid + 1
    return best[0], best[2], best[1]
