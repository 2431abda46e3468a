"""A compact copy of the training data, for training on a machine that has no `../shared`.

Training compute is what limits the codec (codec/assets/MODEL_CARD.md), and a GPU machine is often
reachable only with what travels beside the checkout, under a size limit of tens of MiB. The training loader shrinks every photo to `MAX_SIDE` anyway, so the pack
stores the photos at most that size as JPEG (4:4:4), at the highest quality that fits the size
budget, and the coco128-seg images and labels as they are. The pack has the layout of the shared
folder, so `ROISTREAM_SHARED=PACK roistream train ...` trains on it with no other flag. Training
needs only torch, numpy, opencv and tqdm.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2

from .data import IMAGE_SUFFIXES, MAX_SIDE, list_images, load_rgb

LOWEST_QUALITY = 50  # below this the artefacts would be what the codec learns


@dataclass
class PackSummary:
    photos: int
    coco_images: int
    jpeg_quality: int
    bytes: int


def _encode_photos(images: list, quality: int) -> list[bytes]:
    params = [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
              cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
    out = []
    for rgb in images:
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
        if not ok:
            raise OSError("JPEG encoding failed")
        out.append(buf.tobytes())
    return out


def pack_training_data(out: Path, photos: Path, coco: Path, *, max_side: int = MAX_SIDE, jpeg_quality: int = 90,
                       max_mb: float | None = None) -> PackSummary:
    """Write `out/data/photos` (shrunk JPEGs, same sub-folders) and `out/data/coco128-seg` (copied).

    With `max_mb`, the JPEG quality steps down by 5 from `jpeg_quality` until the whole pack fits in
    that many MiB; ValueError when even quality LOWEST_QUALITY does not.
    """
    if not LOWEST_QUALITY <= jpeg_quality <= 100:
        raise ValueError(f"JPEG quality must be in {LOWEST_QUALITY}..100, got {jpeg_quality}")
    sources = list_images(photos)
    if not sources:
        raise ValueError(f"no training photos in {photos}")
    if not (coco / "images").is_dir():
        raise ValueError(f"{coco} is not a coco128-seg folder (no images/ in it)")
    targets = [(out / "data" / "photos" / src.relative_to(photos)).with_suffix(".jpg") for src in sources]
    if len(set(targets)) != len(targets):  # a.png and a.jpg in one folder would overwrite each other
        raise ValueError("two photos in one folder differ only in their suffix: rename one of them")
    coco_files = [p for part in ("images", "labels") if (coco / part).is_dir() for p in (coco / part).rglob("*")
                  if p.is_file()]
    coco_bytes = sum(p.stat().st_size for p in coco_files)
    images = [load_rgb(src, max_side) for src in sources]
    budget = None if max_mb is None else max_mb * 2**20 - coco_bytes
    quality = jpeg_quality
    while True:
        encoded = _encode_photos(images, quality)
        if budget is None or sum(map(len, encoded)) <= budget:
            break
        if quality - 5 < LOWEST_QUALITY:
            raise ValueError(f"the photos do not fit in {max_mb} MiB even at JPEG quality {quality}: "
                             f"lower --max-side")
        quality -= 5
    for dst, data in zip(targets, encoded):
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(data)
    for src in coco_files:
        dst = out / "data" / "coco128-seg" / src.relative_to(coco)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    coco_images = sum(1 for p in coco_files if p.suffix.lower() in IMAGE_SUFFIXES and p.is_relative_to(coco / "images"))
    return PackSummary(len(sources), coco_images, quality, sum(map(len, encoded)) + coco_bytes)
