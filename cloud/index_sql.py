"""What both index backends (SQLite, PostgreSQL) say the same way: a selection's WHERE clause and
the keyset paging of `find_groups`, so the two cannot drift apart in what a query selects or in
what order it returns groups.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from codec.bitstream import dequantize_quality

from .selector import Selection
from .storage import GroupMeta

PAGE = 256  # rows per index query while streaming a selection
FIRST_KEY: tuple = (-(2**63), "", -1, -1)  # below every (timestamp, stream, frame index, group id)


def selection_sql(sel: Selection, mark: str = "?") -> tuple[str, list]:
    """WHERE clause (without the keyset condition) and its parameters; `mark` is the driver's placeholder.

    Tables are aliased f (frames) and g (groups), with the columns both backends share."""
    where, params = [f"(g.group_id != 0 OR {mark})"], [sel.wants_group(0)]

    def marks(n: int) -> str:
        return ",".join([mark] * n)

    if sel.stream_id:
        where.append(f"f.stream_id = {mark}")
        params.append(sel.stream_id)
    if sel.streams is not None:
        where.append(f"f.stream_id IN ({marks(len(sel.streams))})" if sel.streams else "1 = 0")
        params += sorted(sel.streams)
    if sel.frames:
        where.append(f"f.frame_index BETWEEN {mark} AND {mark}")
        params += sel.frames
    if sel.time:
        where.append(f"f.timestamp_us BETWEEN {mark} AND {mark}")
        params += sel.time
    if sel.labels:
        where.append(f"g.label IN ({marks(len(sel.labels))})")
        params += sorted(sel.labels)
    if sel.group_ids:
        where.append(f"g.group_id IN ({marks(len(sel.group_ids))})")
        params += sorted(sel.group_ids)
    if sel.intersects:
        x, y, w, h = sel.intersects
        where.append(f"g.w > 0 AND g.h > 0 AND g.x < {mark} AND g.x + g.w > {mark} AND g.y < {mark} "
                     f"AND g.y + g.h > {mark}")
        params += [x + w, x, y + h, y]
    if not sel.include_encrypted:
        where.append("g.encrypted = 0")
    return " AND ".join(where), params


def group_meta(gid: int, label: str, score: float, x: int, y: int, w: int, h: int, quality: int, length: int,
               encrypted: int, key_id: str, track_id: int) -> GroupMeta:
    """A group's index columns (quality as the record's integer step) as the value storage hands out."""
    return GroupMeta(gid, label, score, (x, y, w, h), dequantize_quality(quality), length, bool(encrypted), key_id,
                     track_id)


def paged(fetch: Callable[[tuple, int], Sequence[tuple]], limit: int) -> Iterator[tuple]:
    """Rows of a selection page by page (keyset pagination: each page starts after the last row's first four
    columns), so no read transaction stays open while the caller is slow to consume; `limit` 0 = all."""
    cursor, remaining = FIRST_KEY, limit or None
    while True:
        page = PAGE if remaining is None else min(PAGE, remaining)
        rows = fetch(cursor, page)
        yield from rows
        if remaining is not None:
            remaining -= len(rows)
            if remaining <= 0:
                return
        if len(rows) < page:
            return
        cursor = tuple(rows[-1][:4])
