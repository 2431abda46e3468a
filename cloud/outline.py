"""Group outlines on a frame: each object group's block outline and label drawn over an RGB image
(the demo's composite.png and the web viewer's live view). Encrypted groups, whose pixels only key
holders see, are filled grey and labelled locked."""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

from codec.bitstream import record_block_mask
from codec.geometry import upsample_blocks
from proto import bitstream_pb2

OUTLINE, TEXT, LOCKED = (255, 64, 0), (255, 255, 0), (90, 90, 90)


def outline_groups(image: np.ndarray, header: bitstream_pb2.FrameHeader,
                   records: Iterable[bitstream_pb2.GroupRecord]) -> np.ndarray:
    """A copy of `image` (RGB, the frame's size) with every non-background record's outline and label."""
    out = np.ascontiguousarray(image.copy())
    h, w = out.shape[:2]
    for rec in records:
        if rec.group_id == 0:
            continue
        mask = upsample_blocks(record_block_mask(header, rec))[:h, :w].astype(np.uint8)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        locked = rec.HasField("encryption")
        if locked:
            out[mask > 0] = LOCKED
        cv2.drawContours(out, contours, -1, OUTLINE, 2)
        text = f"{rec.label} locked" if locked else f"{rec.label} {rec.score:.2f}"
        cv2.putText(out, text, (rec.bbox.x + 2, max(rec.bbox.y - 4, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, TEXT, 1,
                    cv2.LINE_AA)
    return out
