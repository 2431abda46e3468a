"""The gallery's filters, parsed from a page's query string.

Parsed by hand rather than by FastAPI's validation because an HTML form sends every field, empty
ones included: an empty field means "no filter", and a malformed one is a 400 page naming the field.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass

from proto import service_pb2

MAX_PER_PAGE = 200
MAX_SCAN_FRAMES = 10_000  # the cloud's ListFrames limit: one gallery query looks at most at this many frames


class BadInput(ValueError):
    """A query parameter the viewer cannot use; shown as a 400 page."""


def _int(params: Mapping[str, str], name: str, *, low: int = 0, high: int | None = None) -> int | None:
    raw = params.get(name, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BadInput(f"{name}={raw!r} is not a whole number") from None
    if value < low or (high is not None and value > high):
        raise BadInput(f"{name}={value} is outside {low}..{high if high is not None else 'any'}")
    return value


def parse_time(name: str, raw: str) -> int | None:
    """Microseconds since the epoch from an integer or an ISO-8601 time (UTC unless it says otherwise)."""
    raw = raw.strip()
    if not raw:
        return None
    if raw.lstrip("-").isdigit():
        return int(raw)
    try:
        when = datetime.datetime.fromisoformat(raw)
    except ValueError:
        raise BadInput(f"{name}={raw!r} is neither microseconds nor an ISO time (2026-12-04T20:50:00)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return int(when.timestamp() * 1_000_000)


def _box(raw: str) -> tuple[int, int, int, int] | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        x, y, w, h = (int(v) for v in raw.split(","))
    except ValueError:
        raise BadInput(f"box={raw!r} is not x,y,width,height") from None
    if min(x, y) < 0 or min(w, h) <= 0:
        raise BadInput(f"box={raw!r}: x and y must be >= 0, width and height > 0")
    return x, y, w, h


def _ordered(name: str, first, last):
    if first is not None and last is not None and first > last:
        raise BadInput(f"{name}: the start ({first}) is after the end ({last})")
    return first, last


@dataclass(frozen=True)
class GalleryFilter:
    labels: frozenset[str] = frozenset()
    first_frame: int | None = None
    last_frame: int | None = None
    start_us: int | None = None
    end_us: int | None = None
    min_score: float = 0.0
    box: tuple[int, int, int, int] | None = None
    page: int = 1
    per_page: int = 24

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> "GalleryFilter":
        labels = frozenset(v.strip() for v in params.get("label", "").split(",") if v.strip())
        first, last = _ordered("frames", _int(params, "first"), _int(params, "last"))
        start, end = _ordered("time", parse_time("start", params.get("start", "")),
                              parse_time("end", params.get("end", "")))
        raw_score = params.get("min_score", "").strip()
        try:
            score = float(raw_score) if raw_score else 0.0
        except ValueError:
            raise BadInput(f"min_score={raw_score!r} is not a number") from None
        if not 0.0 <= score <= 1.0:
            raise BadInput(f"min_score={score} is outside 0..1")
        return cls(labels, first, last, start, end, score, _box(params.get("box", "")),
                   _int(params, "page", low=1) or 1, _int(params, "per_page", low=1, high=MAX_PER_PAGE) or 24)

    @property
    def frames(self) -> tuple[int, int] | None:
        if self.first_frame is None and self.last_frame is None:
            return None
        return self.first_frame or 0, self.last_frame if self.last_frame is not None else 2**63 - 1

    @property
    def time(self) -> tuple[int, int] | None:
        if self.start_us is None and self.end_us is None:
            return None
        return (self.start_us if self.start_us is not None else -(2**63),
                self.end_us if self.end_us is not None else 2**63 - 1)

    def keeps(self, group: service_pb2.GroupInfo) -> bool:
        """Whether an object group passes the filters the cloud's ListFrames cannot apply."""
        if self.labels and group.label not in self.labels:
            return False
        if group.score < self.min_score:
            return False
        if self.box is not None:
            x, y, w, h = self.box
            b = group.bbox
            if b.x >= x + w or x >= b.x + b.width or b.y >= y + h or y >= b.y + b.height:
                return False
        return True
