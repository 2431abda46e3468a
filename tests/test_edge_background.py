"""When the background is sent (edge/background_schedule.py) and the fills between refreshes
(edge/background_fill.py)."""

from __future__ import annotations

import numpy as np

from codec.plan import NOT_CODED, FramePlan
from edge.background_fill import BackgroundFill
from edge.background_schedule import BackgroundScheduler
from tests.edge_fixtures import needs_shared, vtest_frames


@needs_shared()
def test_background_every_n_frames():
    frames = vtest_frames(12)
    sched = BackgroundScheduler(interval=5)
    sent = [i for i, f in enumerate(frames) if sched.decide(i, f)[0]]
    assert sent == [0, 5, 10]  # pedestrians walking are no scene change
    always = BackgroundScheduler(interval=1)
    assert all(always.decide(i, f)[0] for i, f in enumerate(frames[:3]))


@needs_shared()
def test_background_on_scene_change():
    import cv2

    from codec.data import load_rgb
    from codec import paths

    frames = vtest_frames(3)
    other = cv2.resize(load_rgb(paths.kodak_dir() / "kodim01.png"), (frames[0].shape[1], frames[0].shape[0]))
    sched = BackgroundScheduler(interval=0)  # first frame and scene changes only
    assert sched.decide(0, frames[0]) == (True, "first frame")
    assert sched.decide(1, frames[1]) == (False, "")
    assert sched.decide(2, other) == (True, "scene change")
    assert sched.decide(3, other) == (False, "")
    dark = (frames[2] // 4).astype(np.uint8)  # lights off
    assert sched.decide(4, frames[2])[0] and sched.decide(5, dark)[0]
    assert sched.scene_changes == 3


def _plan(objects: list[tuple[slice, slice]], grid=(4, 8)) -> FramePlan:
    group_map = np.zeros(grid, np.int32)
    for i, (rows, cols) in enumerate(objects, start=1):
        group_map[rows, cols] = i
    return FramePlan.from_groups(group_map, {0: 0.3, **{i: 0.8 for i in range(1, len(objects) + 1)}},
                                 labels={i: "person" for i in range(1, len(objects) + 1)})


def test_background_fill_sends_only_blocks_no_layer_has_and_keeps_the_refresh_in_the_window():
    fill = BackgroundFill(interval=4, layers=8)
    assert (fill.max_fills, fill.spacing) == (3, 1)
    person_at = _plan([(slice(0, 2), slice(0, 2))])  # a person on 2x2 blocks at the refresh
    assert fill.decide(0, person_at, 64, 128) == ("", None)  # nothing sent yet: the refresh comes first
    fill.record(0, person_at, refresh=True)
    assert fill.decide(1, _plan([(slice(0, 2), slice(0, 2))]), 64, 128) == ("", None)  # still standing there
    moved = _plan([(slice(0, 2), slice(1, 3))])  # one block column to the right
    action, holes = fill.decide(2, moved, 64, 128)
    assert action == "fill"
    moved = moved.with_background_blocks(holes, "fill")
    assert np.argwhere(moved.group_map == 0).tolist() == [[0, 0], [1, 0]]  # only the freed blocks
    assert moved.groups[0].blocks == 2 and list(moved.groups) == [0, 1] and moved.background_reason == "fill"
    assert set(np.unique(moved.group_map).tolist()) == {NOT_CODED, 0, 1}
    fill.record(2, moved, refresh=False)
    # blocks of the padded grid beyond the frame (here a 16-px wide frame: column 0 only) are no holes
    assert fill.holes(_plan([]), 64, 16) is None
    assert np.argwhere(fill.holes(_plan([]), 64, 128)).tolist() == [[0, 1], [1, 1]]
    # at most layers // 2 - 1 fills per refresh, so the refresh stays within the composite's layers
    for index in (3, 4):
        fill.record(index, _plan([(slice(0, 2), slice(1, 2))]), refresh=False)
    assert fill.sent == 3 and fill.decide(5, _plan([]), 64, 128) == ("", None)  # the next refresh will cover them
    fill.record(6, _plan([(slice(0, 2), slice(1, 2))]), refresh=True)  # the count restarts at a refresh
    assert fill.decide(7, _plan([]), 64, 128)[0] == "fill"


def test_background_fills_are_spaced_and_without_interval_spent_fills_ask_for_a_refresh():
    spaced = BackgroundFill(interval=10)
    assert spaced.spacing == 2  # 3 fills share a 10-frame interval
    spaced.record(0, _plan([(slice(0, 2), slice(0, 2))]), refresh=True)
    assert spaced.decide(1, _plan([]), 64, 128) == ("", None)  # too soon after the refresh
    assert spaced.decide(2, _plan([]), 64, 128)[0] == "fill"
    static = BackgroundFill(interval=0)  # a static camera: refreshes on scene changes only
    assert static.spacing == 5
    static.record(0, _plan([(slice(0, 2), slice(0, 2))]), refresh=True)
    for index in (5, 10, 15):  # fills elsewhere while the person stays
        static.record(index, _plan([(slice(0, 2), slice(0, 2))]), refresh=False)
    assert static.sent == 3
    assert static.decide(20, _plan([]), 64, 128) == ("refresh", None)  # the person left; no refresh would come
