"""The web viewer over HTTP: a real cloud, the real viewer, real requests (httpx); every endpoint with
good and bad input, and the cloud going away."""

from __future__ import annotations

import threading

import cv2
import httpx
import numpy as np
import pytest

from codec.bitstream import record_crc
from tests.cloud_fixtures import cloud_frames, relabel, start_server, tokens_file  # noqa: F401 - fixtures
from tests.web_fixtures import site  # noqa: F401 - fixture


def get(site, path: str, **kw) -> httpx.Response:
    return httpx.get(site.url + path, timeout=20, **kw)


def png(response: httpx.Response) -> np.ndarray:
    assert response.headers["content-type"] == "image/png", response.text[:300]
    return cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR)


def test_streams_page_lists_frames_bytes_and_times(site):
    r = get(site, "/")
    assert r.status_code == 200
    assert 'data-stream="cam"' in r.text and 'data-stream="secure"' in r.text
    cam = {s.stream_id: s for s in site.client.list_streams()}["cam"]
    row = r.text.split('data-stream="cam"')[1].split("</tr>")[0]
    assert f">{cam.frames}<" in row and f">{cam.bytes}<" in row and "1970-01-01T00:00:00.003" in row
    assert "kbps" in r.text


def test_live_view_and_composite(site, cloud_frames):
    r = get(site, "/streams/cam")
    assert r.status_code == 200 and 'id="frame-index">3<' in r.text and "/static/live.js" in r.text
    assert get(site, "/static/live.js").status_code == 200
    image = png(get(site, "/streams/cam/composite.png"))
    assert image.shape == (256, 256, 3) and image.std() > 10
    assert png(get(site, "/streams/cam/composite.png?frame=1")).shape == (256, 256, 3)
    locked = png(get(site, "/streams/secure/composite.png?frame=0"))
    car = cloud_frames.secure[0].groups[2].bbox
    inside = locked[car.y + 10: car.y + car.height - 10, car.x + 10: car.x + car.width - 10]
    assert (inside == 90).all()  # the encrypted car is a grey locked box, not garbage pixels


def test_gallery_filters_and_pages(site):
    r = get(site, "/streams/cam/regions")
    assert r.status_code == 200 and r.text.count('class="card region"') == 8  # 4 frames x (person, car)
    assert r.text.count('class="card region"') == 8
    r = get(site, "/streams/cam/regions", params={"label": "car", "first": "1", "last": "2"})
    cards = r.text.count('class="card region"')
    assert cards == 2 and 'data-label="person"' not in r.text
    r = get(site, "/streams/cam/regions", params={"min_score": "0.8"})
    assert r.text.count('data-label="person"') == 4 and 'data-label="car"' not in r.text  # car scores 0.7
    r = get(site, "/streams/cam/regions", params={"box": "20,20,4,4"})
    assert r.text.count('data-label="person"') == 4 and 'data-label="car"' not in r.text
    r = get(site, "/streams/cam/regions", params={"time": "", "start": "2000", "end": "9000"})
    assert r.text.count('class="card region"') == 4  # frames 2 and 3
    r = get(site, "/streams/cam/regions", params={"per_page": "3", "page": "3"})
    assert r.text.count('class="card region"') == 2 and "page 3 of 3" in r.text and 'id="prev"' in r.text
    r = get(site, "/streams/secure/regions", params={"label": "car"})
    assert r.text.count('class="locked"') == 2 and "crop.png" not in r.text


def test_region_detail_crop_and_overlay(site, cloud_frames, codec):
    r = get(site, "/streams/cam/frames/1/groups/1")
    assert r.status_code == 200 and "person" in r.text and "plaintext" in r.text and "not tracked" in r.text
    expected = codec.decode(relabel(cloud_frames.plain, "cam", 1), groups=[1]).groups[1]
    crop = png(get(site, "/streams/cam/frames/1/groups/1/crop.png"))
    assert np.array_equal(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB), expected.pixels)
    overlay = png(get(site, "/streams/cam/frames/1/groups/1/crop.png", params={"overlay": "1"}))
    assert overlay.shape == crop.shape and not np.array_equal(overlay, crop)
    r = get(site, "/streams/secure/frames/0/groups/2")
    assert r.status_code == 200 and 'id="locked"' in r.text and cloud_frames.key.key_id in r.text
    assert "crop.png" not in r.text
    r = get(site, "/streams/secure/frames/0/groups/2/crop.png")
    assert r.status_code == 423 and "locked" in r.text and r.headers["content-type"].startswith("text/html")


