"""The README's main job on a few frames: local cloud, edge on vtest.avi, people queried back."""

import json

import cv2
import pytest

from roistream.demo import run_demo
from tests.edge_fixtures import needs_shared

pytestmark = [needs_shared(), pytest.mark.slow]


def test_demo_streams_frames_and_queries_the_people_back(tmp_path):
    report = run_demo(tmp_path, frames=12, roi="person", roi_quality=0.8, bg_quality=0.1, bg_interval=10,
                      bg_scale=2)
    assert (report["frames"], report["delivered"], report["all_acknowledged"]) == (12, 12, True)
    assert report["background_frames"] == 2 and report["bytes_per_class"]["person"] > 0
    assert report["person_regions_queried"] >= 12  # vtest has people in every frame
    crops = json.loads((tmp_path / "crops" / "regions.json").read_text())
    assert len(crops) == report["person_regions_queried"] and all(c["label"] == "person" for c in crops)
    assert all((tmp_path / "crops" / c["file"]).stat().st_size > 0 for c in crops)
    composite = cv2.imread(str(tmp_path / "composite.png"))
    assert composite.shape == (576, 768, 3) and composite.std() > 10
    assert 50 < report["bytes_saved_vs_jpeg_percent"] < 100 and report["roi_psnr_db"] > 25
    assert json.loads((tmp_path / "summary.json").read_text()) == report
