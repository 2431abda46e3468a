"""`roistream demo`: the main job, end to end on one machine.

Starts a cloud server with embedded storage on 127.0.0.1, runs the edge on the pedestrian video
(YOLO-seg ROI "person", background refreshed every N frames), streams the frames through the
durable spool, then queries the person regions back from the cloud. Writes to --out:
  crops/         decoded person crops (PNG) and regions.json (their metadata)
  composite.png  one frame rebuilt by the cloud (people over the latest background) with group outlines
  summary.json   frames, fps, kbps, bytes per class, and bytes saved against full-frame JPEG at the ROI's PSNR
With --web the cloud stays up afterwards behind the web viewer (docs/web.md), whose URL is printed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from codec import paths


def _write_rgb(path: Path, image: np.ndarray) -> None:
    import cv2

    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


def run_demo(out: Path, frames: int, roi: str, roi_quality: float, bg_quality: float, bg_interval: int,
             bg_scale: int = 1, linger: Callable[[int, dict], None] | None = None) -> dict:
    import cv2

    from cloud.client import CloudClient
    from cloud.outline import outline_groups
    from codec.runtime import make_codec
    from edge.detector import Detector
    from edge.policy import RoiPolicy
    from edge.sources import open_source
    from roistream.local import jpeg_at_psnr, local_cloud, roi_psnr, stream_source

    for stale in ("cloud", "crops"):  # each run starts from an empty cloud and spool
        shutil.rmtree(out / stale, ignore_errors=True)
    for spool_file in out.glob("edge.spool*"):  # the SQLite database and its WAL files
        spool_file.unlink()
    (out / "crops").mkdir(parents=True, exist_ok=True)
    (codec, _), detector = make_codec("torch"), Detector()
    policy = RoiPolicy.from_words(roi, detector.class_names, roi_quality=roi_quality, bg_quality=bg_quality,
                                  bg_scale=bg_scale)
    stream = "vtest"
    results = []
    with local_cloud(out / "cloud", codec) as server:
        summary, delivery = stream_source(server, codec, detector, policy, open_source(paths.video_path()),
                                          stream=stream, spool_path=out / "edge.spool", bg_interval=bg_interval,
                                          max_frames=frames, on_frame=results.append, status=sys.stderr)
        with CloudClient(f"127.0.0.1:{server.port}") as client:
            regions = []
            for region in client.get_regions(stream_id=stream, labels=policy.classes or (), output="png"):
                name = f"frame{region.frame_index:05d}_group{region.record.group_id}.png"
                (out / "crops" / name).write_bytes(region.image)
                b = region.record.bbox
                regions.append({"file": name, "frame": region.frame_index, "group": region.record.group_id,
                                "label": region.record.label, "score": round(region.record.score, 3),
                                "bbox": [b.x, b.y, b.width, b.height]})
            (out / "crops" / "regions.json").write_text(json.dumps(regions, indent=1))
            shown = max((r for r in results if r.frame is not None and len(r.plan.object_ids)),
                        key=lambda r: (r.index, len(r.plan.object_ids)), default=None)
            if shown is not None:
                composite = next(client.get_regions(stream_id=stream, frames=(shown.index, shown.index),
                                                    labels=policy.classes or (), composite=True, output="png"))
                image = cv2.cvtColor(cv2.imdecode(np.frombuffer(composite.image, np.uint8), cv2.IMREAD_COLOR),
                                     cv2.COLOR_BGR2RGB)
                _write_rgb(out / "composite.png", outline_groups(image, shown.frame.header, shown.frame.groups))
        originals = [f.image for f in open_source(paths.video_path(), max_frames=frames)]
        ours, jpeg, roi_db = 0, 0, []
        for r in results:
            db, mask = roi_psnr(codec, r.frame, originals[r.source_index]) if r.frame is not None else (np.nan, None)
            if mask is None or not mask.any():
                continue
            roi_db.append(db)
            ours += r.nbytes
            jpeg += jpeg_at_psnr(originals[r.source_index], mask, db)[0]
        report = {
            "frames": summary.frames, "delivered": delivery.stored, "all_acknowledged": delivery.flushed,
            "fps": round(summary.fps, 2), "kbps": round(summary.kbps, 1), "encoder": summary.encoder,
            "bytes_total": summary.bytes_total, "bytes_per_class": summary.bytes_per_class,
            "background_frames": summary.background_frames, "background_fills": summary.background_fills,
            "stage_ms": summary.to_dict()["stage_ms"],
            "person_regions_queried": len(regions), "roi_psnr_db": round(float(np.mean(roi_db)), 2) if roi_db else None,
            "frames_with_objects": len(roi_db), "our_bytes_on_those_frames": ours, "jpeg_bytes_at_equal_roi_psnr": jpeg,
            "bytes_saved_vs_jpeg_percent": round((1 - ours / jpeg) * 100, 1) if jpeg else None,
            "outputs": {"crops": str(out / "crops"), "composite": str(out / "composite.png")},
        }
        (out / "summary.json").write_text(json.dumps(report, indent=1))
        if linger is not None:  # `demo --web`: the cloud stays up for the viewer until linger returns
            linger(server.port, report)
    return report


def _print_report(report: dict) -> None:
    print(f"\n{report['frames']} frames, {report['fps']} fps, {report['kbps']} kbps "
          f"({report['delivered']} stored by the cloud, all acknowledged: {report['all_acknowledged']})")
    print(f"bytes per class: {report['bytes_per_class']}")
    print(f"{report['person_regions_queried']} person regions queried back -> {report['outputs']['crops']}")
    if report["bytes_saved_vs_jpeg_percent"] is not None:
        print(f"ROI PSNR {report['roi_psnr_db']} dB: {report['our_bytes_on_those_frames']} B vs "
              f"{report['jpeg_bytes_at_equal_roi_psnr']} B for full-frame JPEG at equal ROI PSNR "
              f"({report['bytes_saved_vs_jpeg_percent']}% saved)")
    print(json.dumps(report), flush=True)


def web_viewer(port: int) -> Callable[[int, dict], None]:
    """`demo --web`: after the run, print the report, then serve the web viewer of the demo's cloud on
    127.0.0.1:port and print its URL; it runs until Ctrl-C, then the cloud stops too."""

    def linger(cloud_port: int, report: dict) -> None:
        from cloud.client import CloudClient
        from cloud.web.server import WebViewer

        _print_report(report)
        target = f"127.0.0.1:{cloud_port}"
        with CloudClient(target) as client:
            viewer = WebViewer(client, target, port=port)
            print(f"web viewer: {viewer.url} (Ctrl-C stops it and the demo's cloud)", flush=True)
            try:
                viewer.serve_forever()
            except KeyboardInterrupt:
                pass

    return linger


def _run(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(args.threads)
    linger = web_viewer(args.web_port) if args.web else None
    report = run_demo(args.out, args.frames, args.roi, args.roi_quality, args.bg_quality, args.bg_interval,
                      args.bg_scale, linger)
    if linger is None:
        _print_report(report)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the main job: local cloud + edge on the sample video, then query people back")
    p.add_argument("--out", type=Path, default=Path("runs/demo"))
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--roi", default="person")
    p.add_argument("--roi-quality", type=float, default=0.8)
    p.add_argument("--bg-quality", type=float, default=0.1)
    p.add_argument("--bg-interval", type=int, default=10)
    p.add_argument("--bg-scale", type=int, choices=(1, 2, 4, 8), default=2, help="background at 1/N resolution")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--web", action="store_true",
                   help="afterwards serve the web viewer of the demo's cloud and print its URL (Ctrl-C ends)")
    p.add_argument("--web-port", type=int, default=8080, help="port of --web on 127.0.0.1 (0: any free one)")
    p.set_defaults(func=_run)
