"""ROI policy: words -> classes, detections -> block-aligned groups, background refresh."""

from __future__ import annotations

import numpy as np
import pytest

from codec.geometry import BLOCK, block_grid_shape
from edge.detector import COCO_CLASSES, Detection
from edge.roi import (NOT_CODED, BackgroundFill, BackgroundScheduler, GroupInfo, GroupPlan, RoiPolicy,
                      UnknownClassError, mask_to_blocks, parse_class_values, resolve_classes)
from tests.edge_fixtures import needs_shared, vtest_frames


@pytest.mark.parametrize("words, expected", [
    ("person", ["person"]),
    ("people", ["person"]),
    ("Pedestrians", ["person"]),
    ("person, dogs", ["person", "dog"]),
    ("dogs and cats", ["dog", "cat"]),
    ("buses", ["bus"]),
    ("knives", ["knife"]),
    ("traffic-lights", ["traffic light"]),
    ("cell phones", ["cell phone"]),
    ("cellphone", ["cell phone"]),
    ("teddy_bears", ["teddy bear"]),
    ("bike", ["bicycle"]),
    ("people, person, humans", ["person"]),
    ("faces", ["face"]),
])
def test_words_map_to_classes(words, expected):
    assert resolve_classes(words) == expected


def test_vehicle_synonym_expands_to_road_vehicles():
    got = resolve_classes("vehicles")
    assert {"car", "truck", "bus", "motorcycle"} <= set(got)
    assert "person" not in got


def test_unknown_word_lists_known_classes():
    with pytest.raises(UnknownClassError) as err:
        resolve_classes("person, unicorn")
    msg = str(err.value)
    assert "'unicorn'" in msg
    for cls in ("person", "car", "toothbrush"):  # the list of known classes
        assert cls in msg
    assert err.value.word == "unicorn"


def test_misspelling_gets_a_suggestion():
    with pytest.raises(UnknownClassError, match="Did you mean person"):
        resolve_classes("persn")


def test_words_limited_to_the_detector_vocabulary():
    with pytest.raises(UnknownClassError):
        resolve_classes("dog", known=["person", "car"])
    assert resolve_classes("vehicles", known=["person", "car"]) == ["car"]


def test_class_values():
    assert parse_class_values("people=0.9, vehicles=0.5")["person"] == 0.9
    assert parse_class_values("people=0.9, vehicles=0.5")["truck"] == 0.5
    with pytest.raises(ValueError):
        parse_class_values("person")


# ---------------------------------------------------------------- groups from masks
H, W = 200, 232  # not a multiple of 64: padding


def det(label, score, x0, y0, x1, y1):
    mask = np.zeros((H, W), bool)
    mask[y0:y1, x0:x1] = True
    return Detection(label, COCO_CLASSES.index(label) if label in COCO_CLASSES else -1, score,
                     (x0, y0, x1, y1), mask)


def test_masks_become_block_aligned_groups():
    policy = RoiPolicy(classes=["person"], margin_px=0, min_area_px=0)
    plan = policy.plan([det("person", 0.9, 20, 40, 50, 90)], H, W)
    assert plan.group_map.shape == block_grid_shape(H, W)
    rows, cols = np.nonzero(plan.group_map == 1)
    # pixels 20..49 x 40..89 touch block columns 1..3 and rows 2..5
    assert (cols.min(), cols.max(), rows.min(), rows.max()) == (1, 3, 2, 5)
    assert plan.labels == {0: "background", 1: "person"}
    assert plan.groups[1].blocks == 3 * 4
    assert plan.groups[0].blocks == plan.group_map.size - 12


def test_margin_dilates_the_mask_in_pixels():
    def blocks(margin, x0, x1):
        return RoiPolicy(margin_px=margin, min_area_px=0).plan([det("person", 0.9, x0, x0, x1, x1)], H, W).groups[1].blocks

    assert blocks(0, 64, 96) == 4  # a 2x2 block object
    assert blocks(BLOCK, 64, 96) == 16  # a 16-px margin reaches one block ring
    assert blocks(1, 66, 94) == 4  # a margin that stays inside the object's blocks adds none
    assert blocks(4, 66, 94) == 16
    # Euclidean: 12 px from pixels 73..86 reach the side blocks (61..98) but not the diagonal ones,
    # whose nearest pixel (63, 63) is 14.1 px from the corner (73, 73)
    assert blocks(12, 73, 87) == 4 + 4 * 2


