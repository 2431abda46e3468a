"""Issue 19 defect 8: a frame range starting at or past 2^63 selects nothing instead of overflowing."""
from cloud.selector import MAX_INT64, frame_range
from cloud.sqlite_storage import SqliteSegmentStorage
from proto import service_pb2


def test_range_ending_past_int64_is_clamped() -> None:
    assert frame_range(service_pb2.FrameRange(first=3, last=2**64 - 1), True) == (3, MAX_INT64)


def test_storage_query_past_int64_returns_no_frames(tmp_path) -> None:
    storage = SqliteSegmentStorage(tmp_path)
    rng = frame_range(service_pb2.FrameRange(first=2**63, last=2**64 - 1), True)
    assert storage.list_frames("cam", rng, None, 10) == []
