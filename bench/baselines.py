"""Reference image codecs measured in the same run: Pillow's JPEG, WebP and AVIF encoders."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

FORMATS = {"jpeg": "JPEG", "webp": "WEBP", "avif": "AVIF"}
QUALITIES = {
    "jpeg": (5, 10, 20, 30, 50, 70, 90),
    "webp": (5, 10, 20, 40, 60, 80, 95),
    "avif": (10, 25, 40, 55, 70, 85, 95),
}


def encode_decode(image: np.ndarray, codec: str, quality: int) -> tuple[int, np.ndarray]:
    """(bytes, decoded RGB) of an HxWx3 uint8 image with a Pillow encoder (4:2:0 as shipped)."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format=FORMATS[codec], quality=int(quality))
    data = buf.getvalue()
    decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    return len(data), decoded


def at_bpp(image: np.ndarray, codec: str, target_bpp: float) -> tuple[int, int, np.ndarray]:
    """Binary-search the quality whose size is closest to target bpp (not above when possible).

    Returns (quality, bytes, decoded).
    """
    pixels = image.shape[0] * image.shape[1]
    lo, hi = 1, 100
    best = None
    while lo <= hi:
        mid = (lo + hi) // 2
        size, decoded = encode_decode(image, codec, mid)
        if size * 8 / pixels <= target_bpp:
            best = (mid, size, decoded)
            lo = mid + 1
        else:
            hi = mid - 1
    if best is None:
        size, decoded = encode_decode(image, codec, 1)
        best = (1, size, decoded)
    return best