def test_min_size_max_groups_classes_and_overlap():
    dets = [det("person", 0.5, 0, 0, 40, 40), det("person", 0.9, 20, 20, 60, 60), det("car", 0.8, 150, 100, 220, 190),
            det("person", 0.7, 100, 150, 104, 154)]  # 16 px: too small
    plan = RoiPolicy(classes=["person"], margin_px=0, min_area_px=100).plan(dets, H, W)
    assert [plan.groups[g].score for g in plan.object_ids] == [0.9, 0.5]  # best first; car and tiny one left out
    # the overlap went to the better instance; the other keeps only its free blocks
    assert plan.group_map[2, 2] == 1 and plan.group_map[0, 0] == 2
    capped = RoiPolicy(classes=None, margin_px=0, min_area_px=100, max_groups=1).plan(dets, H, W)
    assert capped.object_ids == [1] and capped.groups[1].score == 0.9


def test_encrypted_class_wins_overlaps_and_qualities():
    dets = [det("person", 0.9, 0, 0, 100, 120), det("face", 0.6, 30, 10, 60, 40)]
    policy = RoiPolicy(classes=["person", "face"], encrypt={"face"}, class_quality={"person": 0.7},
                       roi_quality=0.95, bg_quality=0.2, margin_px=0, min_area_px=0)
    plan = policy.plan(dets, H, W)
    face = [g for g in plan.object_ids if plan.groups[g].label == "face"][0]
    person = [g for g in plan.object_ids if plan.groups[g].label == "person"][0]
    assert plan.group_map[1, 2] == face  # pixel (40, 25): both masks
    assert plan.encrypt_ids == [face]
    assert plan.qualities == {0: 0.2, person: 0.7, face: 0.95}
    plan.send_background = False
    assert plan.encode_kwargs()["groups"] == [1, 2]


def test_policy_from_words_adds_encrypted_classes():
    p = RoiPolicy.from_words("people", encrypt="faces", class_quality="person=0.9")
    assert p.classes == ["person", "face"] and p.encrypt == {"face"} and p.wants_faces
    assert p.detector_classes == ["person"]
    with pytest.raises(ValueError):
        RoiPolicy(bg_quality=1.5)


def test_mask_to_blocks_coverage():
    mask = np.zeros((64, 64), bool)
    mask[0:4, 0:4] = True  # 16 of 256 pixels of block (0, 0)
    assert mask_to_blocks(mask)[0, 0]
    assert not mask_to_blocks(mask, min_coverage=0.1)[0, 0]


@needs_shared()
def test_plan_encodes_and_decodes_with_the_real_codec(codec):
    frame = vtest_frames(1)[0]
    h, w = frame.shape[:2]
    plan = RoiPolicy(margin_px=8, min_area_px=0).plan(
        [Detection("person", 0, 0.8, (300, 200, 340, 300), _rect(h, w, 300, 200, 340, 300))], h, w)
    plan.send_background = False
    enc = codec.encode(frame, **plan.encode_kwargs(), stream_id="t", frame_index=3)
    assert [g.group_id for g in enc.groups] == [1] and enc.groups[0].label == "person"
    dec = codec.decode(enc)
    box = dec.groups[1].bbox
    assert box.x <= 300 and box.y <= 200 and box.x + box.width >= 340 and box.y + box.height >= 300


