"""The real YOLO-seg detector (int8 ONNX, offline) and YuNet faces on real images."""

from __future__ import annotations

import numpy as np
import pytest

from codec.data import load_rgb
from codec.geometry import block_grid_shape
from edge.detector import Detection, Detector, DetectorError, FaceDetector
from edge.image_groups import group_map_for_image
from edge.policy import RoiPolicy, mask_to_blocks
from edge.vocabulary import UnknownClassError
from tests.edge_fixtures import coco_person_images, detector, needs_shared, vtest_frames  # noqa: F401

pytestmark = needs_shared()


@pytest.fixture(scope="module")
def person_images():
    images = coco_person_images(min_fraction=0.05, limit=8)
    assert len(images) == 8
    return [(load_rgb(path), gt) for path, gt in images]


def test_coco_images_yield_person_groups(detector, person_images):
    detector.set_classes(["person"])
    policy = RoiPolicy(classes=["person"])
    found, coverage = 0, []
    for image, truth in person_images:
        dets = detector.detect(image)
        for d in dets:
            assert isinstance(d, Detection) and d.label == "person" and 0 < d.score <= 1
            assert d.mask.shape == image.shape[:2] and d.mask.dtype == bool and d.mask.any()
            x0, y0, x1, y1 = d.box
            assert 0 <= x0 < x1 <= image.shape[1] + 1 and 0 <= y0 < y1 <= image.shape[0] + 1
        plan = policy.plan(dets, *image.shape[:2])
        if plan.object_ids:
            found += 1
            assert {plan.groups[g].label for g in plan.object_ids} == {"person"}
            truth_blocks = mask_to_blocks(truth, 0.25)
            coverage.append((truth_blocks & (plan.group_map > 0)).sum() / truth_blocks.sum())
    assert found >= 7, f"person groups in only {found} of 8 images with large persons"
    assert np.median(coverage) >= 0.8, coverage  # the groups hold the annotated people


def test_class_filter_and_names(detector, person_images):
    assert detector.class_names[0] == "person" and len(detector.class_names) == 80
    detector.set_classes(["giraffe"])
    assert all(d.label == "giraffe" for d in detector.detect(person_images[0][0]))
    with pytest.raises(DetectorError):
        detector.set_classes(["unicorn"])
    detector.set_classes(["person"])
    image = person_images[0][0]
    coarse = detector.detect(image)  # default: masks at 320x320, un-letterboxed to the frame afterwards
    detector.retina_masks = True
    try:
        sharp = detector.detect(image)
    finally:
        detector.retina_masks = False
    assert len(coarse) == len(sharp) and coarse[0].mask.shape == image.shape[:2]
    inter = (coarse[0].mask & sharp[0].mask).sum()
    assert inter / (coarse[0].mask | sharp[0].mask).sum() > 0.8
    detector.set_classes(None)


def test_group_map_for_image(detector):
    frame = vtest_frames(1)[0]
    group_map, labels, scores = group_map_for_image(frame, "people", detector=detector)
    assert group_map.shape == block_grid_shape(*frame.shape[:2]) and group_map.dtype == np.int32
    assert labels[0] == "background" and len(labels) >= 2
    assert set(np.unique(group_map)) == set(labels)
    assert all(labels[g] == "person" and scores[g] > 0 for g in labels if g)
    with pytest.raises(UnknownClassError, match="Known classes"):
        group_map_for_image(frame, "unicorns", detector=detector)


def test_faces(person_images):
    faces = FaceDetector()
    with_face = 0
    for image, truth in person_images:
        dets = faces.detect(image)
        for d in dets:
            assert d.label == "face" and d.mask.shape == image.shape[:2]
            assert (d.mask & truth).sum() >= 0.3 * d.mask.sum()  # faces sit on annotated people
        with_face += bool(dets)
    assert with_face >= 4


def test_missing_weights_fail_clearly(tmp_path):
    with pytest.raises(DetectorError, match="not found|not on this machine"):
        Detector(tmp_path / "nope-seg.onnx")
    with pytest.raises(DetectorError, match="not found"):
        FaceDetector(tmp_path / "nope.onnx")


def test_int8_detector_runs_as_its_float_copy(detector, person_images):
    """The dynamic int8 model is run as a float copy of its int8 weights: same detections."""
    from edge.detector.int8 import is_dynamic_int8

    assert detector.runs != detector.weights and not is_dynamic_int8(detector.runs)
    int8 = Detector(classes=["person"], int8_as_float=False)
    assert int8.runs == int8.weights and is_dynamic_int8(int8.runs)
    detector.set_classes(["person"])
    matched = total = 0
    for image, _ in person_images[:4]:
        a, b = detector.detect(image), int8.detect(image)
        total += max(len(a), len(b))
        for d in a:
            ious = [(d.mask & e.mask).sum() / (d.mask | e.mask).sum() for e in b]
            matched += bool(ious) and max(ious) > 0.7
    assert total and matched >= 0.8 * total, (matched, total)
    detector.set_classes(None)


def test_dequantize_refuses_a_float_model(tmp_path):
    from edge.detector.int8 import dequantize_dynamic_int8

    with pytest.raises(ValueError, match="no ConvInteger"):
        dequantize_dynamic_int8(Detector().runs, tmp_path / "again.onnx")
