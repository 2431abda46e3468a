"""Video peers measured in the same run: bytes at equal ROI PSNR against x264, x265, SVT-AV1 and
x264 with ROI offsets on the same person regions.

    python -m bench.video [--frames 100] [--clips vtest.avi,arcade_people.mp4,...]
    roistream bench video

A camera without roistream streams H.264, so that is the yardstick of the edge's bandwidth, not
full-frame JPEG. Per clip (../shared/data/video/vtest.avi and every clip of
../shared/data/video-bench/), on its first --frames frames:

1. roistream's edge stream with bench/edge.py's settings (ROI "person" q 0.85, background q 0.3 at
   1/4 resolution refreshed every 10 frames with fills, margin 8 px), and the same at the other ROI
   qualities of --sweep. The detector runs once per frame; every run codes the same detections.
   ROI PSNR per frame is over the pixels of the frame's object groups as decoded (the edge's own ROI
   masks, as bench.edge measures it); whole-frame PSNR is over the frame the cloud's composite would
   show (the background layers sent so far, black where none is, with this frame's objects on top).
2. Each peer of bench/peers.py at each quality of its sweep, the whole clip as one stream (RGB ->
   YUV 4:2:0 -> RGB, so the peers' PSNR includes the colour conversion); ROI PSNR over the same
   masks, whole-frame PSNR over the whole frame. x264 + ROI codes the bounding boxes of the same
   object groups finer (FFmpeg AVRegionOfInterest side data).
3. Each peer's bytes at roistream's mean ROI PSNR, interpolated (log bytes, linear in dB) between
   its two neighbouring settings; the ratio roistream / peer (below 1: roistream sends less).

Writes bench/results/video.json, video.md and video.png (bytes vs ROI PSNR, every codec, per clip).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from codec import paths
from codec.metrics import psnr

from .common import md_table, run_module, save_figure, subplots, write_results
from .peers import PEERS, Rect, available, encode_clip


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--clips", default="", help="file names (comma separated) of vtest.avi and the video-bench "
                   "clips; '' = all")
    p.add_argument("--peers", default="", help="peer names of bench/peers.py (comma separated); '' = all")
    p.add_argument("--roi", default="person")
    p.add_argument("--roi-quality", type=float, default=0.85)
    p.add_argument("--sweep", default="0.5,0.65,1.0", help="other ROI qualities for roistream's curve")
    p.add_argument("--bg-quality", type=float, default=0.3)
    p.add_argument("--bg-interval", type=int, default=10)
    p.add_argument("--bg-scale", type=int, default=4, choices=(1, 2, 4, 8))
    p.add_argument("--margin", type=int, default=8)
    p.add_argument("--backend", default="torch", help="roistream's encoder runtime (torch, onnxruntime, tensorrt)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--name", default="video", help="results file name in bench/results/")


def clip_paths(names: str) -> list[Path]:
    clips = [paths.video_path(), *sorted(p for p in paths.video_bench_dir().glob("*")
                                         if p.suffix.lower() in (".mp4", ".avi", ".mkv", ".mov"))]
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = set(wanted) - {c.name for c in clips}
    if unknown:
        raise SystemExit(f"unknown clips {', '.join(sorted(unknown))}; have {', '.join(c.name for c in clips)}")
    return [c for c in clips if not wanted or c.name in wanted]


def read_clip(path: Path, n: int) -> tuple[list, float]:
    """The first n frames (edge.sources Frames) and the clip's frame rate."""
    from edge.sources import open_source

    with open_source(path, max_frames=n) as source:
        frames = list(source)
        fps = source.effective_fps or 10.0
    return frames, fps


