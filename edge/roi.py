"""ROI policy: words -> detector classes, detections -> block-aligned groups, background refresh.

* `resolve_classes("people, vehicles")` maps the user's words to detector classes (plurals,
  synonyms, multi-word names); an unknown word raises `UnknownClassError` listing the known classes.
* `RoiPolicy.plan(detections, frame shape)` turns instance masks into a group map on the codec's
  16-px block grid (dilated by a margin, small objects dropped, at most `max_groups` groups) with a
  label, score, quality and encryption flag per group.
* `BackgroundScheduler` decides when the background group (0) is sent: every `interval` frames and
  on a scene change, so a static camera pays for its background once, not at every frame.
  `BackgroundFill` sends, between refreshes, the background blocks no composite layer covers yet.
* `group_map_for_image(image, words)` is the one-call helper behind `roistream encode --detect`.
"""

from __future__ import annotations

import difflib
import re
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from codec.bitstream import COMPOSITE_BACKGROUND_LAYERS
from codec.geometry import BLOCK, block_grid_shape, frame_blocks, padded_size
from codec.scaling import scale_log2

from .detector import COCO_CLASSES, FACE_LABEL, Detection

# word -> classes. Keys are singular, lower case; values are class names of the COCO models.
SYNONYMS: dict[str, tuple[str, ...]] = {
    # people
    "people": ("person",), "human": ("person",), "pedestrian": ("person",), "man": ("person",),
    "woman": ("person",), "child": ("person",), "kid": ("person",), "boy": ("person",), "girl": ("person",),
    "adult": ("person",), "body": ("person",), "worker": ("person",), "player": ("person",),
    "passerby": ("person",), "someone": ("person",), "crowd": ("person",),
    # vehicles
    "vehicle": ("car", "motorcycle", "bus", "truck"),
    "motor vehicle": ("car", "motorcycle", "bus", "truck"),
    "traffic": ("car", "motorcycle", "bus", "truck", "bicycle"),
    "automobile": ("car",), "auto": ("car",), "taxi": ("car",), "van": ("car", "truck"), "suv": ("car",),
    "lorry": ("truck",), "pickup": ("truck",), "coach": ("bus",), "motorbike": ("motorcycle",),
    "scooter": ("motorcycle",), "moped": ("motorcycle",), "bike": ("bicycle",), "cycle": ("bicycle",),
    "cyclist": ("person", "bicycle"), "rider": ("person", "bicycle", "motorcycle"),
    "plane": ("airplane",), "aeroplane": ("airplane",), "aircraft": ("airplane",), "jet": ("airplane",),
    "ship": ("boat",), "vessel": ("boat",), "tram": ("train",), "locomotive": ("train",),
    # animals
    "animal": ("bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe"),
    "pet": ("cat", "dog"), "puppy": ("dog",), "kitten": ("cat",), "kitty": ("cat",), "cattle": ("cow",),
    "pony": ("horse",), "lamb": ("sheep",),
    # things
    "bag": ("backpack", "handbag", "suitcase"), "luggage": ("suitcase",), "purse": ("handbag",),
    "phone": ("cell phone",), "cellphone": ("cell phone",), "mobile": ("cell phone",),
    "smartphone": ("cell phone",), "television": ("tv",), "tvmonitor": ("tv",), "monitor": ("tv",),
    "screen": ("tv", "laptop"), "sofa": ("couch",), "table": ("dining table",), "plant": ("potted plant",),
    "fridge": ("refrigerator",), "ball": ("sports ball",), "racket": ("tennis racket",),
    "hairdryer": ("hair drier",), "hair dryer": ("hair drier",), "glass": ("wine glass", "cup"),
    "mug": ("cup",), "doughnut": ("donut",), "teddy": ("teddy bear",), "hydrant": ("fire hydrant",),
    "traffic signal": ("traffic light",), "computer": ("laptop", "keyboard", "mouse"),
    "faces": (FACE_LABEL,), "head": (FACE_LABEL,),
}
IRREGULAR_PLURALS = {
    "people": "person", "persons": "person", "men": "man", "women": "woman", "children": "child",
    "mice": "mouse", "knives": "knife", "buses": "bus", "busses": "bus", "sheep": "sheep", "skis": "skis",
    "geese": "goose", "teeth": "tooth", "feet": "foot", "benches": "bench", "sandwiches": "sandwich",
    "boxes": "box", "glasses": "glass", "watches": "watch", "couches": "couch", "peaches": "peach",
    "dishes": "dish", "brushes": "brush", "toothbrushes": "toothbrush", "scissors": "scissors",
    "cattle": "cattle", "passersby": "passerby", "series": "series",
}
ALL_WORDS = {"all", "everything", "any", "*", "objects", "object"}


