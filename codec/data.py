"""Training data: random crops of natural photos and coco128-seg images with random group masks.

Each sample is one group as the encoder sees it: the crop with pixels outside the group's blocks
set to zero, the group's block mask and a random quality. Masks come from coco instance polygons,
random blobs, random block patterns, their complements (backgrounds with holes) or the full crop,
so the model learns to code irregular groups independently.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .geometry import BLOCK

MAX_SIDE = 1024
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}  # what cv2.imread reads


def load_rgb(path: Path, max_side: int | None = None) -> np.ndarray:
    """Read an image file as HxWx3 uint8 RGB, optionally shrunk so its longer side is <= max_side."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot read image {path}")
    img = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if max_side and max(img.shape[:2]) > max_side:
        s = max_side / max(img.shape[:2])
        img = cv2.resize(img, (round(img.shape[1] * s), round(img.shape[0] * s)), interpolation=cv2.INTER_AREA)
    return img


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def read_yolo_polygons(label_path: Path, width: int, height: int) -> list[tuple[int, np.ndarray]]:
    """(class id, polygon in pixels) for each instance in an ultralytics YOLO-seg label file."""
    out = []
    if not label_path.exists():
        return out
    for line in label_path.read_text().splitlines():
        parts = line.split()
        if len(parts) < 7:
            continue
        pts = np.asarray(parts[1:], dtype=np.float64).reshape(-1, 2) * (width, height)
        out.append((int(parts[0]), pts.astype(np.int32)))
    return out


@dataclass
class CocoImage:
    image: np.ndarray
    instances: list[np.ndarray]  # one HxW bool mask per instance


def load_coco(root: Path) -> list[CocoImage]:
    items = []
    for img_path in list_images(root / "images"):
        img = load_rgb(img_path)
        h, w = img.shape[:2]
        label = root / "labels" / img_path.parent.name / (img_path.stem + ".txt")
        masks = []
        for _, poly in read_yolo_polygons(label, w, h):
            m = np.zeros((h, w), np.uint8)
            cv2.fillPoly(m, [poly], 1)
            if m.any():
                masks.append(m.astype(bool))
        items.append(CocoImage(img, masks))
    return items


def blocks_from_pixels(mask: np.ndarray) -> np.ndarray:
    """Blocks holding any pixel of a pixel mask (sides must be multiples of BLOCK)."""
    h, w = mask.shape
    return mask.reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK).any(axis=(1, 3))


class GroupSampler:
    """Random crops + group masks. Deterministic for a given numpy Generator."""

    def __init__(self, photos: list[np.ndarray], coco: list[CocoImage], crop: int, rng: np.random.Generator):
        if crop % 64:
            raise ValueError("crop must be a multiple of 64")
        self.photos = [p for p in photos if min(p.shape[:2]) >= crop]
        self.coco = [c for c in coco if min(c.image.shape[:2]) >= crop]
        self.crop = crop
        self.rng = rng

    def _random_crop(self, img: np.ndarray) -> tuple[np.ndarray, int, int]:
        s = self.crop
        if self.rng.random() < 0.5 and min(img.shape[:2]) >= 2 * s:
            # downscale a larger window: cleaner textures, as in high-resolution training sets
            big = int(s * self.rng.uniform(1.0, 2.0))
            y = self.rng.integers(0, img.shape[0] - big + 1)
            x = self.rng.integers(0, img.shape[1] - big + 1)
            return cv2.resize(img[y : y + big, x : x + big], (s, s), interpolation=cv2.INTER_AREA), -1, -1
        y = int(self.rng.integers(0, img.shape[0] - s + 1))
        x = int(self.rng.integers(0, img.shape[1] - s + 1))
        return img[y : y + s, x : x + s], y, x

    def _synthetic_mask(self) -> np.ndarray:
        nb = self.crop // BLOCK
        kind = self.rng.integers(3)
        m = np.zeros((nb, nb), bool)
        if kind == 0:  # ellipse
            yy, xx = np.mgrid[:nb, :nb]
            cy, cx = self.rng.uniform(0, nb, 2)
            ry, rx = self.rng.uniform(1, nb / 1.5, 2)
            m = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        elif kind == 1:  # a few rectangles
            for _ in range(self.rng.integers(1, 4)):
                y0, x0 = self.rng.integers(0, nb, 2)
                hh, ww = self.rng.integers(1, nb // 2 + 2, 2)
                m[y0 : y0 + hh, x0 : x0 + ww] = True
        else:  # blocky random field
            field = cv2.GaussianBlur(self.rng.random((nb, nb)).astype(np.float32), (0, 0), 1.0)
            m = field > np.quantile(field, self.rng.uniform(0.3, 0.8))
        return m

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        """One (crop HxWx3 uint8, block mask) pair; pixels outside the mask are NOT yet zeroed."""
        r = self.rng.random()
        if r < 0.35 and self.coco:
            item = self.coco[self.rng.integers(len(self.coco))]
            img, y, x = self._random_crop(item.image)
            mask = None
            if y >= 0 and item.instances:
                inst = item.instances[self.rng.integers(len(item.instances))]
                mask = blocks_from_pixels(inst[y : y + self.crop, x : x + self.crop])
                if self.rng.random() < 0.5:
                    mask = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        else:
            img, _, _ = self._random_crop(self.photos[self.rng.integers(len(self.photos))])
            mask = None if r < 0.7 else self._synthetic_mask()
        nb = self.crop // BLOCK
        if mask is None or not mask.any():
            mask = np.ones((nb, nb), bool)
        elif self.rng.random() < 0.4:
            mask = ~mask  # the background around an object
            if not mask.any():
                mask = np.ones((nb, nb), bool)
        if self.rng.random() < 0.5:
            img, mask = img[:, ::-1], mask[:, ::-1]
        return np.ascontiguousarray(img), np.ascontiguousarray(mask)