def roistream_run(codec, policy, frames, detections, args) -> dict:
    """One edge stream over the frames (given detections); per-frame bytes, ROI / whole-frame PSNR,
    the ROI masks and the object groups' rectangles."""
    from edge.pipeline import EdgePipeline
    from edge.sinks import MemorySink

    pipe = EdgePipeline.init(codec, policy, sink=MemorySink(keep=False), stream_id="bench",
                             bg_interval=args.bg_interval, keep_frames=True)
    h, w = frames[0].image.shape[:2]
    background = np.zeros((h, w, 3), np.uint8)  # the composite's background layers so far
    nbytes, roi_db, frame_db, masks, rects = [], [], [], [], []
    start = time.perf_counter()
    results = [pipe.process(f, detections=d) for f, d in zip(frames, detections)]
    encode_s = time.perf_counter() - start
    for frame, r in zip(frames, results):
        nbytes.append(r.nbytes)
        mask, boxes, shown = np.zeros((h, w), bool), [], background
        if r.frame is not None:
            dec = codec.decode(r.frame)
            if 0 in dec.groups:
                g = dec.groups[0]
                background[g.bbox.slices][g.mask] = g.pixels[g.mask]
            shown = background.copy()
            for gid, g in dec.groups.items():
                if gid != 0:
                    mask[g.bbox.slices] |= g.mask
                    shown[g.bbox.slices][g.mask] = g.pixels[g.mask]
                    boxes.append((g.bbox.x, g.bbox.y, g.bbox.width, g.bbox.height))
        masks.append(mask)
        rects.append(boxes)
        roi_db.append(psnr(frame.image, shown, mask) if mask.any() else float("nan"))
        frame_db.append(psnr(frame.image, shown))
    with_roi = [db for db in roi_db if np.isfinite(db)]
    return {"bytes": int(sum(nbytes)), "roi_psnr_db": float(np.mean(with_roi)) if with_roi else float("nan"),
            "frame_psnr_db": float(np.mean(frame_db)), "encode_fps": len(frames) / encode_s,
            "masks": masks, "rects": rects}


def peer_point(images, masks, rects: list[list[Rect]], peer, quality: int, fps: float) -> dict:
    coded = encode_clip(images, peer, quality, fps, rects)
    roi = [psnr(a, b, m) for a, b, m in zip(images, coded.frames, masks) if m.any()]  # frames with persons
    return {"quality": quality, "bytes": coded.nbytes, "roi_psnr_db": float(np.mean(roi)) if roi else float("nan"),
            "frame_psnr_db": float(np.mean([psnr(a, b) for a, b in zip(images, coded.frames)])),
            "encode_fps": len(images) / coded.encode_s}


def at_roi_psnr(points: list[dict], target_db: float, key: str) -> float | None:
    """`key` of a peer at `target_db` ROI PSNR, interpolated between the two settings around it
    (bytes in log scale); None when the sweep does not reach it."""
    pts = sorted((p["roi_psnr_db"], p[key]) for p in points if np.isfinite(p["roi_psnr_db"]))
    db = [p[0] for p in pts]
    if not pts or not db[0] <= target_db <= db[-1]:
        return None
    values = np.log([p[1] for p in pts]) if key == "bytes" else np.array([p[1] for p in pts])
    out = float(np.interp(target_db, db, values))
    return float(np.exp(out)) if key == "bytes" else out


