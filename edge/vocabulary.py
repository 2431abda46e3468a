"""The user's words for what matters -> detector classes.

`resolve_classes("people, vehicles")` maps words to the classes the detectors report (plurals,
synonyms, multi-word names), so `--roi`, `--encrypt` and `--class-quality` accept plain language;
an unknown word raises `UnknownClassError` listing the known classes and the nearest matches.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence

from .detector import COCO_CLASSES, FACE_LABEL

KNOWN_CLASSES: tuple[str, ...] = COCO_CLASSES + (FACE_LABEL,)

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


def resolve_classes(words: str | Iterable[str], known: Sequence[str] = KNOWN_CLASSES) -> list[str]:
    """Detector classes named by the user's words, in first-mention order, without duplicates."""
    out: list[str] = []
    for word in split_words(words):
        for cls in resolve_word(word, known):
            if cls not in out:
                out.append(cls)
    if not out:
        raise ValueError("no ROI class given")
    return out


def parse_class_values(text: str | None, known: Sequence[str] = KNOWN_CLASSES) -> dict[str, float]:
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

