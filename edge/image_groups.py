"""Groups for a single image in one call: `group_map_for_image(image, words)`, behind
`roistream encode --detect` (the combined CLI hands it to the codec's command)."""

from __future__ import annotations

import numpy as np

from .detector import FACE_LABEL, FrameDetector, shared_detector, shared_face_detector
from .policy import RoiPolicy


def group_map_for_image(image: np.ndarray, words: str, *, detector=None, margin_px: int = 8,
                        min_area_px: int = 256, max_groups: int = 32, conf: float = 0.35,
                        faces: bool | None = None) -> tuple[np.ndarray, dict[int, str], dict[int, float]]:
    """Detect the classes named by `words` in an RGB image and return (group_map, labels, scores)
    for `codec.plan.FramePlan.from_groups`: group 0 is the background ("background"), 1..K the
    instances. Raises UnknownClassError for a word that names no class."""
    detector = detector if detector is not None else shared_detector(conf)
    known = list(detector.class_names) + [FACE_LABEL]
    policy = RoiPolicy.from_words(words, known, margin_px=margin_px, min_area_px=min_area_px, max_groups=max_groups)
    with_faces = faces or (faces is None and policy.wants_faces)
    frame_detector = FrameDetector(detector, policy.detector_classes, shared_face_detector() if with_faces else None)
    plan = policy.plan(frame_detector.detect(image), *image.shape[:2])
    return (np.array(plan.group_map), {g: i.label for g, i in plan.groups.items()},
            {g: i.score for g, i in plan.groups.items()})
