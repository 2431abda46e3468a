"""Object tracks on real vtest.avi frames with the real detector and ultralytics' trackers; the track
id through the bitstream, `roistream info` and a real cloud server on 127.0.0.1."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cloud.client import CloudClient, region_query
from codec.bitstream import parse_frame
from edge.pipeline import EdgePipeline
from edge.policy import RoiPolicy
from edge.sinks import MemorySink
from edge.sources import Frame
from edge.tracking import ObjectTracker
from roistream.cli import main
from tests.edge_fixtures import cloud_server, detector, needs_shared, vtest_frames  # noqa: F401

pytestmark = needs_shared()


@pytest.fixture(scope="module")
def person_detections(detector):
    detector.set_classes(["person"])
    frames = vtest_frames(15)
    return frames, [detector.detect(im) for im in frames]


def _centre(det) -> np.ndarray:
    x0, y0, x1, y1 = det.box
    return np.array([(x0 + x1) / 2, (y0 + y1) / 2])


@pytest.mark.parametrize("name", ["bytetrack", "botsort"])
def test_walking_people_keep_their_ids(person_detections, name):
    frames, detections = person_detections
    tracker = ObjectTracker(name)
    updates = [tracker.update(d, im) for im, d in zip(frames, detections)]
    first = {d.track_id: _centre(d) for d in updates[0].detections}
    assert len(first) == len(detections[0]) >= 2 and 0 not in first
    assert updates[0].started == sorted(first)
    prev = first
    for u in updates[1:]:
        now = {d.track_id: _centre(d) for d in u.detections if d.track_id}
        assert len(now) == len([d for d in u.detections if d.track_id])  # one detection per id
        for tid in first:  # every person of frame 0 is still tracked, a few pixels further on
            assert tid in now, f"track {tid} lost at a frame where its person is detected"
            assert np.linalg.norm(now[tid] - prev[tid]) < 25
        assert not u.ended and not u.lost
        prev = now


def test_a_lost_track_keeps_its_id_in_the_window_and_ends_after_it(person_detections):
    frames, detections = person_detections
    tracker = ObjectTracker("bytetrack", lost_frames=3)
    for im, d in zip(frames[:4], detections[:4]):
        ids = sorted(x.track_id for x in tracker.update(d, im).detections)
    # the people vanish for 2 frames (lost), come back on frame 6: same ids
    assert tracker.update([], frames[4]).lost == ids
    assert tracker.update([], frames[5]).lost == []
    back = tracker.update(detections[6], frames[6])
    assert sorted(x.track_id for x in back.detections if x.track_id) == ids and not back.ended
    # now they vanish for longer than lost_frames: their tracks end, and they come back as new tracks
    ended = []
    for im in frames[7:12]:
        ended += tracker.update([], im).ended
    assert sorted(ended) == ids
    again = tracker.update(detections[12], frames[12])
    new_ids = [x.track_id for x in again.detections]
    assert all(t > max(ids) for t in new_ids) and again.started == sorted(new_ids)


def test_unknown_tracker_or_setting_is_refused():
    with pytest.raises(ValueError, match="unknown tracker"):
        ObjectTracker("sort")
    with pytest.raises(ValueError, match="no setting"):
        ObjectTracker("bytetrack", warp_speed=9)


def test_track_ids_round_trip_through_the_bitstream_info_and_cloud(tmp_path, codec, detector, cloud_server, capsys):
    sink = MemorySink()
    pipe = EdgePipeline.init(codec, RoiPolicy.from_words("person", bg_scale=4), detector=detector,
                             tracker="bytetrack", sink=sink, stream_id="trk", bg_interval=0)
    results = [pipe.process(Frame(im, i, 1_700_000_000_000_000 + i * 100_000))
               for i, im in enumerate(vtest_frames(4))]
    expected = []
    for r, data in zip(results, sink.frames):
        tracks = {g: i.track_id for g, i in r.plan.groups.items() if g != 0}
        assert tracks and all(tracks.values())
        assert {d.track_id for d in r.tracks.detections} >= set(tracks.values())
        frame = parse_frame(data)
        assert {g.group_id: g.track_id for g in frame.groups if g.group_id != 0} == tracks
        decoded = codec.decode(data)
        assert {g: d.track_id for g, d in decoded.groups.items() if g != 0} == tracks
        expected.append(sorted(tracks.values()))
    assert expected[0] == expected[-1]  # the same people, the same ids, frame after frame

    path = tmp_path / "f.rst"
    path.write_bytes(sink.frames[-1])
    assert main(["info", str(path)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert sorted(g["track_id"] for g in info["groups"] if g["group_id"] != 0) == expected[-1]

    with CloudClient(f"127.0.0.1:{cloud_server.port}") as client:
        acks = list(client.ingest([parse_frame(d) for d in sink.frames]))
        assert len(acks) == len(sink.frames)
        listed = client.list_frames("trk")
        assert [sorted(g.track_id for g in f.groups if g.group_id != 0) for f in listed] == expected
        regions = list(client.get_regions(region_query("trk", labels=["person"], output="records")))
        by_frame: dict[int, list[int]] = {}
        for reg in regions:
            by_frame.setdefault(reg.frame_index, []).append(reg.record.track_id)
        assert [sorted(by_frame[i]) for i in sorted(by_frame)] == expected