class UnknownClassError(ValueError):
    """A ROI word that maps to no detector class; the message lists the known classes."""

    def __init__(self, word: str, known: Sequence[str]):
        self.word, self.known = word, list(known)
        near = difflib.get_close_matches(word, list(known) + list(SYNONYMS), n=3, cutoff=0.7)
        hint = f" Did you mean {', '.join(near)}?" if near else ""
        super().__init__(f"unknown ROI class {word!r}.{hint} Known classes: {', '.join(known)} "
                         f"(plurals and synonyms such as people, vehicles, animals, bike work too)")


def _normalize(word: str) -> str:
    return re.sub(r"\s+", " ", word.strip().lower().replace("_", " ").replace("-", " "))


def _singulars(word: str) -> list[str]:
    """Candidate singular forms of a (possibly multi-word) term; the last word carries the plural."""
    head, _, last = word.rpartition(" ")
    prefix = head + " " if head else ""
    forms = [last]
    if last in IRREGULAR_PLURALS:
        forms.append(IRREGULAR_PLURALS[last])
    if last.endswith("ies") and len(last) > 4:
        forms.append(last[:-3] + "y")
    if last.endswith("ves") and len(last) > 4:
        forms += [last[:-3] + "f", last[:-3] + "fe"]
    if last.endswith("es") and len(last) > 3:
        forms.append(last[:-2])
    if last.endswith("s") and not last.endswith("ss") and len(last) > 2:
        forms.append(last[:-1])
    return [prefix + f for f in dict.fromkeys(forms)]


def split_words(words: str | Iterable[str]) -> list[str]:
    """'person, dog and cars' -> ['person', 'dog', 'cars']."""
    items = [words] if isinstance(words, str) else list(words)
    out: list[str] = []
    for item in items:
        for part in re.split(r",|;|\+|\band\b|\bor\b|&", item):
            part = _normalize(part)
            if part:
                out.append(part)
    return out


def resolve_word(word: str, known: Sequence[str]) -> list[str]:
    """Classes for one word (raises UnknownClassError)."""
    known_set = set(known)
    word = _normalize(word)
    if word in ALL_WORDS:
        return [k for k in known if k != FACE_LABEL]
    for form in _singulars(word):
        compact = form.replace(" ", "")
        for candidate in (form, compact):
            if candidate in known_set:
                return [candidate]
        for candidate in (form, compact):
            if candidate in SYNONYMS:
                hits = [c for c in SYNONYMS[candidate] if c in known_set]
                if hits:
                    return hits
        for k in known:  # "cellphone" -> "cell phone", "teddybear" -> "teddy bear"
            if k.replace(" ", "") == compact:
                return [k]
    raise UnknownClassError(word, known)


def resolve_classes(words: str | Iterable[str], known: Sequence[str] = COCO_CLASSES + (FACE_LABEL,)) -> list[str]:
    """Detector classes named by the user's words, in first-mention order, without duplicates."""
    out: list[str] = []
    for word in split_words(words):
        for cls in resolve_word(word, known):
            if cls not in out:
                out.append(cls)
    if not out:
        raise ValueError("no ROI class given")
    return out


def parse_class_values(text: str | None, known: Sequence[str] = COCO_CLASSES + (FACE_LABEL,)) -> dict[str, float]:
    """'person=0.9, vehicles=0.6' -> {'person': 0.9, 'car': 0.6, ...} (words resolved like --roi)."""
    out: dict[str, float] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        word, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"expected CLASS=VALUE, got {item.strip()!r}")
        for cls in resolve_word(word, known):
            out[cls] = float(value)
    return out


# ---------------------------------------------------------------- groups
@dataclass
class GroupInfo:
    label: str
    score: float
    quality: float
    encrypt: bool
    blocks: int
    scale: int = 1  # coded at 1/scale resolution (codec.scaling)
    track_id: int = 0  # the detection's track (edge.tracking; 0 = not tracked)


FILL_SPACING_WITHOUT_INTERVAL = 5  # frames between background fills when there is no refresh interval
NOT_CODED = -1  # group-map id of background blocks a fill leaves out (GroupPlan.restrict_background)


