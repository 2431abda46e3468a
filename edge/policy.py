"""How detections become groups: `RoiPolicy.plan(detections, height, width) -> FramePlan`.

Each wanted instance's mask, dilated by a margin, becomes the blocks of the codec's 16-px grid it
touches; small objects are dropped, at most `max_groups` groups are kept, and every group gets its
label, score, quality and encryption flag. The blocks no object claims form the background (0).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from codec.geometry import BLOCK, block_grid_shape, padded_size
from codec.plan import BACKGROUND, FramePlan, GroupInfo
from codec.scaling import scale_log2

from .detector import FACE_LABEL, Detection
from .vocabulary import KNOWN_CLASSES, parse_class_values, resolve_classes


def mask_to_blocks(mask: np.ndarray, min_coverage: float = 0.0) -> np.ndarray:
    """Pixel mask [H, W] -> block mask on the padded grid; a block is in if more than
    `min_coverage` of its pixels are (0 = any pixel)."""
    h, w = mask.shape
    ph, pw = padded_size(h, w)
    padded = np.zeros((ph, pw), np.float32)
    padded[:h, :w] = mask
    cover = padded.reshape(ph // BLOCK, BLOCK, pw // BLOCK, BLOCK).mean(axis=(1, 3))
    return cover > min_coverage


def dilate_mask(mask: np.ndarray, margin_px: int) -> np.ndarray:
    """Every pixel within `margin_px` (Euclidean) of the mask. Blocks are taken afterwards, so a
    margin adds only the blocks it reaches: rounding it up to whole blocks would double the area of
    a pedestrian's group (and its bytes) for an 8-px margin."""
    if margin_px <= 0 or not mask.any():
        return mask
    import cv2

    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    y0, y1 = max(rows[0] - margin_px, 0), min(rows[-1] + margin_px + 1, mask.shape[0])
    x0, x1 = max(cols[0] - margin_px, 0), min(cols[-1] + margin_px + 1, mask.shape[1])
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin_px + 1, 2 * margin_px + 1))
    out = np.zeros_like(mask, dtype=bool)
    out[y0:y1, x0:x1] = cv2.dilate(mask[y0:y1, x0:x1].astype(np.uint8), kernel).astype(bool)
    return out


@dataclass
class RoiPolicy:
    """How detections become groups.

    classes: ROI classes (None = every detected class); class_quality: q per class (others get
    roi_quality); bg_quality: q of the background; bg_scale: code the background at 1/2, 1/4 or 1/8
    resolution (3-10x fewer background bits, a blurred context); encrypt: classes sealed with the key;
    margin_px: dilation of each instance's mask in pixels, before it becomes blocks; min_area_px: smaller
    instances are ignored; max_groups: keep the best-scoring instances; min_coverage: fraction of a
    block an instance must cover to claim it (0 = any pixel).
    """

    classes: list[str] | None = None
    roi_quality: float = 0.85
    class_quality: dict[str, float] = field(default_factory=dict)
    bg_quality: float = 0.3
    bg_scale: int = 1
    encrypt: set[str] = field(default_factory=set)
    margin_px: int = 8
    min_area_px: int = 256
    max_groups: int = 32
    min_coverage: float = 0.0

    def __post_init__(self) -> None:
        for name, q in [("roi_quality", self.roi_quality), ("bg_quality", self.bg_quality),
                        *self.class_quality.items()]:
            if not 0.0 <= q <= 1.0:
                raise ValueError(f"quality of {name} must be in [0, 1], got {q}")
        if self.max_groups < 0 or self.min_area_px < 0 or self.margin_px < 0:
            raise ValueError("max_groups, min_area_px and margin_px must be >= 0")
        scale_log2(self.bg_scale)  # ValueError unless 1, 2, 4 or 8
        self.encrypt = set(self.encrypt)

    @classmethod
    def from_words(cls, roi: str | None, known: Sequence[str] = KNOWN_CLASSES, *,
                   class_quality: str | Mapping[str, float] | None = None, encrypt: str | Iterable[str] | None = None,
                   **kw) -> "RoiPolicy":
        classes = resolve_classes(roi, known) if roi else None
        cq = parse_class_values(class_quality, known) if isinstance(class_quality, str) else dict(class_quality or {})
        enc = set(resolve_classes(encrypt, known)) if encrypt else set()
        if classes is not None:  # an encrypted class must be detected to be encrypted
            classes += [c for c in enc if c not in classes]
        return cls(classes=classes, class_quality=cq, encrypt=enc, **kw)

    @property
    def wants_faces(self) -> bool:
        return FACE_LABEL in (self.classes or []) or FACE_LABEL in self.encrypt

    @property
    def detector_classes(self) -> list[str] | None:
        return None if self.classes is None else [c for c in self.classes if c != FACE_LABEL]

    def quality_of(self, label: str) -> float:
        return self.class_quality.get(label, self.roi_quality)

    def plan(self, detections: Sequence[Detection], height: int, width: int) -> FramePlan:
        """Group map and groups for one frame, background included. Overlaps go to the
        better-scoring instance, except that encrypted classes (privacy) always win their blocks."""
        grid = block_grid_shape(height, width)
        group_map = np.zeros(grid, np.int32)
        wanted = [d for d in detections
                  if (self.classes is None or d.label in self.classes) and d.area >= max(self.min_area_px, 1)]
        wanted.sort(key=lambda d: (d.label not in self.encrypt, -d.score))
        groups: dict[int, GroupInfo] = {}
        for det in wanted:
            if len(groups) >= self.max_groups:
                break
            if det.mask.shape != (height, width):
                raise ValueError(f"mask is {det.mask.shape}, frame is {(height, width)}")
            blocks = mask_to_blocks(dilate_mask(det.mask, self.margin_px), self.min_coverage)
            free = blocks & (group_map == 0)
            if not free.any():
                continue
            gid = len(groups) + 1
            group_map[free] = gid
            groups[gid] = GroupInfo(det.label, self.quality_of(det.label), float(det.score), det.label in self.encrypt,
                                    blocks=int(free.sum()), track_id=det.track_id)
        bg_blocks = int((group_map == 0).sum())
        if bg_blocks:
            groups[BACKGROUND] = GroupInfo("background", self.bg_quality, 0.0, "background" in self.encrypt,
                                           self.bg_scale, bg_blocks)
        return FramePlan(group_map, groups)
