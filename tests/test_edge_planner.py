"""The edge's frame planner on real detections of real vtest frames: what each plan holds (groups,
qualities, scales, encryption, background refreshes and fills, rate-controlled qualities) and that
the codec codes exactly what the plan says."""

from __future__ import annotations

import numpy as np
import pytest

from codec.crypto import EncryptionKey, Keyring
from codec.plan import BACKGROUND, NOT_CODED
from edge.planner import FramePlanner
from edge.policy import RoiPolicy
from edge.sources import Frame
from tests.edge_fixtures import detector, needs_shared, vtest_frames  # noqa: F401

pytestmark = needs_shared()
T0 = 1_700_000_000_000_000


@pytest.fixture(scope="module")
def clip(detector):
    """Every 4th of vtest's first 32 frames at half size (people walk between them) and their detections."""
    detector.set_classes(["person"])
    frames = vtest_frames(32, scale=0.5)[::4]
    return [(Frame(image, i, T0 + i * 100_000), detector.detect(image)) for i, image in enumerate(frames)]


def _code(codec, planner, frame, plan, key=None, dt=0.1):
    """Encode as the pipeline does and feed the cost back; the encoded frame."""
    encoded = codec.encode(frame.image, plan, key=key, frame_index=frame.index, timestamp_us=frame.timestamp_us)
    data = encoded.SerializeToString()
    planner.record(frame, plan, {r.group_id: len(r.payload) for r in encoded.groups}, len(data), dt)
    return encoded


def test_plan_holds_policy_groups_and_the_background_schedule(codec, clip):
    policy = RoiPolicy.from_words("people", encrypt="person", roi_quality=0.8, bg_quality=0.25, bg_scale=2)
    planner = FramePlanner.init(policy, bg_interval=4, bg_fill=False)
    key = EncryptionKey.generate()
    reasons = []
    for frame, dets in clip[:5]:
        plan = planner.plan(frame, dets, 0.1)
        reasons.append(plan.background_reason)
        people = [d for d in dets if d.label == "person" and d.area >= policy.min_area_px]
        assert 0 < len(plan.object_ids) <= len(people)
        for gid in plan.object_ids:
            info = plan.groups[gid]
            assert (info.label, info.quality, info.encrypt, info.scale) == ("person", 0.8, True, 1)
            assert info.blocks == int((plan.group_map == gid).sum()) > 0
            assert info.score in {float(d.score) for d in people}
        assert plan.has_background == (frame.index % 4 == 0)
        if plan.has_background:
            bg = plan.groups[BACKGROUND]
            assert (bg.label, bg.quality, bg.encrypt, bg.scale) == ("background", 0.25, False, 2)
            assert bg.blocks == int((plan.group_map == BACKGROUND).sum())
        encoded = _code(codec, planner, frame, plan, key)
        assert [r.group_id for r in encoded.groups] == list(plan.groups)
        assert all(r.HasField("encryption") == plan.groups[r.group_id].encrypt for r in encoded.groups)
        assert {r.group_id: r.scale_log2 for r in encoded.groups if r.group_id == 0} == (
            {0: 1} if plan.has_background else {})
        decoded = codec.decode(encoded, keys=Keyring([key]))
        assert set(decoded.groups) == set(plan.groups) and not decoded.failures
    assert reasons == ["first frame", "", "", "", "interval"]


def test_fill_plans_send_only_blocks_no_background_layer_has(codec, clip):
    planner = FramePlanner.init(RoiPolicy(classes=["person"], bg_quality=0.1), bg_interval=8)
    layers = []
    kinds = []
    for frame, dets in clip:
        plan = planner.plan(frame, dets, 0.1)
        kinds.append(plan.background_reason)
        if plan.background_reason == "fill":
            sent = plan.group_map == BACKGROUND
            assert sent.any() and plan.groups[BACKGROUND].blocks == int(sent.sum())
            assert not (sent & np.logical_or.reduce(layers)).any()  # nothing an earlier layer had
            assert (plan.group_map == NOT_CODED).any()  # the rest of the background is left out
            assert not (plan.group_map[sent] != BACKGROUND).any()
        elif not plan.background_reason:
            assert not plan.has_background and (plan.group_map == BACKGROUND).any()
        encoded = _code(codec, planner, frame, plan)
        if plan.has_background:
            layers.append(plan.group_map == BACKGROUND)
            assert 0 in [r.group_id for r in encoded.groups]
    assert kinds[0] == "first frame" and "fill" in kinds, kinds
    assert planner.fill.sent == kinds.count("fill")


def test_rate_control_sets_the_qualities_in_the_plan(codec, clip):
    policy = RoiPolicy(classes=["person"], roi_quality=0.8, bg_quality=0.3)
    planner = FramePlanner.init(policy, bg_interval=1, target_kbps=200)
    frame, dets = clip[0]
    untouched = policy.plan(dets, *frame.image.shape[:2])
    plans = []
    for frame, dets in clip[:4]:
        plan = planner.plan(frame, dets, 0.1)
        decision = planner.rate.last
        assert plan.qualities() == decision.qualities  # what rate control decided is what gets coded
        assert plan.groups[BACKGROUND].quality == decision.bg_quality <= 0.8
        assert all(planner.rate.roi_q_min <= plan.groups[g].quality <= 0.8 for g in plan.object_ids)
        _code(codec, planner, frame, plan)
        plans.append(plan)
    assert planner.rate.bg_model.observations == 4 and planner.rate.roi_model.observations > 0
    # the bitrate asked for is far below what q 0.3 costs at this size: the background gave way
    assert plans[-1].groups[BACKGROUND].quality < untouched.groups[BACKGROUND].quality