@dataclass
class GroupPlan:
    """What to code for one frame: the group map and each group's metadata (0 = background)."""

    group_map: np.ndarray  # int32 block grid
    groups: dict[int, GroupInfo] = field(default_factory=dict)
    send_background: bool = True

    def restrict_background(self, blocks: np.ndarray) -> None:
        """Send only these background blocks (a fill): the others get NOT_CODED in the map."""
        self.group_map = np.where((self.group_map == 0) & ~blocks, NOT_CODED, self.group_map).astype(np.int32)
        self.groups[0].blocks = int((self.group_map == 0).sum())
        self.send_background = True

    @property
    def object_ids(self) -> list[int]:
        return sorted(g for g in self.groups if g != 0)

    @property
    def coded_ids(self) -> list[int]:
        with_bg = self.send_background and 0 in self.groups
        return ([0] if with_bg else []) + self.object_ids

    @property
    def labels(self) -> dict[int, str]:
        return {g: i.label for g, i in self.groups.items()}

    @property
    def scores(self) -> dict[int, float]:
        return {g: i.score for g, i in self.groups.items()}

    @property
    def qualities(self) -> dict[int, float]:
        return {g: i.quality for g, i in self.groups.items()}

    @property
    def scales(self) -> dict[int, int]:
        return {g: i.scale for g, i in self.groups.items() if i.scale != 1}

    @property
    def encrypt_ids(self) -> list[int]:
        return [g for g, i in self.groups.items() if i.encrypt and g in self.coded_ids]

    def encode_kwargs(self) -> dict:
        """Keyword arguments for Codec.encode (besides image, key and frame identity)."""
        return {"group_map": self.group_map, "qualities": self.qualities, "labels": self.labels,
                "scores": self.scores, "encrypt": self.encrypt_ids, "groups": self.coded_ids, "scales": self.scales,
                "track_ids": {g: i.track_id for g, i in self.groups.items() if i.track_id}}


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
    def from_words(cls, roi: str | None, known: Sequence[str] = COCO_CLASSES + (FACE_LABEL,), *,
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

    def plan(self, detections: Sequence[Detection], height: int, width: int) -> GroupPlan:
        """Group map and group metadata for one frame. Overlaps go to the better-scoring instance,
        except that encrypted classes (privacy) always win their blocks."""
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
            groups[gid] = GroupInfo(det.label, det.score, self.quality_of(det.label), det.label in self.encrypt,
                                    int(free.sum()), track_id=det.track_id)
        bg_blocks = int((group_map == 0).sum())
        if bg_blocks:
            groups[0] = GroupInfo("background", 0.0, self.bg_quality, "background" in self.encrypt, bg_blocks,
                                  self.bg_scale)
        return GroupPlan(group_map, dict(sorted(groups.items())))


# ---------------------------------------------------------------- background refresh
class BackgroundScheduler:
    """Send the background every `interval` frames and on a scene change.

    interval: 1 = every frame; N = every N-th frame; 0 = only the first frame and scene changes.
    A scene change is more than `change_fraction` of a 64x48 grey thumbnail's pixels differing by
    more than `pixel_threshold` (0-255) from the thumbnail of the last background sent (camera
    moved, lights switched, ...). Moving ROI objects touch only a small fraction.
    """

    def __init__(self, interval: int = 1, change_fraction: float = 0.25, pixel_threshold: int = 30):
        if interval < 0:
            raise ValueError("background interval must be >= 0")
        self.interval, self.change_fraction, self.pixel_threshold = interval, change_fraction, pixel_threshold
        self._last_sent: int | None = None
        self._thumb: np.ndarray | None = None
        self.sent = 0
        self.scene_changes = 0

    @staticmethod
    def thumbnail(image: np.ndarray) -> np.ndarray:
        import cv2

        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        return cv2.resize(grey, (64, 48), interpolation=cv2.INTER_AREA).astype(np.int16)

    def scene_changed(self, image: np.ndarray) -> bool:
        if self._thumb is None:
            return True
        thumb = self.thumbnail(image)
        if thumb.shape != self._thumb.shape:
            return True
        return float((np.abs(thumb - self._thumb) > self.pixel_threshold).mean()) > self.change_fraction

    def decide(self, index: int, image: np.ndarray) -> tuple[bool, str]:
        """(send the background?, why) for the frame with this index; records a send."""
        if self.interval == 1:
            reason = "every frame"
        elif self._last_sent is None:
            reason = "first frame"
        elif self.interval and index - self._last_sent >= self.interval:
            reason = "interval"
        elif self.scene_changed(image):
            reason = "scene change"
            self.scene_changes += 1
        else:
            return False, ""
        self.force(index, image)
        return True, reason

    def force(self, index: int, image: np.ndarray) -> None:
        """Record a background sent for another reason (BackgroundFill asking for a refresh)."""
        self._last_sent = index
        if self.interval != 1:
            self._thumb = self.thumbnail(image)
        self.sent += 1


class BackgroundFill:
    """Sends, between refreshes, the background blocks that no composite layer covers.

    A refresh codes the background around the objects of its frame, so it has holes where they
    stood. The cloud's composite fills them from older background records, newest first, at most
    COMPOSITE_BACKGROUND_LAYERS of them: a spot with an object on it at every refresh in that window
    would stay black (a person who stands still). This class keeps the block masks of those last
    layers, as the composite stacks them. On a frame without a refresh, the blocks none of them
    covers and no object stands on now are sent as a small background record (a fill) that the
    composite stacks like any other.

    At most `layers // 2 - 1` fills follow a refresh, so that a refresh with its fills, and the
    refresh before it with its own, stay within the composite's window. They are at least `spacing`
    frames apart (the refresh interval shared among them), so they are not all spent on the first
    frames after a refresh, when walking people have freed only a sliver of their spots. With
    interval 0 (no periodic refresh: static cameras), holes left once the fills are spent call for
    a refresh.
    """

    def __init__(self, interval: int, layers: int = COMPOSITE_BACKGROUND_LAYERS, spacing: int | None = None):
        self.interval = interval
        self.max_fills = max(layers // 2 - 1, 0)
        if spacing is None:
            spacing = interval // (self.max_fills + 1) if interval else FILL_SPACING_WITHOUT_INTERVAL
        self.spacing = max(1, spacing)
        self._layers: deque[np.ndarray] = deque(maxlen=layers)
        self._fills_since_refresh = 0
        self._last_layer = 0  # frame index of the last background sent
        self.sent = 0

    def holes(self, plan: GroupPlan, height: int, width: int) -> np.ndarray | None:
        """Background blocks of this frame (inside it) that no layer covers, or None when there are none."""
        if not self._layers or 0 not in plan.groups:
            return None
        inside = np.zeros(plan.group_map.shape, bool)
        inside[frame_blocks(height, width)] = True
        holes = (plan.group_map == 0) & inside & ~np.logical_or.reduce(list(self._layers))
        return holes if holes.any() else None

    def decide(self, index: int, plan: GroupPlan, height: int, width: int) -> str:
        """For a frame without a refresh due: "fill" (the plan now sends only the holes), "refresh"
        (holes remain, the fills are spent and no periodic refresh will come) or "" (nothing)."""
        holes = self.holes(plan, height, width)
        if holes is None:
            return ""
        if self._fills_since_refresh < self.max_fills:
            if index - self._last_layer < self.spacing:
                return ""
            plan.restrict_background(holes)
            return "fill"
        return "refresh" if self.interval == 0 else ""

    def record(self, index: int, plan: GroupPlan, refresh: bool) -> None:
        """Note the background frame `index` carried (call only when it carried one)."""
        self._layers.appendleft(plan.group_map == 0)
        self._last_layer = index
        if refresh:
            self._fills_since_refresh = 0
        else:
            self._fills_since_refresh += 1
            self.sent += 1


# ---------------------------------------------------------------- one-call helper
_detectors: dict = {}


def group_map_for_image(image: np.ndarray, words: str, *, detector=None, margin_px: int = 8,
                        min_area_px: int = 256, max_groups: int = 32, conf: float = 0.35,
                        faces: bool | None = None) -> tuple[np.ndarray, dict[int, str], dict[int, float]]:
    """Detect the classes named by `words` in an RGB image and return (group_map, labels, scores)
    for `Codec.encode`: group 0 is the background ("background"), 1..K the instances.
    Raises UnknownClassError for a word that names no class."""
    from .detector import Detector, FaceDetector

    if detector is None:
        detector = _detectors.get("yolo") or _detectors.setdefault("yolo", Detector(conf=conf))
    known = list(detector.class_names) + [FACE_LABEL]
    policy = RoiPolicy.from_words(words, known, margin_px=margin_px, min_area_px=min_area_px, max_groups=max_groups)
    detector.set_classes(policy.detector_classes)
    detections = detector.detect(image)
    if faces or (faces is None and policy.wants_faces):
        face = _detectors.get("face") or _detectors.setdefault("face", FaceDetector())
        detections = detections + face.detect(image)
    plan = policy.plan(detections, *image.shape[:2])
    return plan.group_map, plan.labels, plan.scores
