"""Frame sources for the edge node: video files, RTSP/HTTP streams, webcams, image folders and globs.

`open_source(spec)` picks the source from the spec:

* an integer (``"0"``) or ``/dev/videoN``: a webcam (OpenCV, live);
* ``rtsp://``, ``rtmp://``, ``http(s)://``, ``udp://``, ``tcp://`` URLs: a network stream (live);
* a folder: its images in name order; a pattern with ``*``, ``?`` or ``[``: the matching images;
* a file: a video (OpenCV / FFmpeg) or a single image.

Every source yields `Frame`s (RGB uint8, source index, capture timestamp in microseconds).

Live sources are read by a background thread into a small drop-oldest buffer, so a consumer that is
slower than the camera always gets a recent frame and latency does not build up (the drops are
counted). When a live source drops, the reader reconnects with exponential backoff. File sources are
read at the consumer's pace (no frame is lost) unless `realtime=True`, which plays them like a
camera at their native frame rate, with the same dropping. `fps_cap` thins any source by timestamp.

Dead or invalid sources raise `SourceError` with a message that says what was tried.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from codec.data import IMAGE_SUFFIXES

log = logging.getLogger(__name__)

LIVE_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")
GLOB_CHARS = re.compile(r"[*?\[]")


class SourceError(RuntimeError):
    """A source cannot be opened or read (dead stream, missing file, not a video...)."""


@dataclass
class Frame:
    """One captured frame."""

    image: np.ndarray  # HxWx3 uint8 RGB
    index: int  # position in the source (0-based; gaps mean frames were dropped or thinned)
    timestamp_us: int  # capture time, microseconds since the Unix epoch

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


@dataclass
class SourceStats:
    read: int = 0  # frames read from the device / file
    emitted: int = 0  # frames handed to the consumer
    dropped_slow: int = 0  # dropped because the consumer was slower than the source
    dropped_fps_cap: int = 0  # thinned by the frame-rate cap
    reconnects: int = 0
    last_error: str = ""


@dataclass
class Backoff:
    """Exponential backoff with jitter: initial, initial*factor, ... capped at maximum."""

    initial: float = 0.5
    maximum: float = 10.0
    factor: float = 2.0
    jitter: float = 0.1
    _next: float = field(default=0.0, init=False, repr=False)

    def reset(self) -> None:
        self._next = 0.0

    def next_delay(self) -> float:
        self._next = self.initial if self._next == 0 else min(self._next * self.factor, self.maximum)
        return self._next * (1.0 + self.jitter * (2 * np.random.random() - 1))


def _now_us() -> int:
    return time.time_ns() // 1000


def _to_rgb(bgr: np.ndarray) -> np.ndarray:
    import cv2

    if bgr.ndim == 2:
        return cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
    if bgr.shape[2] == 4:
        return cv2.cvtColor(bgr, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class Source:
    """Base class: iterate to get frames; `close()` releases the device. Use as a context manager."""

    name: str = ""
    live: bool = False
    nominal_fps: float | None = None

    def __init__(self, fps_cap: float | None = None, max_frames: int | None = None):
        if fps_cap is not None and fps_cap <= 0:
            raise ValueError("fps_cap must be positive")
        self.fps_cap = fps_cap
        self.max_frames = max_frames
        self.stats = SourceStats()
        self._last_emit_us: int | None = None

    # subclasses yield raw frames (before the cap)
    def _frames(self) -> Iterator[Frame]:
        raise NotImplementedError

    def _keep(self, frame: Frame) -> bool:
        if self.fps_cap is None:
            return True
        period_us = 1e6 / self.fps_cap
        # 5% slack so a 10 fps source capped at 10 fps keeps every frame despite timestamp jitter
        if self._last_emit_us is not None and frame.timestamp_us - self._last_emit_us < 0.95 * period_us:
            self.stats.dropped_fps_cap += 1
            return False
        self._last_emit_us = frame.timestamp_us
        return True

    def __iter__(self) -> Iterator[Frame]:
        try:
            for frame in self._frames():
                if self.max_frames is not None and self.stats.emitted >= self.max_frames:
                    return
                if not self._keep(frame):
                    continue
                self.stats.emitted += 1
                yield frame
                if self.max_frames is not None and self.stats.emitted >= self.max_frames:
                    return
        finally:
            self.close()

    def close(self) -> None:
        pass

    def __enter__(self) -> "Source":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def effective_fps(self) -> float | None:
        """Frame rate the consumer sees at most (native rate thinned by the cap)."""
        rates = [r for r in (self.nominal_fps, self.fps_cap) if r]
        return min(rates) if rates else None


# ---------------------------------------------------------------- image folders and globs
class ImageSequenceSource(Source):
    """Still images in a fixed order; timestamps are spaced by 1/fps (default 1 fps) from the start."""

    def __init__(self, files: list[Path], name: str, fps: float | None = None, **kw):
        super().__init__(**kw)
        if not files:
            raise SourceError(f"{name}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
        self.files, self.name = files, name
        self.nominal_fps = fps or 1.0
        self._start_us = _now_us()

    def _frames(self) -> Iterator[Frame]:
        import cv2

        for i, path in enumerate(self.files):
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                raise SourceError(f"{path}: not a readable image")
            self.stats.read += 1
            yield Frame(_to_rgb(bgr), i, self._start_us + int(round(i * 1e6 / self.nominal_fps)))


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


# ---------------------------------------------------------------- OpenCV captures
def _open_capture(target: str | int, timeout_ms: int):
    import cv2

    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms]
    if isinstance(target, int):
        cap = cv2.VideoCapture(target, cv2.CAP_ANY, params)
    else:
        cap = cv2.VideoCapture(target, cv2.CAP_FFMPEG if "://" in target else cv2.CAP_ANY, params)
    if not cap.isOpened():
        cap.release()
        return None
    return cap


class VideoFileSource(Source):
    """A video file, read at the consumer's pace (or like a camera with realtime=True)."""

    def __init__(self, path: Path, realtime: bool = False, buffer: int = 1, **kw):
        super().__init__(**kw)
        import cv2

        self.path, self.name = Path(path), str(path)
        self._cap = _open_capture(str(self.path), 10_000)
        if self._cap is None:
            raise SourceError(f"{path}: OpenCV cannot open this file as a video (unsupported or corrupt)")
        ok, first = self._cap.read()
        if not ok or first is None:
            self._cap.release()
            raise SourceError(f"{path}: no frame could be decoded (empty, corrupt or not a video)")
        self._first = first
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.nominal_fps = float(fps) if fps and 0 < fps < 1000 else 25.0
        count = self._cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self.frame_count = int(count) if count and count > 0 else None
        self.width, self.height = first.shape[1], first.shape[0]
        self.realtime, self.buffer = realtime, buffer
        self._start_us = _now_us()
        self._reader: _LiveReader | None = None

    def _raw(self) -> Iterator[Frame]:
        i = 0
        bgr = self._first
        while bgr is not None:
            self.stats.read += 1
            yield Frame(_to_rgb(bgr), i, self._start_us + int(round(i * 1e6 / self.nominal_fps)))
            i += 1
            if self._cap is None:
                return
            ok, bgr = self._cap.read()
            if not ok:
                bgr = None

    def _frames(self) -> Iterator[Frame]:
        if not self.realtime:
            yield from self._raw()
            return
        self._start_us = _now_us()
        raw = self._raw()
        period = 1.0 / self.nominal_fps
        t0 = time.monotonic()

        def grab(_):
            frame = next(raw, None)
            if frame is not None:
                delay = t0 + frame.index * period - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            return frame

        self._reader = _LiveReader(grab, self.stats, self.buffer, name=self.name)
        yield from self._reader

    def close(self) -> None:
        if self._reader is not None:
            self._reader.stop()
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class LiveSource(Source):
    """A webcam or network stream. Reconnects with backoff when it drops.

    open_retries: attempts to open it at start (a source that never opens is an error);
    max_reconnects: reconnections after it was running (None = forever).
    """

    live = True

    def __init__(self, target: str | int, name: str | None = None, buffer: int = 1, open_retries: int = 3,
                 max_reconnects: int | None = None, backoff: Backoff | None = None, timeout_s: float = 5.0, **kw):
        super().__init__(**kw)
        import cv2

        self.target = target
        self.name = name or str(target)
        self.buffer = buffer
        self.max_reconnects = max_reconnects
        self.backoff = backoff or Backoff()
        self.timeout_ms = int(timeout_s * 1000)
        self._cap = None
        errors = []
        for attempt in range(max(1, open_retries)):
            self._cap = _open_capture(target, self.timeout_ms)
            if self._cap is not None:
                ok, first = self._cap.read()
                if ok and first is not None:
                    self._first: np.ndarray | None = first
                    break
                self._cap.release()
                self._cap = None
                errors.append("opened but no frame arrived")
            else:
                errors.append("could not connect")
            if attempt + 1 < max(1, open_retries):
                time.sleep(self.backoff.next_delay())
        if self._cap is None:
            what = f"camera {target}" if isinstance(target, int) else f"stream {self.name}"
            raise SourceError(f"{what}: cannot open after {max(1, open_retries)} attempt(s) ({errors[-1]})")
        self.backoff.reset()
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.nominal_fps = float(fps) if fps and 0 < fps < 1000 else None
        self._index = 0
        self._reader: _LiveReader | None = None

    def _grab(self, stop: threading.Event) -> Frame | None:
        """Next frame from the device; reconnects on failure; None once given up or stopped."""
        if self._first is not None:
            bgr, self._first = self._first, None
        else:
            bgr = None
            while bgr is None and not stop.is_set():
                ok, bgr = (self._cap.read() if self._cap is not None else (False, None))
                if ok and bgr is not None:
                    break
                bgr = None
                if self.max_reconnects is not None and self.stats.reconnects >= self.max_reconnects:
                    self.stats.last_error = f"{self.name}: gave up after {self.stats.reconnects} reconnects"
                    raise SourceError(self.stats.last_error)
                if self._cap is not None:
                    self._cap.release()
                    self._cap = None
                delay = self.backoff.next_delay()
                log.warning("source %s dropped; reconnecting in %.1f s", self.name, delay)
                if stop.wait(delay):
                    return None
                self.stats.reconnects += 1
                self._cap = _open_capture(self.target, self.timeout_ms)
                if self._cap is not None:
                    log.info("source %s reconnected", self.name)
            if bgr is None:
                return None
            self.backoff.reset()
        self.stats.read += 1
        frame = Frame(_to_rgb(bgr), self._index, _now_us())
        self._index += 1
        return frame

    def _frames(self) -> Iterator[Frame]:
        self._reader = _LiveReader(self._grab, self.stats, self.buffer, name=self.name)
        yield from self._reader

    def close(self) -> None:
        if self._reader is not None:
            self._reader.stop()
            self._reader = None
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class _LiveReader:
    """Reads frames on a thread into a drop-oldest buffer of `size` frames."""

    def __init__(self, grab, stats: SourceStats, size: int = 1, name: str = ""):
        self._grab, self.stats = grab, stats
        self._buf: deque[Frame] = deque()
        self._size = max(1, size)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._done = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"source-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                frame = self._grab(self._stop)
                if frame is None:
                    break
                with self._cond:
                    if len(self._buf) >= self._size:
                        self._buf.popleft()
                        self.stats.dropped_slow += 1
                    self._buf.append(frame)
                    self._cond.notify()
        except BaseException as exc:  # surfaced to the consumer
            self._error = exc
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def __iter__(self) -> Iterator[Frame]:
        while True:
            with self._cond:
                while not self._buf and not self._done:
                    self._cond.wait(0.5)
                if self._buf:
                    frame = self._buf.popleft()
                elif self._error is not None:
                    err = self._error
                    raise err if isinstance(err, SourceError) else SourceError(str(err)) from err
                else:
                    return
            yield frame

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


