"""What temporal prediction of the object groups could save on vtest.avi: a study, not a feature.

    python -m bench.temporal [--frames 40] [--search 16] [--slack 1,1.5,2]

The edge issue asks for 20x less bandwidth than full-frame JPEG at equal ROI PSNR with background
refresh; the edge benchmark measures about 12x, and the person groups alone are 88% of that stream.
This measures the simplest inter-frame scheme the group design allows, closed-loop as a real
encoder would run it:

* each person group of frame t (the edge's ROI policy and detector, as in bench/edge.py) is first
  coded intra, as the edge codes it today;
* every 16-px block of it searches the reconstruction of frame t-1 (what the cloud would hold:
  decoded groups, copied blocks, the decoded background) within +-`search` px, and is *skipped*
  (copied from there, 2 bytes of motion vector) when the copy's error is at most `slack` times the
  error intra coding gave that block;
* the group's remaining blocks are coded as one group (holes where blocks were skipped), and the
  frame's reconstruction is built from what the decoder would have.

Bytes are the groups' payloads plus the motion vectors (record headers left out on both sides).
Each variant is compared with full-frame JPEG matched frame by frame to its own ROI PSNR, and the
whole-stream ratio adds the header and background bytes per frame that bench/results/edge.json
measured for the refresh stream (every 10 frames at 1/4 resolution). Writes temporal.json/.md.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from codec import paths
from codec.metrics import psnr
from roistream.local import jpeg_at_psnr

from .common import RESULTS, md_table, write_results

MV_BYTES = 2  # one motion vector per skipped block, +-search fits a byte per component


def _coder_roundtrip(codec, image: np.ndarray, block_mask: np.ndarray, quality: float):
    """Code one group as the edge does; (payload bytes, decoded frame, the group's pixel mask)."""
    from codec.plan import FramePlan

    frame = codec.encode(image, FramePlan.from_groups(block_mask.astype(np.int32), quality, groups=[1]))
    decoded = codec.decode(frame)
    return len(frame.groups[0].payload), decoded.image, decoded.mask


def _best_copy(image: np.ndarray, reference: np.ndarray, y0: int, x0: int, search: int) -> tuple[float, np.ndarray]:
    """Mean squared error and pixels of the best-matching 16x16 block of `reference` near (y0, x0)."""
    import cv2

    from codec.geometry import BLOCK

    h, w = image.shape[:2]
    block = image[y0 : y0 + BLOCK, x0 : x0 + BLOCK].astype(np.float32)
    ya, xa = max(y0 - search, 0), max(x0 - search, 0)
    window = reference[ya : min(y0 + BLOCK + search, h), xa : min(x0 + BLOCK + search, w)].astype(np.float32)
    sse = cv2.matchTemplate(window, block, cv2.TM_SQDIFF)
    dy, dx = np.unravel_index(int(sse.argmin()), sse.shape)
    return float(sse.min()) / block.size, window[dy : dy + BLOCK, dx : dx + BLOCK].astype(np.uint8)


def run_variant(codec, frames, plans, intra_coded, background, quality: float, slack: float | None,
                search: int) -> dict:
    """Closed loop over the frames; slack None = intra only (today's coding). intra_coded[t][gid]
    is the intra round trip of that group (the same in every variant)."""
    from codec.geometry import BLOCK

    h, w = frames[0].shape[:2]
    reference = None
    payload = skipped = blocks = 0
    db, jpeg = [], []
    for image, plan, coded_groups in zip(frames, plans, intra_coded):
        recon = background.copy()
        roi = np.zeros((h, w), bool)
        for gid in plan.object_ids:
            group = plan.group_map == gid
            n, intra, mask = coded_groups[gid]
            roi |= mask
            blocks += int(group.sum())
            skip = np.zeros_like(group)
            if slack is not None and reference is not None:
                for r, c in zip(*np.nonzero(group)):
                    y0, x0 = r * BLOCK, c * BLOCK
                    if y0 + BLOCK > h or x0 + BLOCK > w:
                        continue
                    intra_mse = float(((image[y0 : y0 + BLOCK, x0 : x0 + BLOCK].astype(np.float32)
                                        - intra[y0 : y0 + BLOCK, x0 : x0 + BLOCK]) ** 2).mean())
                    copy_mse, pixels = _best_copy(image, reference, y0, x0, search)
                    if copy_mse <= slack * intra_mse:
                        skip[r, c] = True
                        recon[y0 : y0 + BLOCK, x0 : x0 + BLOCK] = pixels
            if skip.any():
                skipped += int(skip.sum())
                payload += MV_BYTES * int(skip.sum())
                rest = group & ~skip
                if rest.any():
                    n, coded, mask = _coder_roundtrip(codec, image, rest, quality)
                    recon[mask] = coded[mask]
                    payload += n
            else:
                recon[mask] = intra[mask]
                payload += n
        reference = recon
        if roi.any():
            db.append(psnr(image, recon, roi))
            jpeg.append(jpeg_at_psnr(image, roi, db[-1])[0])
    return {"slack": slack, "blocks": blocks, "skipped": skipped, "skipped_fraction": skipped / max(blocks, 1),
            "object_bytes_per_frame": payload / len(frames), "roi_psnr_db": float(np.mean(db)),
            "jpeg_bytes_per_frame": float(np.mean(jpeg))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--search", type=int, default=16, help="motion search range in pixels")
    p.add_argument("--slack", default="1,1.5,2", help="skip a block when its copy's MSE <= slack x its intra MSE")
    p.add_argument("--roi-quality", type=float, default=0.85)
    p.add_argument("--margin", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)

    import torch

    from codec.api import Codec
    from edge.detector import Detector
    from edge.policy import RoiPolicy
    from edge.sources import open_source

    torch.set_num_threads(args.threads)
    codec, detector = Codec.load(), Detector()
    policy = RoiPolicy.from_words("person", detector.class_names, roi_quality=args.roi_quality,
                                  margin_px=args.margin, bg_scale=4)
    detector.set_classes(policy.detector_classes)
    frames = [f.image for f in open_source(paths.video_path(), max_frames=args.frames)]
    h, w = frames[0].shape[:2]
    plans = [policy.plan(detector.detect(image), h, w) for image in frames]
    # the cloud's background layer: the first frame's background as the edge sends it
    background = codec.decode(codec.encode(frames[0], plans[0].without_objects())).image
    intra_coded = [{gid: _coder_roundtrip(codec, image, plan.group_map == gid, args.roi_quality)
                    for gid in plan.object_ids} for image, plan in zip(frames, plans)]
    slacks = [None] + [float(s) for s in args.slack.split(",") if s.strip()]
    variants = [run_variant(codec, frames, plans, intra_coded, background, args.roi_quality, s, args.search) for s in slacks]

    edge = json.loads((RESULTS / "edge.json").read_text())["runs"]["refresh_scaled"]
    other = (edge["bytes_per_class"]["(headers)"] + edge["bytes_per_class"]["background"]) / edge["frames"]
    for v in variants:
        v["jpeg_ratio_objects"] = v["jpeg_bytes_per_frame"] / v["object_bytes_per_frame"]
        v["jpeg_ratio_stream"] = v["jpeg_bytes_per_frame"] / (v["object_bytes_per_frame"] + other)
    data = {"frames": args.frames, "search_px": args.search, "roi_quality": args.roi_quality,
            "margin_px": args.margin, "mv_bytes_per_skipped_block": MV_BYTES,
            "other_bytes_per_frame_from_edge_json": other, "variants": variants}
    rows = [["intra (today)" if v["slack"] is None else f"skip at copy MSE <= {v['slack']:g} x intra",
             f"{100 * v['skipped_fraction']:.1f}%", v["object_bytes_per_frame"], v["roi_psnr_db"],
             v["jpeg_bytes_per_frame"], v["jpeg_ratio_objects"], v["jpeg_ratio_stream"]] for v in variants]
    md = f"""# Temporal prediction of the person groups: what it could save ({args.frames} frames of vtest.avi)

Closed-loop block skip with motion search (+-{args.search} px) on the previous frame's reconstruction,
ROI q={args.roi_quality}, margin {args.margin} px; a skipped block costs {MV_BYTES} bytes of motion vector.
JPEG is matched frame by frame to each variant's own ROI PSNR. "Stream" adds {other:.0f} bytes per frame of
record headers and background (the refresh stream of bench/results/edge.json) to the person bytes.

{md_table(["variant", "blocks skipped", "person bytes/frame", "ROI PSNR dB", "JPEG bytes/frame",
           "JPEG / persons", "JPEG / stream"], rows)}

The edge issue's goal is 20x for the stream.
"""
    json_path, md_path = write_results("temporal", data, md)
    print(md)
    print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
