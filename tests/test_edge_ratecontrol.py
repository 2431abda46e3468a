"""Rate control with the real codec on real vtest frames: --target-kbps is held within 15% over
100 frames. The frames (half size, to keep the test short) and their real detections are computed
once and cycled; every frame is really encoded."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge.pipeline import EdgePipeline
from edge.ratecontrol import RateController, RateModel
from edge.policy import RoiPolicy
from edge.sinks import MemorySink
from edge.sources import Frame
from tests.edge_fixtures import detector, needs_shared, vtest_frames  # noqa: F401

pytestmark = needs_shared()
FPS = 10


@pytest.fixture(scope="module")
def clip(detector):
    frames = vtest_frames(24, scale=0.5)[::4]  # 6 frames, 0.4 s apart, 384x288
    detector.set_classes(["person"])
    return [(f, detector.detect(f)) for f in frames]


def policy():
    return RoiPolicy(classes=["person"], roi_quality=0.8, bg_quality=0.3, margin_px=8, min_area_px=64)


def frame_bytes(codec, image, dets, bg_q, with_bg=True):
    plan = policy().plan(dets, *image.shape[:2])
    plan = plan.with_qualities({0: bg_q}) if with_bg else plan.without_background()
    return len(codec.encode(image, plan).SerializeToString())


def run(codec, clip, n, target_kbps, bg_interval):
    pipe = EdgePipeline.init(codec, policy(), sink=MemorySink(keep=False), bg_interval=bg_interval,
                             target_kbps=target_kbps)
    results = []
    for i in range(n):
        image, dets = clip[i % len(clip)]
        results.append(pipe.process(Frame(image, i, 1_700_000_000_000_000 + i * 1_000_000 // FPS), detections=dets))
    summary = pipe.finalize()
    return summary, results, pipe


@pytest.mark.slow
def test_holds_target_with_background_every_frame(codec, clip):
    image, dets = clip[0]
    low, high = frame_bytes(codec, image, dets, 0.1), frame_bytes(codec, image, dets, 0.6)
    assert high > low
    target = math.sqrt(low * high) * 8 * FPS / 1000  # a rate some q between 0.1 and 0.6 reaches
    summary, results, _ = run(codec, clip, 100, target, bg_interval=1)
    assert summary.frames == 100 and summary.video_s == pytest.approx(10.0)
    assert abs(summary.kbps / target - 1) < 0.15, (summary.kbps, target)
    bg_q = [r.plan.groups[0].quality for r in results]
    assert 0.1 <= np.median(bg_q[20:]) <= 0.6  # the background quality is what adapted
    assert all(r.plan.groups[g].quality == 0.8 for r in results[20:] for g in r.plan.object_ids)


@pytest.mark.slow
def test_holds_target_with_background_refresh(codec, clip):
    image, dets = clip[0]
    roi_only = np.mean([frame_bytes(codec, im, d, 0.0, with_bg=False) for im, d in clip])
    background = frame_bytes(codec, image, dets, 0.4) - frame_bytes(codec, image, dets, 0.4, with_bg=False)
    target = (roi_only + background / 10) * 8 * FPS / 1000
    summary, results, _ = run(codec, clip, 100, target, bg_interval=10)
    assert summary.background_frames == 10
    assert abs(summary.kbps / target - 1) < 0.15, (summary.kbps, target)


def test_lowers_roi_quality_only_when_it_must(codec, clip):
    roi_only = np.mean([frame_bytes(codec, im, d, 0.0, with_bg=False) for im, d in clip])
    target = 0.5 * roi_only * 8 * FPS / 1000  # not even the objects fit at their requested quality
    summary, results, pipe = run(codec, clip, 16, target, bg_interval=0)
    late = results[8:]
    assert all(pipe.planner.rate.q_min <= r.plan.groups[g].quality < 0.8 for r in late for g in r.plan.object_ids)
    assert summary.kbps < roi_only * 8 * FPS / 1000


def test_rate_model_learns_a_log_linear_rate():
    model = RateModel()
    rng = np.random.default_rng(0)
    for _ in range(60):
        q = rng.uniform(0.1, 0.9)
        model.update(1000, q, 1000 * math.exp(1.0 + 4.0 * q) * rng.uniform(0.95, 1.05))
    assert model.b == pytest.approx(4.0, abs=0.5)
    assert model.solve(1000, model.predict(1000, 0.5)) == pytest.approx(0.5)


def test_rejects_nonsense():
    with pytest.raises(ValueError):
        RateController(0)