# ---------------------------------------------------------------- factory
def open_source(spec: str | int | Path, *, fps_cap: float | None = None, max_frames: int | None = None,
                realtime: bool = False, buffer: int = 1, open_retries: int = 3, max_reconnects: int | None = None,
                backoff: Backoff | None = None, timeout_s: float = 5.0, image_fps: float | None = None) -> Source:
    """Open a source from its spec (see the module docstring). Raises SourceError if it is dead or invalid."""
    common = {"fps_cap": fps_cap, "max_frames": max_frames}
    live = {"buffer": buffer, "open_retries": open_retries, "max_reconnects": max_reconnects, "backoff": backoff,
            "timeout_s": timeout_s}
    if isinstance(spec, int):
        return LiveSource(spec, name=f"camera {spec}", **live, **common)
    text = str(spec).strip()
    if not text:
        raise SourceError("empty source")
    if text.isdigit():
        return LiveSource(int(text), name=f"camera {text}", **live, **common)
    if text.lower().startswith(LIVE_SCHEMES):
        return LiveSource(text, **live, **common)
    if "://" in text:
        raise SourceError(f"{text}: unsupported URL scheme (use one of {', '.join(s[:-3] for s in LIVE_SCHEMES)})")
    path = Path(os.path.expanduser(text))
    if text.startswith("/dev/video"):
        if not path.exists():
            raise SourceError(f"camera {text}: no such device")
        return LiveSource(text, **live, **common)
    if path.is_dir():
        return ImageSequenceSource(_images_in(path), name=str(path), fps=image_fps, **common)
    if GLOB_CHARS.search(text) and not path.exists():
        files = sorted(Path(p) for p in glob.glob(os.path.expanduser(text), recursive=True)
                       if Path(p).suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise SourceError(f"{text}: the pattern matches no image files")
        return ImageSequenceSource(files, name=text, fps=image_fps, **common)
    if not path.exists():
        raise SourceError(f"{text}: no such file or directory")
    if not path.is_file():
        raise SourceError(f"{text}: not a regular file")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSequenceSource([path], name=str(path), fps=image_fps, **common)
    return VideoFileSource(path, realtime=realtime, buffer=buffer, **common)