def test_bandwidth_plot(site):
    r = get(site, "/streams/cam/bandwidth")
    assert r.status_code == 200 and "<svg" in r.text
    for name in ("background", "person", "car"):
        assert f'data-class="{name}"' in r.text
    frames = site.client.list_frames("cam")
    person = sum(g.bytes for f in frames for g in f.groups if g.label == "person")
    assert f">{person}<" in r.text


@pytest.mark.parametrize("path", [
    "/streams/nope", "/streams/nope/composite.png", "/streams/nope/events", "/streams/nope/regions",
    "/streams/nope/frames/0/groups/1", "/streams/nope/frames/0/groups/1/crop.png", "/streams/nope/bandwidth",
    "/streams/cam/frames/99/groups/1", "/streams/cam/frames/0/groups/7", "/streams/cam/composite.png?frame=99",
    "/streams/cam/frames/0/groups/7/crop.png", "/no/such/page"])
def test_unknown_things_are_404_pages(site, path):
    r = get(site, path)
    assert r.status_code == 404 and 'id="error"' in r.text, r.text[:300]


@pytest.mark.parametrize("path, words", [
    ("/streams/cam/regions?first=3&last=1", "after the end"),
    ("/streams/cam/regions?start=9000&end=10", "after the end"),
    ("/streams/cam/regions?first=-1", "outside"),
    ("/streams/cam/regions?first=abc", "not a whole number"),
    ("/streams/cam/regions?start=yesterday", "ISO"),
    ("/streams/cam/regions?min_score=2", "outside 0..1"),
    ("/streams/cam/regions?min_score=x", "not a number"),
    ("/streams/cam/regions?box=1,2,3", "x,y,width,height"),
    ("/streams/cam/regions?box=1,2,0,5", "width and height"),
    ("/streams/cam/regions?per_page=100000", "outside 1..200"),
    ("/streams/cam/regions?page=0", "outside"),
    ("/streams/cam/regions?page=50", "past the last page"),
    ("/streams/cam/frames/-1/groups/1", "frame"),
    ("/streams/cam/frames/x/groups/1", "frame"),
    ("/streams/cam/frames/99999999999999999999999/groups/1", "frame"),
    ("/streams/cam/frames/0/groups/99999999999/crop.png", "group_id"),
    ("/streams/cam/composite.png?frame=-4", "frame"),
])
def test_bad_input_is_a_400_page_naming_the_problem(site, path, words):
    r = get(site, path)
    assert r.status_code == 400 and 'id="error"' in r.text and words in r.text, r.text[:500]


def test_a_damaged_group_is_reported(site, cloud_frames):
    frame = relabel(cloud_frames.plain, "damaged", 0)
    g = frame.groups[1]
    g.payload = np.random.default_rng(3).integers(0, 256, len(g.payload), np.uint8).tobytes()
    g.crc32 = record_crc(frame.header, g)
    list(site.client.ingest([frame]))
    r = get(site, "/streams/damaged/frames/0/groups/1/crop.png")
    assert r.status_code == 502 and "damaged" in r.text and "DATA_LOSS" in r.text
    assert get(site, "/streams/damaged/frames/0/groups/2/crop.png").status_code == 200  # the other group decodes
    composite = get(site, "/streams/damaged/composite.png")
    assert composite.status_code == 200 and png(composite).shape == (256, 256, 3)  # shown with a warning


def test_live_events_announce_new_frames(site, cloud_frames):
    got: list[str] = []
    with httpx.stream("GET", site.url + "/streams/cam/events", timeout=20) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        lines = r.iter_lines()
        assert next(lines).startswith("retry:")
        threading.Timer(0.5, lambda: list(site.client.ingest([relabel(cloud_frames.plain, "cam", 4)]))).start()
        for line in lines:
            got.append(line)
            if line.startswith("data:"):
                break
    assert "event: frame" in got and '"frame": 4' in got[-1]


