"""The web viewer in a real browser: a real cloud and the real viewer on 127.0.0.1, frames of the real
codec sent by the edge's streamer (durable spool -> Ingest), and headless Chromium (the system's chromium + chromedriver,
driven by selenium) loading each page, applying a filter, opening a region and watching the live view
follow a newly stored frame. Screenshots go to the test's tmp dir; with ROISTREAM_WEB_SCREENSHOTS=DIR
the live view and the gallery are also copied there (docs/img/ holds the ones the README shows)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from tests.cloud_fixtures import relabel, start_server  # noqa: F401 - fixture

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()),
    reason="no headless browser: Debian chromium and chromium-driver are not installed (scripts/setup installs them)")]
STREAM = "aviary"


@pytest.fixture(scope="module")
def parrots(codec, kodak_image):
    """kodim23 (768x512) with the two parrots as object groups; one frame in clear, one with the red
    parrot encrypted (encrypted frames are bound to their stream and index, so it is encoded as frame 4,
    the one the live view sees arrive)."""
    from codec.crypto import EncryptionKey
    from codec.geometry import block_grid_shape
    from codec.plan import FramePlan

    gm = np.zeros(block_grid_shape(*kodak_image.shape[:2]), np.int32)
    gm[5:32, 4:25] = 1
    gm[6:32, 26:48] = 2
    labels, scores, qualities = {1: "macaw", 2: "parrot"}, {1: 0.91, 2: 0.84}, {0: 0.3, 1: 0.8, 2: 0.8}
    plain = codec.encode(kodak_image, FramePlan.from_groups(gm, qualities, labels=labels, scores=scores),
                         stream_id=STREAM, frame_index=0, timestamp_us=0)
    sealed = codec.encode(kodak_image, FramePlan.from_groups(gm, qualities, labels=labels, scores=scores, encrypt=[2]),
                          stream_id=STREAM, frame_index=4, timestamp_us=int(time.time() * 1e6),
                          key=EncryptionKey.generate())
    return plain, sealed


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,900", f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _wait(condition, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _send(streamer, spool, frames) -> None:
    """Frames through the edge: into its spool, out by its streamer, acknowledged by the cloud."""
    for f in frames:
        spool.put(f.SerializeToString(), f.header.stream_id, f.header.frame_index)
    assert streamer.flush(60), streamer.fatal_error


def _loaded(driver, element_id: str) -> bool:
    return driver.execute_script(
        f"const i = document.getElementById('{element_id}'); return i.complete && i.naturalWidth > 0;")


def test_pages_in_headless_chromium(start_server, parrots, browser, tmp_path):
    from selenium.webdriver.common.by import By

    from cloud.client import CloudClient
    from cloud.web.server import WebViewer
    from edge.spool import Spool
    from edge.streaming import IngestStreamer

    plain, sealed = parrots
    server = start_server()
    target = f"127.0.0.1:{server.port}"
    now = int(time.time() * 1e6)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with Spool(tmp_path / "edge.spool") as spool, IngestStreamer(target, spool, tls=False) as streamer, CloudClient(target) as query, \
            WebViewer(query, target) as viewer:
        _send(streamer.start(), spool, [relabel(plain, STREAM, i, now - (4 - i) * 100_000) for i in range(4)])
        url = viewer.url

        browser.get(url)
        row = browser.find_element(By.CSS_SELECTOR, f'tr[data-stream="{STREAM}"]')
        assert "4" in row.text and "live" in row.text
        browser.save_screenshot(str(shots / "streams.png"))

        browser.find_element(By.LINK_TEXT, STREAM).click()
        _wait(lambda: _loaded(browser, "composite"), "the composite")
        assert browser.find_element(By.ID, "frame-index").text == "3"
        assert browser.execute_script("return document.getElementById('composite').naturalWidth") == 768
        _wait(lambda: browser.find_element(By.ID, "live-status").text == "live", "the event stream")
        _send(streamer, spool, [sealed])  # a new frame, its red parrot encrypted
        _wait(lambda: browser.find_element(By.ID, "frame-index").text == "4", "the live view to show frame 4")
        _wait(lambda: "frame=4" in browser.find_element(By.ID, "composite").get_attribute("src")
              and _loaded(browser, "composite"), "the composite of frame 4")
        browser.save_screenshot(str(shots / "live.png"))

        browser.get(f"{url}streams/{STREAM}/regions")
        assert len(browser.find_elements(By.CSS_SELECTOR, ".card.region")) == 10  # 5 frames x 2 parrots
        assert len(browser.find_elements(By.CSS_SELECTOR, ".card .locked")) == 1  # frame 4's red parrot
        label = browser.find_element(By.NAME, "label")
        label.send_keys("macaw")
        browser.find_element(By.NAME, "min_score").send_keys("0.9")
        browser.find_element(By.ID, "apply").click()
        _wait(lambda: "label=macaw" in browser.current_url, "the filtered gallery")
        cards = browser.find_elements(By.CSS_SELECTOR, ".card.region")
        assert len(cards) == 5 and {c.get_attribute("data-label") for c in cards} == {"macaw"}
        assert "5 regions in 5 frames" in browser.find_element(By.ID, "summary").text
        _wait(lambda: browser.execute_script(
            "return [...document.querySelectorAll('.card img')].every(i => i.complete && i.naturalWidth > 0)"),
            "the gallery's crops")
        browser.find_element(By.NAME, "label").clear()
        browser.find_element(By.NAME, "min_score").clear()
        browser.find_element(By.ID, "apply").click()
        _wait(lambda: len(browser.find_elements(By.CSS_SELECTOR, ".card.region")) == 10, "the whole gallery")
        _wait(lambda: browser.execute_script(
            "return [...document.querySelectorAll('.card img')].every(i => i.complete && i.naturalWidth > 0)"),
            "the gallery's crops")
        browser.save_screenshot(str(shots / "gallery.png"))

        browser.find_element(By.CSS_SELECTOR, '.card.region[data-frame="1"][data-group="1"] a').click()
        _wait(lambda: _loaded(browser, "crop") and _loaded(browser, "overlay"), "the region's crop and overlay")
        details = browser.find_element(By.ID, "details").text
        assert "macaw" in details and "plaintext" in details and "not tracked" in details
        assert browser.execute_script("return document.getElementById('crop').naturalWidth") == 21 * 16
        browser.save_screenshot(str(shots / "region.png"))

        browser.get(f"{url}streams/{STREAM}/frames/4/groups/2")
        assert browser.find_element(By.ID, "locked").text == "locked"
        assert "encrypted" in browser.find_element(By.ID, "encryption").text
        assert not browser.find_elements(By.ID, "crop")

        browser.get(f"{url}streams/{STREAM}/bandwidth")
        assert {e.get_attribute("data-class") for e in browser.find_elements(By.CSS_SELECTOR, "polyline.series")} == {
            "background", "macaw", "parrot"}
        browser.save_screenshot(str(shots / "bandwidth.png"))

        browser.get(f"{url}streams/nope")
        assert "404" in browser.find_element(By.ID, "error").text and "nope" in browser.page_source

    for name in ("streams", "live", "gallery", "region", "bandwidth"):
        assert (shots / f"{name}.png").stat().st_size > 10_000
    if os.environ.get("ROISTREAM_WEB_SCREENSHOTS"):
        out = Path(os.environ["ROISTREAM_WEB_SCREENSHOTS"])
        out.mkdir(parents=True, exist_ok=True)
        for name in ("live", "gallery"):
            shutil.copyfile(shots / f"{name}.png", out / f"web-{name}.png")