def measure_clip(codec, detector, policy_for, path: Path, peers, args, log) -> dict:
    frames, fps = read_clip(path, args.frames)
    images = [f.image for f in frames]
    t = time.perf_counter()
    detections = [detector.detect(im) for im in images]
    log(f"{path.name}: {len(frames)} frames at {fps:.3f} fps, detection {time.perf_counter() - t:.1f} s")
    ours = {}
    for q in sorted({args.roi_quality, *(float(v) for v in args.sweep.split(",") if v.strip())}):
        ours[q] = roistream_run(codec, policy_for(q), frames, detections, args)
        log(f"  roistream q={q}: {ours[q]['bytes']} B, ROI {ours[q]['roi_psnr_db']:.2f} dB")
    main = ours[args.roi_quality]
    peer_points = {}
    for peer in peers:
        peer_points[peer.name] = []
        for quality in peer.sweep:
            pt = peer_point(images, main["masks"], main["rects"], peer, quality, fps)
            peer_points[peer.name].append(pt)
            log(f"  {peer.name} {peer.quality_option}={quality}: {pt['bytes']} B, ROI {pt['roi_psnr_db']:.2f} dB, "
                f"frame {pt['frame_psnr_db']:.2f} dB, {pt['encode_fps']:.1f} fps")
    target = main["roi_psnr_db"]
    equal = {}
    for name, pts in peer_points.items():
        b = at_roi_psnr(pts, target, "bytes")
        equal[name] = {"bytes": b, "ratio": main["bytes"] / b if b else None,
                       "frame_psnr_db": at_roi_psnr(pts, target, "frame_psnr_db")}
    strip = ("masks", "rects")
    return {"clip": path.name, "frames": len(frames), "fps": fps, "size": f"{images[0].shape[1]}x{images[0].shape[0]}",
            "frames_with_roi": int(sum(m.any() for m in main["masks"])),
            "roistream": {str(q): {k: v for k, v in o.items() if k not in strip} for q, o in ours.items()},
            "peers": peer_points, "at_equal_roi_psnr": equal}


def _plot(clips: list[dict], args) -> None:
    clips = [c for c in clips if c["frames_with_roi"]]  # no ROI PSNR without persons
    if not clips:
        return
    fig, axes = subplots(1, len(clips), figsize=(5.5 * len(clips), 4.5), squeeze=False)
    axes = list(axes[0])
    for ax, c in zip(axes, clips):
        for name, pts in c["peers"].items():
            ax.plot([p["roi_psnr_db"] for p in pts], [p["bytes"] / 1000 for p in pts], "o-", ms=3, label=name)
        ours = sorted(c["roistream"].items(), key=lambda kv: float(kv[0]))
        ax.plot([o["roi_psnr_db"] for _, o in ours], [o["bytes"] / 1000 for _, o in ours], "k*-", ms=9,
                label="roistream (ROI q sweep)")
        main = c["roistream"][str(args.roi_quality)]
        ax.axvline(main["roi_psnr_db"], color="grey", ls=":", lw=1)
        ax.set_yscale("log")
        ax.set_title(f"{c['clip']}, {c['frames']} frames", fontsize=10)
        ax.set_xlabel("ROI PSNR (dB, the edge's person masks)")
        ax.set_ylabel(f"KB for {c['frames']} frames")
    save_figure(fig, args.name, axes)


