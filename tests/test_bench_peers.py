"""The video peers of bench.video through PyAV on real vtest.avi frames."""

from __future__ import annotations

import numpy as np

from codec.metrics import psnr
from bench.peers import PEERS, available, encode_clip
from tests.edge_fixtures import needs_shared, vtest_frames

pytestmark = needs_shared()


def test_every_peer_codes_and_decodes_and_rois_are_finer():
    frames = list(vtest_frames(8))
    box = (240, 200, 96, 192)  # x, y, w, h: a walking person of the first frames
    x, y, w, h = box
    roi = np.zeros(frames[0].shape[:2], bool)
    roi[y:y + h, x:x + w] = True
    plain, finer = PEERS["x264 veryfast zerolatency"], PEERS["x264 veryfast zerolatency + ROI -0.6"]
    for peer in PEERS.values():
        assert available(peer), peer.name
    coded = {p.name: encode_clip(frames, p, 32, 10.0, [[box]] * len(frames)) for p in (plain, finer)}
    for c in coded.values():
        assert len(c.frames) == len(frames) and c.nbytes > 0
        assert np.mean([psnr(a, b) for a, b in zip(frames, c.frames)]) > 28
    roi_db = {n: np.mean([psnr(a, b, roi) for a, b in zip(frames, c.frames)]) for n, c in coded.items()}
    assert roi_db[finer.name] > roi_db[plain.name] + 2  # the ROI side data reached libx264
    coarse = encode_clip(frames, PEERS["x265 medium"], 40, 10.0)
    assert coarse.nbytes < coded[plain.name].nbytes
