"""Detections -> block-aligned groups (edge/policy.py), coded by the real codec."""

from __future__ import annotations

import numpy as np
import pytest

from codec.geometry import BLOCK, block_grid_shape
from edge.detector import COCO_CLASSES, Detection
from edge.policy import RoiPolicy, mask_to_blocks
from tests.edge_fixtures import needs_shared, vtest_frames

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
    assert {g: i.label for g, i in plan.groups.items()} == {0: "background", 1: "person"}
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
    assert plan.qualities() == {0: 0.2, person: 0.7, face: 0.95}
    assert plan.groups[face].encrypt and not plan.groups[0].encrypt
    assert list(plan.without_background().groups) == [1, 2]
    with pytest.raises(TypeError):  # a plan is frozen: a step that changes it makes a new one
        plan.groups[0] = plan.groups[1]
    with pytest.raises(ValueError):
        plan.group_map[0, 0] = 5


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
    enc = codec.encode(frame, plan.without_background(), stream_id="t", frame_index=3)
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
    enc = codec.encode(frame, plan)
    assert {g.group_id: g.scale_log2 for g in enc.groups} == {0: 2, 1: 0}
    dec = codec.decode(enc)
    assert dec.mask.all()  # background and person still tile the frame


def _rect(h, w, x0, y0, x1, y1):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m