def test_a_down_cloud_is_a_503_page(site):
    site.server.stop(grace=0.1)
    r = get(site, "/")
    assert r.status_code == 503 and "unreachable" in r.text and "UNAVAILABLE" in r.text
    assert get(site, "/streams/cam/regions").status_code == 503


def test_roistream_web_command_serves_the_viewer(site):
    """`roistream web --cloud HOST:PORT --port 0` as a process: it prints its URL, serves the pages, and
    stops on SIGINT."""
    import os
    import re
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "roistream.cli", "web", "--cloud", f"127.0.0.1:{site.server.port}",
                             "--port", "0"], stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        line = proc.stderr.readline()
        match = re.search(r"on (http://127\.0\.0\.1:\d+/)", line)
        assert match, line
        r = httpx.get(match.group(1), timeout=20)
        assert r.status_code == 200 and 'data-stream="cam"' in r.text
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0


def test_a_refused_token_is_a_502_page_and_the_query_token_works(start_server, tokens_file, cloud_frames):
    from cloud.client import CloudClient
    from cloud.web.server import WebViewer

    server = start_server(tokens=tokens_file)
    target = f"127.0.0.1:{server.port}"
    with CloudClient(target, token="edge-secret") as edge:
        assert len(list(edge.ingest([relabel(cloud_frames.plain, "cam", 0)]))) == 1
    for token, status in (("edge-secret", 502), ("analytics-secret", 200)):
        with CloudClient(target, token=token) as client, WebViewer(client, target) as viewer:
            r = httpx.get(viewer.url, timeout=20)
            assert r.status_code == status, r.text[:300]
            assert ("refused the viewer" in r.text and "ingest only" in r.text) == (status == 502)


def test_the_plot_bins_by_time_even_when_the_clock_steps_back():
    from cloud.web import plot
    from proto import service_pb2

    def frame(index: int, t: int, background: int, person: int) -> service_pb2.FrameInfo:
        f = service_pb2.FrameInfo(frame_index=index, timestamp_us=t)
        f.groups.add(group_id=0, bytes=background)
        f.groups.add(group_id=1, label="person", bytes=person)
        return f

    starts, series = plot.bytes_per_class([frame(0, 5_000, 100, 10), frame(1, 1_000, 200, 20), frame(2, 9_000, 0, 30)],
                                          bins=2)
    assert starts == [1_000, 5_001] and series == {"background": [300, 0], "person": [30, 30]}
    assert plot.svg([]).count("no frames") == 1 and plot.svg([frame(0, 0, 1, 1)]).count("<polyline") == 2


def _subscriptions(server) -> float:
    return server.metrics.registry.get_sample_value("roistream_active_subscriptions")


def _until(condition, what: str, timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_closed_page_and_a_stopped_viewer_end_their_subscriptions(site):
    """The live view's Subscribe lives only as long as its page: closing the event stream cancels it,
    and stopping the viewer with pages still open cancels theirs and returns promptly."""
    import time

    with httpx.stream("GET", site.url + "/streams/cam/events", timeout=20) as r:
        next(r.iter_lines())
        _until(lambda: _subscriptions(site.server) == 1, "the subscription")
    _until(lambda: _subscriptions(site.server) == 0, "the subscription of a closed page to end")
    with httpx.stream("GET", site.url + "/streams/cam/events", timeout=20) as r:
        next(r.iter_lines())
        _until(lambda: _subscriptions(site.server) == 1, "the subscription")
        started = time.monotonic()
        site.viewer.stop()
        assert time.monotonic() - started < 8
    _until(lambda: _subscriptions(site.server) == 0, "the subscription of a stopped viewer to end")


def test_a_tracked_group_shows_its_track_id(site, cloud_frames):
    frame = relabel(cloud_frames.plain, "tracked", 0)
    frame.groups[1].track_id = 42
    list(site.client.ingest([relabel(frame, "tracked", 0)]))  # relabel recomputes the CRCs
    r = get(site, "/streams/tracked/frames/0/groups/1")
    assert r.status_code == 200 and "<td>42</td>" in r.text