def _markdown(clips: list[dict], data: dict, args) -> str:
    sections = []
    for c in clips:
        main = c["roistream"][str(args.roi_quality)]
        if not c["frames_with_roi"]:
            sections.append(f"## {c['clip']}\n\nThe detector found no person in its first {c['frames']} frames "
                            f"(the 320-px input misses small objects): no ROI PSNR, no comparison.\n")
            continue
        rows = [[f"roistream (ROI q {args.roi_quality})", main["bytes"], main["roi_psnr_db"], main["frame_psnr_db"],
                 1.0]]
        for name, e in c["at_equal_roi_psnr"].items():
            rows.append([name, "not reached" if e["bytes"] is None else round(e["bytes"]),
                         main["roi_psnr_db"], "-" if e["frame_psnr_db"] is None else e["frame_psnr_db"],
                         "-" if e["ratio"] is None else e["ratio"]])
        sweep_rows = [[f"roistream q={q}", "-", o["bytes"], o["roi_psnr_db"], o["frame_psnr_db"], o["encode_fps"]]
                      for q, o in sorted(c["roistream"].items(), key=lambda kv: float(kv[0]))]
        for name, pts in c["peers"].items():
            sweep_rows += [[name, p["quality"], p["bytes"], p["roi_psnr_db"], p["frame_psnr_db"], p["encode_fps"]]
                           for p in pts]
        sections.append(f"""## {c['clip']} ({c['size']}, {c['fps']:.3f} fps, first {c['frames']} frames, \
{c['frames_with_roi']} with persons)

At equal ROI PSNR ({main['roi_psnr_db']:.2f} dB, roistream's mean):

{md_table(["stream", f"bytes for {c['frames']} frames", "ROI PSNR dB", "whole-frame PSNR dB", "roistream / it"],
          rows)}

<details><summary>every setting</summary>

{md_table(["stream", "crf", "bytes", "ROI PSNR dB", "whole-frame PSNR dB", "encode fps"], sweep_rows)}

</details>
""")
    peers = "\n".join(f"- **{p.name}**: {p.encoder} {p.options}, {p.quality_option} sweep {list(p.sweep)}"
                      f"{'; ' + p.notes if p.notes else ''}" for p in (PEERS[n] for n in data["peer_names"]))
    return f"""# Video peers at equal ROI PSNR

roistream: the edge's stream with bench/edge.py's settings (ROI "{args.roi}" q {args.roi_quality}, background
q {args.bg_quality} at 1/{args.bg_scale} resolution refreshed every {args.bg_interval} frames with fills, margin
{args.margin} px), encoder {data['encoder']}, detector {data['detector']} run once per frame. ROI PSNR is the mean
over frames with persons of the PSNR over the pixels of that frame's decoded object groups (the edge's
own masks, as bench.edge measures it). Whole-frame PSNR of roistream is over the composite the cloud would
show (background layers sent so far, black where none is yet, this frame's objects on top).

Peers ({data['pyav']}), each clip one stream, default GOP, RGB -> YUV 4:2:0 -> RGB:
{peers}

"roistream / it" is roistream's bytes over the peer's bytes interpolated (log bytes) at roistream's ROI PSNR
between the two neighbouring settings; below 1 roistream sends less. The ROI peers code the bounding
boxes of the same object groups finer (FFmpeg's addroi: AVRegionOfInterest side data, which libx264
turns into per-macroblock QP offsets).

![bytes vs ROI PSNR]({args.name}.png)

{chr(10).join(sections)}
Load average at the end of the run: {data['load']:.1f} on {os.cpu_count()} cores (other jobs may share the CPU;
the encode fps are indicative only).
"""


def run(args: argparse.Namespace) -> dict:
    import av
    import torch

    from codec.runtime import make_codec
    from edge.detector import Detector
    from edge.policy import RoiPolicy

    torch.set_num_threads(args.threads)
    codec, encoder = make_codec(args.backend)
    detector = Detector()
    peers = [PEERS[n.strip()] for n in args.peers.split(",") if n.strip()] if args.peers else list(PEERS.values())
    missing = [p.name for p in peers if not available(p)]
    if missing:
        raise SystemExit(f"PyAV {av.__version__} lacks the encoders/decoders of {', '.join(missing)}")

    def policy_for(q: float) -> RoiPolicy:
        return RoiPolicy.from_words(args.roi, detector.class_names, roi_quality=q, bg_quality=args.bg_quality,
                                    bg_scale=args.bg_scale, margin_px=args.margin)

    detector.set_classes(policy_for(args.roi_quality).detector_classes)
    start = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - start:7.1f} s] {msg}", flush=True)

    clips = [measure_clip(codec, detector, policy_for, path, peers, args, log) for path in clip_paths(args.clips)]
    data = {"frames": args.frames, "roi": args.roi, "roi_quality": args.roi_quality, "bg_quality": args.bg_quality,
            "bg_interval": args.bg_interval, "bg_scale": args.bg_scale, "margin_px": args.margin,
            "encoder": encoder, "detector": Path(detector.weights).name, "pyav": f"PyAV {av.__version__}, FFmpeg {av.ffmpeg_version_info}",
            "peer_names": [p.name for p in peers], "load": os.getloadavg()[0], "clips": clips}
    md = _markdown(clips, data, args)
    json_path, md_path = write_results(args.name, data, md)
    _plot(clips, args)
    print(md)
    print(f"wrote {json_path} and {md_path}")
    return data


if __name__ == "__main__":
    run_module(__name__)
