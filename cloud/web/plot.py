"""Bytes per class over time as an inline SVG: drawn here so the page needs no JavaScript library."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from html import escape

from proto import service_pb2

COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
WIDTH, HEIGHT, PAD = 720, 280, 48


def class_of(group: service_pb2.GroupInfo) -> str:
    return "background" if group.group_id == 0 else (group.label or "object")


def bytes_per_class(frames: Sequence[service_pb2.FrameInfo], bins: int = 60) -> tuple[list[int], dict[str, list[int]]]:
    """(bin start times in µs, {class: bytes in each bin}) over the frames' time span (an edge's clock
    may step back, so the span is min..max, not first..last)."""
    if not frames:
        return [], {}
    t0, t1 = min(f.timestamp_us for f in frames), max(f.timestamp_us for f in frames)
    bins = max(1, min(bins, len(frames)))
    step = max(1, -(-(t1 - t0 + 1) // bins))
    series: dict[str, list[int]] = defaultdict(lambda: [0] * bins)
    for f in frames:
        i = min(bins - 1, (f.timestamp_us - t0) // step)
        for g in f.groups:
            series[class_of(g)][i] += g.bytes
    return [t0 + i * step for i in range(bins)], dict(sorted(series.items()))


def svg(frames: Sequence[service_pb2.FrameInfo]) -> str:
    """An SVG line chart of bytes per class per time bin, with axes, a legend and hover titles."""
    starts, series = bytes_per_class(frames)
    if not series:
        return '<svg xmlns="http://www.w3.org/2000/svg" width="720" height="40"><text x="8" y="24">no frames</text></svg>'
    top = max(max(v) for v in series.values()) or 1
    span = max(1, starts[-1] - starts[0])
    w, h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD

    def xy(i: int, value: int) -> tuple[float, float]:
        x = PAD + (starts[i] - starts[0]) / span * w if len(starts) > 1 else PAD + w / 2
        return round(x, 1), round(PAD + h - value / top * h, 1)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{WIDTH}" height="{HEIGHT}" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="bytes per class over time">',
             f'<line x1="{PAD}" y1="{PAD + h}" x2="{PAD + w}" y2="{PAD + h}" stroke="#444"/>',
             f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{PAD + h}" stroke="#444"/>',
             f'<text x="4" y="{PAD - 8}" font-size="11">{top} B per bin</text>',
             f'<text x="{PAD}" y="{HEIGHT - 12}" font-size="11">0 s</text>',
             f'<text x="{PAD + w - 60}" y="{HEIGHT - 12}" font-size="11">{span / 1e6:.1f} s</text>']
    for n, (name, values) in enumerate(series.items()):
        colour = COLOURS[n % len(COLOURS)]
        points = " ".join(f"{x},{y}" for x, y in (xy(i, v) for i, v in enumerate(values)))
        parts.append(f'<polyline class="series" data-class="{escape(name)}" fill="none" stroke="{colour}" '
                     f'stroke-width="2" points="{points}"><title>{escape(name)}: {sum(values)} B</title></polyline>')
        parts.append(f'<text x="{PAD + w - 130}" y="{PAD + 14 * n}" font-size="12" fill="{colour}">'
                     f'{escape(name)} {sum(values)} B</text>')
    parts.append("</svg>")
    return "".join(parts)
