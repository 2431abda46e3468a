"""The storage contract, run against both backends (the embedded SQLite + segment files, and PostgreSQL + S3
on real servers from tests/scale_fixtures.py); then SqliteSegmentStorage's own durability bookkeeping,
recovery and retention on real files."""

from __future__ import annotations

import os

import pytest

from cloud import segments
from cloud.selector import Selection
from cloud.index_sql import PAGE
from cloud.sqlite_storage import SqliteSegmentStorage
from cloud.storage import PutStatus
from codec.bitstream import check_crc
from tests.cloud_fixtures import cloud_frames, relabel, stream_of  # noqa: F401 - fixtures
from tests.scale_fixtures import postgres, s3  # noqa: F401 - fixtures

BACKENDS = ("sqlite", "postgresql+s3")


@pytest.fixture(params=BACKENDS)
def open_store(request, tmp_path):
    """Opens the backend's storage over one state (the same directory, or the same schema and key prefix),
    as often as a test asks: reopening shows what survived; all are closed at the end."""
    opened = []
    if request.param == "sqlite":
        def make():
            return SqliteSegmentStorage(tmp_path / "data")
    else:
        from cloud.distributed_storage import PostgresObjectStorage
        from cloud.objects import ObjectStore

        pg, s3_server = request.getfixturevalue("postgres"), request.getfixturevalue("s3")
        index, objects = pg.fresh_url(), s3_server.fresh_url()

        def make():
            return PostgresObjectStorage(index, ObjectStore(objects, s3_server.endpoint))

    def open_():
        opened.append(make())
        return opened[-1]

    yield open_
    for s in opened:
        s.close()


@pytest.fixture
def store(open_store):
    return open_store()


@pytest.fixture
def sqlite_store(tmp_path):
    s = SqliteSegmentStorage(tmp_path / "data")
    yield s
    s.close()


def _keys(refs):
    return [(r.stream_id, r.frame_index, r.meta.group_id) for r in refs]


def test_put_is_exact_and_duplicates_are_not_stored(store, cloud_frames):
    frame = cloud_frames.plain
    first = store.submit_frame(frame).result()
    assert first.status is PutStatus.STORED
    assert first.stored_bytes == sum(g.ByteSize() for g in frame.groups)
    assert store.submit_frame(frame).result().status is PutStatus.DUPLICATE
    refs = list(store.find_groups(Selection(stream_id="base", include_background=True)))
    assert _keys(refs) == [("base", 0, 0), ("base", 0, 1), ("base", 0, 2)]
    for ref, original in zip(refs, frame.groups):
        stored = store.read_group(ref)
        assert stored.record.SerializeToString() == original.SerializeToString()
        assert stored.header == frame.header
        check_crc(stored.header, stored.record)
    [summary] = store.list_streams()
    assert (summary.stream_id, summary.frames, summary.bytes) == ("base", 1, first.stored_bytes)


def test_selection_filters(store, cloud_frames):
    for f in stream_of(cloud_frames.plain, "a", 5) + stream_of(cloud_frames.plain, "b", 2):
        store.submit_frame(f).result()
    for f in cloud_frames.secure:
        store.submit_frame(f).result()

    def sel(**kw):
        return _keys(store.find_groups(Selection(**kw)))

    assert sel(stream_id="a", labels=frozenset({"person"})) == [("a", i, 1) for i in range(5)]
    assert sel(stream_id="a", frames=(1, 2)) == [("a", i, g) for i in (1, 2) for g in (1, 2)]
    assert sel(stream_id="a", time=(2000, 3000), group_ids=frozenset({2})) == [("a", 2, 2), ("a", 3, 2)]
    # the person is at blocks 1..4 (pixels 16..80); the car at pixels x 96..224, y 128..208
    assert sel(stream_id="b", intersects=(0, 0, 20, 20)) == [("b", 0, 1), ("b", 1, 1)]
    assert sel(stream_id="b", intersects=(200, 200, 5, 5)) == [("b", 0, 2), ("b", 1, 2)]
    assert sel(stream_id="b", intersects=(240, 0, 16, 16)) == []  # only the background is there
    assert sel(stream_id="b", intersects=(240, 0, 16, 16), include_background=True) == [("b", 0, 0), ("b", 1, 0)]
    assert sel(stream_id="b", group_ids=frozenset({0})) == [("b", 0, 0), ("b", 1, 0)]  # asked for by id
    assert sel(stream_id="secure", include_encrypted=False) == [("secure", i, 1) for i in range(2)]
    assert len(sel(stream_id="a", limit=3)) == 3
    assert sel(stream_id="missing") == []
    every = sel(include_background=True)
    assert len(every) == 3 * (5 + 2 + 2)
    assert [(r.stream_id, r.frame_index) for r in store.list_frames("a", (3, 10), None, 100)] == [("a", 3), ("a", 4)]
    secure = store.list_frames("secure", None, None, 10)[0]
    assert [(g.group_id, g.encrypted, bool(g.key_id)) for g in secure.groups] == [
        (0, False, False), (1, False, False), (2, True, True)]