@needs_shared()
def test_background_scale_reaches_the_stream(codec):
    frame = vtest_frames(1)[0]
    h, w = frame.shape[:2]
    with pytest.raises(ValueError, match="scale"):
        RoiPolicy(bg_scale=3)
    policy = RoiPolicy(bg_scale=4, min_area_px=0)
    plan = policy.plan([Detection("person", 0, 0.8, (300, 200, 340, 300), _rect(h, w, 300, 200, 340, 300))], h, w)
    enc = codec.encode(frame, **plan.encode_kwargs())
    assert {g.group_id: g.scale_log2 for g in enc.groups} == {0: 2, 1: 0}
    dec = codec.decode(enc)
    assert dec.mask.all()  # background and person still tile the frame


def _rect(h, w, x0, y0, x1, y1):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


# ---------------------------------------------------------------- background refresh
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


def _plan(objects: list[tuple[slice, slice]], grid=(4, 8)) -> GroupPlan:
    group_map = np.zeros(grid, np.int32)
    for i, (rows, cols) in enumerate(objects, start=1):
        group_map[rows, cols] = i
    groups = {0: GroupInfo("background", 0.0, 0.3, False, int((group_map == 0).sum()))}
    groups.update({i: GroupInfo("person", 0.9, 0.8, False, 1) for i in range(1, len(objects) + 1)})
    return GroupPlan(group_map, groups)


def test_background_fill_sends_only_blocks_no_layer_has_and_keeps_the_refresh_in_the_window():
    fill = BackgroundFill(interval=4, layers=8)
    assert (fill.max_fills, fill.spacing) == (3, 1)
    person_at = _plan([(slice(0, 2), slice(0, 2))])  # a person on 2x2 blocks at the refresh
    assert fill.decide(0, person_at, 64, 128) == ""  # nothing sent yet: the refresh comes first
    fill.record(0, person_at, refresh=True)
    assert fill.decide(1, _plan([(slice(0, 2), slice(0, 2))]), 64, 128) == ""  # still standing there
    moved = _plan([(slice(0, 2), slice(1, 3))])  # one block column to the right
    assert fill.decide(2, moved, 64, 128) == "fill"
    assert np.argwhere(moved.group_map == 0).tolist() == [[0, 0], [1, 0]]  # only the freed blocks
    assert moved.groups[0].blocks == 2 and moved.coded_ids == [0, 1]
    assert set(np.unique(moved.group_map).tolist()) == {NOT_CODED, 0, 1}
    fill.record(2, moved, refresh=False)
    # blocks of the padded grid beyond the frame (here a 16-px wide frame: column 0 only) are no holes
    assert fill.holes(_plan([]), 64, 16) is None
    assert np.argwhere(fill.holes(_plan([]), 64, 128)).tolist() == [[0, 1], [1, 1]]
    # at most layers // 2 - 1 fills per refresh, so the refresh stays within the composite's layers
    for index in (3, 4):
        fill.record(index, _plan([(slice(0, 2), slice(1, 2))]), refresh=False)
    assert fill.sent == 3 and fill.decide(5, _plan([]), 64, 128) == ""  # the next refresh will cover them
    fill.record(6, _plan([(slice(0, 2), slice(1, 2))]), refresh=True)  # the count restarts at a refresh
    assert fill.decide(7, _plan([]), 64, 128) == "fill"


def test_background_fills_are_spaced_and_without_interval_spent_fills_ask_for_a_refresh():
    spaced = BackgroundFill(interval=10)
    assert spaced.spacing == 2  # 3 fills share a 10-frame interval
    spaced.record(0, _plan([(slice(0, 2), slice(0, 2))]), refresh=True)
    assert spaced.decide(1, _plan([]), 64, 128) == ""  # too soon after the refresh
    assert spaced.decide(2, _plan([]), 64, 128) == "fill"
    static = BackgroundFill(interval=0)  # a static camera: refreshes on scene changes only
    assert static.spacing == 5
    static.record(0, _plan([(slice(0, 2), slice(0, 2))]), refresh=True)
    for index in (5, 10, 15):  # fills elsewhere while the person stays
        static.record(index, _plan([(slice(0, 2), slice(0, 2))]), refresh=False)
    assert static.sent == 3
    assert static.decide(20, _plan([]), 64, 128) == "refresh"  # the person left; no refresh would come
