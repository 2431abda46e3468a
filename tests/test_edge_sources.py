"""Frame sources: files, folders, globs, live streams (reconnect, drop-oldest), and clear errors."""

from __future__ import annotations

import http.server
import shutil
import socket
import threading
import time

import cv2
import numpy as np
import pytest

from edge.sources import Backoff, Frame, LiveSource, SourceError, open_source
from codec import paths
from tests.edge_fixtures import needs_shared, vtest_frames

pytestmark = needs_shared()


def test_video_file_frames():
    src = open_source(paths.video_path(), max_frames=5)
    frames = list(src)
    assert [f.index for f in frames] == [0, 1, 2, 3, 4]
    assert all(isinstance(f, Frame) and f.image.shape == (576, 768, 3) and f.image.dtype == np.uint8 for f in frames)
    assert np.array_equal(frames[0].image, vtest_frames(1)[0])  # RGB, not BGR
    steps = np.diff([f.timestamp_us for f in frames])
    assert np.all(np.abs(steps - 100_000) <= 1)  # 10 fps
    assert src.nominal_fps == pytest.approx(10.0) and src.stats.emitted == 5


def test_fps_cap_thins_by_timestamp():
    src = open_source(paths.video_path(), max_frames=4, fps_cap=4)
    assert [f.index for f in src] == [0, 3, 6, 9]  # 10 fps capped at 4: every 250 ms or more
    assert src.stats.dropped_fps_cap == 6 and src.effective_fps == 4


def test_slow_consumer_drops_oldest_frames():
    src = open_source(paths.video_path(), realtime=True, max_frames=4)
    start = time.monotonic()
    got = []
    for f in src:
        got.append((f.index, time.monotonic() - start))
        time.sleep(0.35)  # 3.5 frame periods of work per frame
    indices = [i for i, _ in got]
    assert indices[0] == 0 and all(b - a >= 2 for a, b in zip(indices, indices[1:]))
    assert src.stats.dropped_slow >= 4
    for index, t in got[1:]:  # each frame handed over is recent: no latency builds up
        assert abs(index * 0.1 - t) < 0.35


def test_image_folder_and_glob(tmp_path):
    coco = sorted((paths.coco_dir() / "images" / "train2017").glob("*.jpg"))[:3]
    for p in coco:
        shutil.copy(p, tmp_path / p.name)
    (tmp_path / "notes.txt").write_text("not an image")
    frames = list(open_source(tmp_path))
    assert [f.index for f in frames] == [0, 1, 2]
    assert frames[1].image.shape == cv2.imread(str(coco[1])).shape
    assert len(list(open_source(str(tmp_path / "*.jpg"), max_frames=2))) == 2
    assert len(list(open_source(coco[0]))) == 1


@pytest.mark.parametrize("spec, message", [
    ("/no/such/video.avi", "no such file"),
    ("/no/such/*.jpg", "matches no image"),
    ("ftp://example.com/cam", "unsupported URL scheme"),
    ("/dev/video99", "no such device"),
    ("", "empty source"),
])
def test_invalid_sources_fail_clearly(spec, message):
    with pytest.raises(SourceError, match=message):
        open_source(spec)


def test_corrupt_video_and_empty_folder(tmp_path):
    bad = tmp_path / "broken.avi"
    bad.write_bytes(b"RIFF" + bytes(2000))
    with pytest.raises(SourceError, match="broken.avi"):
        open_source(bad)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no images found"):
        open_source(tmp_path / "empty")
    unreadable = tmp_path / "pics"
    unreadable.mkdir()
    (unreadable / "a.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(SourceError, match="not a readable image"):
        list(open_source(unreadable))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("spec", ["rtsp://127.0.0.1:{port}/cam", "http://127.0.0.1:{port}/cam.mjpg", "7"])
def test_dead_live_sources_fail_clearly(spec):
    start = time.monotonic()
    with pytest.raises(SourceError, match="cannot open after 2 attempt"):
        open_source(spec.format(port=_free_port()), open_retries=2, backoff=Backoff(initial=0.05), timeout_s=2)
    assert time.monotonic() - start < 15


class _VideoServer:
    """Serves vtest.avi over HTTP, throttled like a live feed; `kill()` cuts every connection."""

    def __init__(self, port: int):
        data = paths.video_path().read_bytes()
        dead = self.dead = threading.Event()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "video/x-msvideo")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                for i in range(0, len(data), 32768):
                    if dead.is_set():
                        return
                    try:
                        self.wfile.write(data[i:i + 32768])
                    except OSError:
                        return
                    time.sleep(0.01)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def kill(self):
        self.dead.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def test_live_stream_reconnects_with_backoff():
    port = _free_port()
    server = _VideoServer(port)
    src = LiveSource(f"http://127.0.0.1:{port}/vtest.avi", buffer=4, backoff=Backoff(initial=0.2, maximum=1.0),
                     max_reconnects=50, timeout_s=2, max_frames=40)
    got, restarted = [], None
    try:
        for frame in src:
            got.append(frame)
            if len(got) == 10:
                server.kill()  # the camera goes away...
                threading.Timer(2.0, lambda: setattr(src, "_restarted", _VideoServer(port))).start()
            time.sleep(0.02)
        restarted = getattr(src, "_restarted", None)
    finally:
        server.kill()
        restarted = restarted or getattr(src, "_restarted", None)
        if restarted:
            restarted.kill()
    assert len(got) == 40  # ...and frames flow again after it comes back
    assert src.stats.reconnects >= 1
    assert [f.index for f in got] == sorted(f.index for f in got)
    ts = [f.timestamp_us for f in got]
    assert max(np.diff(ts)) > 1_000_000  # the outage is visible in the capture times