def test_selection_pages_through_large_results(store, cloud_frames):
    count = PAGE // 2 + 20  # two groups per frame: more than one page of rows
    for f in stream_of(cloud_frames.plain, "big", count):
        store.submit_frame(f).result()
    refs = list(store.find_groups(Selection(stream_id="big")))
    assert _keys(refs) == [("big", i, g) for i in range(count) for g in (1, 2)]
    assert len(list(store.find_groups(Selection(stream_id="big", limit=PAGE + 3)))) == PAGE + 3


def test_reading_a_group_touches_only_its_bytes(sqlite_store, cloud_frames):
    """Destroy every other byte of the frame in its segment: the one group is still read intact."""
    store = sqlite_store
    store.submit_frame(cloud_frames.plain).result()
    refs = list(store.find_groups(Selection(stream_id="base", include_background=True)))
    person = refs[1]
    loc = person.location
    path = segments.segment_path(store.data_dir / "segments", loc.segment)
    data = bytearray(path.read_bytes())
    for i in range(len(data)):
        if not loc.offset <= i < loc.offset + loc.length:
            data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    stored = store.read_group(person)
    assert stored.record == cloud_frames.plain.groups[1]
    check_crc(stored.header, stored.record)


def test_recovery_truncates_uncommitted_tails(tmp_path, cloud_frames):
    store = SqliteSegmentStorage(tmp_path / "d")
    store.submit_frame(cloud_frames.plain).result()
    store.close()
    seg_dir = tmp_path / "d" / "segments"
    [seg] = list(seg_dir.iterdir())
    committed = seg.stat().st_size
    with open(seg, "ab") as f:  # a crash after writing but before the index commit
        f.write(os.urandom(1000))
    (seg_dir / segments.segment_path(seg_dir, 99).name).write_bytes(b"orphan")  # a segment the index never saw
    store = SqliteSegmentStorage(tmp_path / "d")
    try:
        assert seg.stat().st_size == committed
        assert not segments.segment_path(seg_dir, 99).exists()
        store.submit_frame(relabel(cloud_frames.plain, "base", 1)).result()
        refs = list(store.find_groups(Selection(stream_id="base", include_background=True)))
        assert len(refs) == 6
        for ref in refs:
            stored = store.read_group(ref)
            check_crc(stored.header, stored.record)
            assert stored.record.payload == cloud_frames.plain.groups[ref.meta.group_id].payload
    finally:
        store.close()


def test_retention_by_age(tmp_path, cloud_frames):
    now = [1000.0]
    # segments smaller than a frame, so every frame closes its own segment and pruning frees whole files
    segment_bytes = cloud_frames.plain.ByteSize() // 2
    store = SqliteSegmentStorage(tmp_path / "d", segment_bytes=segment_bytes, clock=lambda: now[0])
    try:
        for i in range(6):
            store.submit_frame(relabel(cloud_frames.plain, "cam", i)).result()
            now[0] += 10
        # frames stored at t=1000..1050; now=1060: keep the last 25 s -> frames stored at 1040 and 1050
        result = store.prune(max_age_s=25, max_bytes=None)
        assert result.frames_deleted == 4
        assert [f.frame_index for f in store.list_frames("cam", None, None, 100)] == [4, 5]
        assert result.bytes_freed > 0  # whole segments of deleted frames were removed
        for ref in store.find_groups(Selection(stream_id="cam", include_background=True)):
            stored = store.read_group(ref)
            check_crc(stored.header, stored.record)
    finally:
        store.close()


def test_retention_by_bytes(tmp_path, cloud_frames):
    frame_bytes = sum(g.ByteSize() for g in cloud_frames.plain.groups)
    store = SqliteSegmentStorage(tmp_path / "d", segment_bytes=2 * frame_bytes + 64)  # two frames each
    try:
        sizes = [store.submit_frame(relabel(cloud_frames.plain, "cam", i)).result().stored_bytes
                 for i in range(10)]
        seg_dir = tmp_path / "d" / "segments"
        assert len(list(seg_dir.iterdir())) == 5
        result = store.prune(max_age_s=None, max_bytes=5 * frame_bytes)
        kept = [f.frame_index for f in store.list_frames("cam", None, None, 100)]
        assert kept == [6, 7, 8, 9]  # oldest segments went first, until the total fits
        assert result.frames_deleted == 6 and result.bytes_freed == sum(sizes[:6])
        assert sum(p.stat().st_size for p in seg_dir.iterdir()) <= 5 * frame_bytes
        assert store.list_streams()[0].frames == 4
    finally:
        store.close()


