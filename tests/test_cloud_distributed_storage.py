"""PostgresObjectStorage's own properties on real PostgreSQL and SeaweedFS (the shared contract is in
tests/test_cloud_storage.py): ranged reads of one group, retention on the shared store, two nodes
racing for one index, and the errors a node gives when a shared service is missing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cloud.distributed_storage import PostgresObjectStorage
from cloud.errors import DependencyUnavailable
from cloud.objects import ObjectStore
from cloud.selector import Selection
from cloud.storage import GroupGone, PutStatus
from codec.bitstream import check_crc
from codec.paths import SOURCE_ROOT
from tests.cloud_fixtures import cloud_frames, relabel, stream_of  # noqa: F401 - fixtures
from tests.scale_fixtures import free_port, postgres, s3  # noqa: F401 - fixtures


@pytest.fixture
def shared_state(postgres, s3):
    return postgres.fresh_url(), s3.fresh_url(), s3.endpoint


@pytest.fixture
def open_node(shared_state):
    """Opens another node's storage on the same shared state; `clock` replaces the node's time."""
    opened = []
    index, objects, endpoint = shared_state

    def open_(**kw) -> PostgresObjectStorage:
        opened.append(PostgresObjectStorage(index, ObjectStore(objects, endpoint), **kw))
        return opened[-1]

    yield open_
    for s in opened:
        s.close()


def test_reading_a_group_reads_only_its_bytes(open_node, cloud_frames):
    """Overwrite the frame's object with every byte outside one group flipped: that group still reads intact."""
    store = open_node()
    store.submit_frame(cloud_frames.plain).result()
    person = list(store.find_groups(Selection(stream_id="base", include_background=True)))[1]
    loc = person.location
    data = bytearray(b"".join(g.SerializeToString() for g in cloud_frames.plain.groups))
    for i in range(len(data)):
        if not loc.offset <= i < loc.offset + loc.length:
            data[i] ^= 0xFF
    store.objects.put(loc.key, bytes(data))
    stored = store.read_group(person)
    assert stored.record == cloud_frames.plain.groups[1]
    check_crc(stored.header, stored.record)


def test_retention_by_age_and_bytes_on_the_shared_store(open_node, cloud_frames):
    now = [1000.0]
    a, b = open_node(clock=lambda: now[0]), open_node(clock=lambda: now[0])
    sizes = []
    for i in range(6):  # two nodes write one stream, frames stored at t = 1000 .. 1050
        sizes.append((a if i % 2 else b).submit_frame(relabel(cloud_frames.plain, "cam", i)).result().stored_bytes)
        now[0] += 10
    gone = list(a.find_groups(Selection(stream_id="cam", frames=(0, 0), include_background=True)))
    result = b.prune(max_age_s=25, max_bytes=None)  # now = 1060: keeps frames stored at 1040 and 1050
    assert (result.frames_deleted, result.bytes_freed) == (4, sum(sizes[:4]))
    assert [f.frame_index for f in a.list_frames("cam", None, None, 100)] == [4, 5]
    with pytest.raises(GroupGone):  # its object is gone from the store too
        a.read_group(gone[0])
    result = a.prune(max_age_s=None, max_bytes=sizes[5])
    assert result.frames_deleted == 1 and [f.frame_index for f in b.list_frames("cam", None, None, 100)] == [5]
    for ref in b.find_groups(Selection(stream_id="cam", include_background=True)):
        check_crc(b.read_group(ref).header, b.read_group(ref).record)


def test_two_nodes_racing_for_one_index_store_it_once(open_node, cloud_frames):
    """The same frame and a different one at (cam, i), sent through two nodes at once: the database's unique
    constraint lets exactly one in; a resend is DUPLICATE only if it is the winner's content."""
    a, b = open_node(), open_node()
    mine = stream_of(cloud_frames.plain, "cam", 30)
    theirs = [relabel(cloud_frames.secure[0], "cam", i) for i in range(30)]
    futures = [(a.submit_frame(m), b.submit_frame(t)) for m, t in zip(mine, theirs)]
    for fa, fb in futures:
        fa.result(), fb.result()
    stored = a.list_frames("cam", None, None, 100)
    assert [f.frame_index for f in stored] == list(range(30))
    for (fa, fb), frame in zip(futures, stored):
        statuses = {fa.result().status, fb.result().status}
        assert statuses == {PutStatus.STORED, PutStatus.CONFLICT}
        winner = mine if fa.result().status is PutStatus.STORED else theirs
        assert frame.timestamp_us == winner[frame.frame_index].header.timestamp_us
        assert b.submit_frame(winner[frame.frame_index]).result().status is PutStatus.DUPLICATE


def test_a_missing_service_is_named_in_the_error(postgres, s3, cloud_frames):
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    with pytest.raises(DependencyUnavailable, match=r"PostgreSQL at 127\.0\.0\.1:\d+/postgres is unavailable"):
        PostgresObjectStorage(dead, ObjectStore(s3.fresh_url(), s3.endpoint))
    with pytest.raises(DependencyUnavailable, match=r"object store at http://127\.0\.0\.1:\d+ \(s3://"):
        PostgresObjectStorage(postgres.fresh_url(), ObjectStore("s3://nowhere-bucket", f"http://127.0.0.1:{free_port()}"))


def _serve(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "roistream.cli", "cloud", "serve", "--port", "0", *args],
                          cwd=SOURCE_ROOT, capture_output=True, text=True, timeout=120)


def test_cloud_serve_refuses_half_a_shared_store_and_names_a_dead_one():
    half = _serve("--index", "postgresql://postgres@127.0.0.1:1/postgres")
    assert half.returncode == 2 and "--index (PostgreSQL) and --objects (S3) go together" in half.stderr
    nothing = _serve()
    assert nothing.returncode == 2 and "--data DIR" in nothing.stderr
    dead = _serve("--index", f"postgresql://postgres@127.0.0.1:{free_port()}/postgres", "--objects", "s3://b-ucket")
    assert dead.returncode == 1 and "error: PostgreSQL at 127.0.0.1:" in dead.stderr
    assert "Traceback" not in dead.stderr
