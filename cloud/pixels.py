"""Decoded pixels <-> the bytes of a Region (PNG or raw RGB), shared by the server and the client."""

from __future__ import annotations

import cv2
import numpy as np

from proto import service_pb2

Output = service_pb2.RegionQuery.Output


def encode_pixels(pixels: np.ndarray, mask: np.ndarray, output: int) -> tuple[bytes, bytes]:
    """RGB uint8 [h, w, 3] and bool [h, w] -> (image, mask) bytes. PNG masks are 0/255, raw masks 0/1."""
    if output == Output.RAW_RGB:
        return np.ascontiguousarray(pixels, np.uint8).tobytes(), mask.astype(np.uint8).tobytes()
    ok_i, image = cv2.imencode(".png", cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))
    ok_m, packed = cv2.imencode(".png", mask.astype(np.uint8) * 255)
    if not (ok_i and ok_m):
        raise RuntimeError("PNG encoding failed")
    return image.tobytes(), packed.tobytes()


def decode_pixels(region: service_pb2.Region) -> tuple[np.ndarray, np.ndarray]:
    """A Region's image and mask -> RGB uint8 [h, w, 3] and bool [h, w], whichever output it was sent as."""
    h, w = region.height, region.width
    if len(region.image) == h * w * 3 and len(region.mask) == h * w:  # raw sizes are exact; PNGs never both match
        return (np.frombuffer(region.image, np.uint8).reshape(h, w, 3).copy(),
                np.frombuffer(region.mask, np.uint8).reshape(h, w) > 0)
    bgr = cv2.imdecode(np.frombuffer(region.image, np.uint8), cv2.IMREAD_COLOR)
    mask = cv2.imdecode(np.frombuffer(region.mask, np.uint8), cv2.IMREAD_GRAYSCALE)
    if bgr is None or mask is None:
        raise ValueError("region image or mask is neither raw pixels of the stated size nor PNG")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), mask > 0