def test_batched_commits_across_segment_rotations(tmp_path, cloud_frames):
    """Many frames queued at once: each commit batch spans several segments; every frame reads back intact."""
    frame_bytes = sum(g.ByteSize() for g in cloud_frames.plain.groups)
    store = SqliteSegmentStorage(tmp_path / "d", segment_bytes=3 * frame_bytes)
    frames = [relabel(cloud_frames.plain, f"cam{i % 8}", i // 8) for i in range(80)]
    try:
        futures = [store.submit_frame(f) for f in frames]
        results = [f.result() for f in futures]
        assert all(r.status is PutStatus.STORED for r in results)
        assert len(list((tmp_path / "d" / "segments").iterdir())) >= 80 // 3
        refs = list(store.find_groups(Selection(include_background=True)))
        assert len(refs) == 3 * 80
        for ref in refs:
            stored = store.read_group(ref)
            check_crc(stored.header, stored.record)
    finally:
        store.close()
    store = SqliteSegmentStorage(tmp_path / "d")  # reopening finds nothing to truncate
    try:
        assert sum(s.frames for s in store.list_streams()) == 80
    finally:
        store.close()


def test_a_frame_the_index_refuses_fails_alone_in_its_group_commit(open_store, cloud_frames):
    """Issue 19 defect 2: a NaN score (SQLite stores NULL, NOT NULL fails) and a track id past 2^63
    (OverflowError) reach storage unvalidated; they must not fail the other frames of their batch."""
    store = open_store()
    nan, huge = stream_of(cloud_frames.plain, "poison", 2)
    nan.groups[1].score = float("nan")
    huge.groups[2].track_id = 2**64 - 1
    good = stream_of(cloud_frames.plain, "good", 40)
    futures = [store.submit_frame(f) for f in [nan, *good[:20], huge, *good[20:]]]  # one batch, most likely
    poisoned = [futures[0], futures[21]]
    for f in poisoned:
        with pytest.raises(Exception):
            f.result()
    assert all(f.result().status is PutStatus.STORED for f in futures if f not in poisoned)
    assert [s.stream_id for s in store.list_streams()] == ["good"]
    refs = list(store.find_groups(Selection(stream_id="good", include_background=True)))
    assert len(refs) == 40 * len(cloud_frames.plain.groups)
    for ref in refs[-3:]:
        check_crc(store.read_group(ref).header, store.read_group(ref).record)
    store.close()
    reopened = open_store()  # recovery keeps every committed frame readable
    assert reopened.list_streams()[0].frames == 40
    last = list(reopened.find_groups(Selection(stream_id="good", include_background=True)))[-1]
    check_crc(reopened.read_group(last).header, reopened.read_group(last).record)


def _altered(frame):
    """The same (stream, index) with different content: what a restarted edge or a second camera sends."""
    other = frame.__deepcopy__()
    other.header.timestamp_us += 1
    return other


def test_a_different_frame_at_a_stored_index_is_a_conflict_not_a_duplicate(store, cloud_frames):
    frame = cloud_frames.plain
    assert store.submit_frame(frame).result().status is PutStatus.STORED
    again = frame.__deepcopy__()  # a resend: the same bytes
    assert store.submit_frame(again).result().status is PutStatus.DUPLICATE
    clash = store.submit_frame(_altered(frame)).result()
    assert clash.status is PutStatus.CONFLICT and clash.stored_bytes == 0
    assert clash.next_frame_index == 1
    # in one batch: the first frame at an index wins, a resend of it is a duplicate, another frame a conflict
    later = relabel(frame, "base", 5)
    futures = [store.submit_frame(f) for f in (later, later.__deepcopy__(), _altered(later))]
    assert [f.result().status for f in futures] == [PutStatus.STORED, PutStatus.DUPLICATE, PutStatus.CONFLICT]
    assert futures[2].result().next_frame_index == 6
    frames = store.list_frames("base", None, None, 10)
    assert [(f.frame_index, f.timestamp_us) for f in frames] == [(0, frame.header.timestamp_us),
                                                                  (5, later.header.timestamp_us)]
    pos = store.stream_position("base")
    assert (pos.next_frame_index, pos.frames) == (6, 2)
    assert store.stream_position("nobody").next_frame_index == 0


def test_frames_stored_before_digests_were_kept_are_compared_by_their_stored_bytes(tmp_path, cloud_frames):
    import sqlite3

    frame = cloud_frames.plain
    s = SqliteSegmentStorage(tmp_path / "data")
    assert s.submit_frame(frame).result().status is PutStatus.STORED
    s.close()
    with sqlite3.connect(tmp_path / "data" / "index.sqlite") as db:  # an index from before the column existed
        db.execute("ALTER TABLE frames DROP COLUMN content_hash")
    s = SqliteSegmentStorage(tmp_path / "data")
    try:
        assert s.submit_frame(frame.__deepcopy__()).result().status is PutStatus.DUPLICATE
        assert s.submit_frame(_altered(frame)).result().status is PutStatus.CONFLICT
    finally:
        s.close()
