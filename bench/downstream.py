"""Downstream benchmark (`roistream bench downstream`): what the cloud's analytics will see.

The offline detector (YOLOv8n-seg int8) runs on decoded coco128-seg images; its box mAP50 is
measured against its own detections on the originals and against the ground-truth labels. Our ROI
mode codes the instances the same detector finds on the original (as the edge does) at high
quality over a q=0 background, at full and at reduced resolution (--bg-scale, default 1/4);
JPEG / WebP / AVIF are swept over quality. The target compares our mAP50 at B bpp with WebP's at
2B bpp (interpolated on WebP's curve).

--roi-conf lets the edge pick its groups at a lower confidence than the analytics report at
(EVAL_CONF): an object the edge misses is coded at background quality and is lost to every later
query, while a false group costs only its blocks.
"""

from __future__ import annotations

import argparse

import numpy as np

from codec import paths

from .baselines import encode_decode
from .common import md_table, run_module, save_figure, subplots, write_results

ROI_Q = (0.2, 0.4, 0.6, 0.8, 1.0)
EVAL_CONF = 0.25  # the analytics' detection threshold, on originals and decoded images alike
BASELINE_Q = {"jpeg": (5, 10, 20, 40, 70), "webp": (2, 5, 10, 25, 50, 80), "avif": (10, 20, 35, 50, 70)}


def _boxes(dets) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not dets:
        return np.zeros((0, 4)), np.zeros(0), np.zeros(0, int)
    return (np.array([d.box for d in dets]), np.array([d.score for d in dets]), np.array([d.class_id for d in dets]))


def _match(pred: tuple, target_boxes: np.ndarray, target_cls: np.ndarray) -> np.ndarray:
    """Greedy matching at IoU >= 0.5 by descending score; returns a bool TP flag per prediction."""
    import torch
    from ultralytics.utils.metrics import box_iou

    boxes, scores, cls = pred
    tp = np.zeros(len(scores), bool)
    if len(scores) == 0 or len(target_cls) == 0:
        return tp
    iou = box_iou(torch.from_numpy(boxes).float(), torch.from_numpy(target_boxes).float()).numpy()
    used = np.zeros(len(target_cls), bool)
    for i in np.argsort(-scores):
        candidates = np.flatnonzero((target_cls == cls[i]) & ~used & (iou[i] >= 0.5))
        if candidates.size:
            j = candidates[np.argmax(iou[i, candidates])]
            used[j] = tp[i] = True
    return tp


def map50(preds: list[tuple], targets: list[tuple[np.ndarray, np.ndarray]]) -> float:
    from ultralytics.utils.metrics import ap_per_class

    tps, confs, classes = [], [], []
    for pred, (tb, tc) in zip(preds, targets):
        tps.append(_match(pred, tb, tc))
        confs.append(pred[1])
        classes.append(pred[2])
    target_cls = np.concatenate([t[1] for t in targets])
    if target_cls.size == 0:
        return float("nan")
    tp = np.concatenate(tps)[:, None].repeat(10, axis=1)
    ap = ap_per_class(tp, np.concatenate(confs), np.concatenate(classes), target_cls)[5]
    return float(ap[:, 0].mean()) if len(ap) else 0.0


def ground_truth(item_path, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    from codec.data import read_yolo_polygons

    label = paths.coco_dir() / "labels" / item_path.parent.name / (item_path.stem + ".txt")
    polys = read_yolo_polygons(label, width, height)
    if not polys:
        return np.zeros((0, 4)), np.zeros(0, int)
    boxes = np.array([[p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max()] for _, p in polys], float)
    return boxes, np.array([c for c, _ in polys])


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--limit", type=int, default=0, help="first N coco128 images")
    p.add_argument("--name", default="downstream")
    p.add_argument("--bg-scale", type=int, default=4, choices=(2, 4, 8), help="reduced background resolution 1/N")
    p.add_argument("--roi-conf", type=float, default=EVAL_CONF,
                   help=f"detector confidence at which the edge makes a detection a group (analytics: {EVAL_CONF})")


def run(args: argparse.Namespace) -> dict:
    from codec.api import Codec
    from codec.data import list_images, load_rgb
    from edge.detector import Detector
    from edge.policy import RoiPolicy

    codec = Codec.load()
    detector = Detector(conf=EVAL_CONF)
    edge_detector = detector if args.roi_conf == EVAL_CONF else Detector(conf=args.roi_conf)
    files = list_images(paths.coco_dir() / "images")[: args.limit or None]
    originals, orig_preds, gts = [], [], []
    for f in files:
        img = load_rgb(f)
        dets = detector.detect(img)
        originals.append((img, dets if edge_detector is detector else edge_detector.detect(img)))
        orig_preds.append(_boxes(dets))
        gts.append(ground_truth(f, *img.shape[:2]))
    pseudo = [(p[0], p[2]) for p in orig_preds]
    curves: dict[str, list[dict]] = {"original": [{"setting": "-", "bpp": 24.0, "map50_vs_original": 1.0,
                                                  "map50_vs_gt": map50(orig_preds, gts)}]}

    def evaluate(name: str, setting, coded: list[tuple[int, np.ndarray]]) -> None:
        preds = [_boxes(detector.detect(dec)) for _, dec in coded]
        bpp = float(np.mean([n * 8 / (img.shape[0] * img.shape[1]) for (n, _), (img, _) in zip(coded, originals)]))
        curves.setdefault(name, []).append({"setting": setting, "bpp": bpp, "map50_vs_original": map50(preds, pseudo),
                                            "map50_vs_gt": map50(preds, gts)})
        print(f"{name} {setting}: {curves[name][-1]}", flush=True)

    roi_modes = {"roistream-roi": 1, f"roistream-roi-bg1/{args.bg_scale}": args.bg_scale}
    for mode, scale in roi_modes.items():
        for q in ROI_Q:
            policy = RoiPolicy(roi_quality=q, bg_quality=0.0, bg_scale=scale)
            coded = []
            for img, edge_dets in originals:
                plan = policy.plan(edge_dets, *img.shape[:2])
                data = codec.encode(img, plan).SerializeToString()
                coded.append((len(data), codec.decode(data).image))
            evaluate(mode, q, coded)
    for name, qualities in BASELINE_Q.items():
        for q in qualities:
            evaluate(name, q, [encode_decode(img, name, q) for img, _ in originals])
    comparison = []
    webp = sorted(curves["webp"], key=lambda p: p["bpp"])
    for mode in roi_modes:
        for p in curves[mode]:
            twice = 2 * p["bpp"]
            if webp[0]["bpp"] <= twice <= webp[-1]["bpp"]:
                w = float(np.interp(twice, [c["bpp"] for c in webp], [c["map50_vs_gt"] for c in webp]))
                comparison.append({"mode": mode, "roi_q": p["setting"], "bpp": p["bpp"],
                                   "map50_vs_gt": p["map50_vs_gt"], "webp_bpp": twice, "webp_map50_vs_gt": w,
                                   "meets_target": p["map50_vs_gt"] >= w})
    _plot(curves, args.name)
    rows = [[name, p["setting"], p["bpp"], p["map50_vs_original"], p["map50_vs_gt"]]
            for name, pts in curves.items() for p in pts]
    title = f"# Downstream detection on {len(files)} coco128-seg images (YOLOv8n-seg int8, conf {EVAL_CONF})"
    md = "\n".join([title, "",
                    f"Our ROI modes code as groups the instances the edge's detector finds on the original at "
                    f"confidence {args.roi_conf}; every mAP50 is that of the analytics' detections at {EVAL_CONF}.", "",
                    f"![downstream]({args.name}.png)", "",
                    md_table(["codec", "setting", "bpp", "mAP50 vs original detections", "mAP50 vs ground truth"], rows),
                    "", "## ROI mode at B bpp vs WebP at 2B bpp (mAP50 vs ground truth)", "",
                    md_table(["mode", "ROI q", "bpp", "mAP50", "WebP bpp", "WebP mAP50", "target met"],
                             [[c["mode"], c["roi_q"], c["bpp"], c["map50_vs_gt"], c["webp_bpp"],
                               c["webp_map50_vs_gt"], c["meets_target"]] for c in comparison])])
    result = {"images": len(files), "roi_conf": args.roi_conf, "eval_conf": EVAL_CONF, "curves": curves,
              "roi_vs_webp_at_twice_bpp": comparison}
    write_results(args.name, result, md)
    print(md)
    return result


def _plot(curves: dict[str, list[dict]], name: str) -> None:
    fig, ax = subplots(figsize=(6.5, 4.5))
    for codec_name, pts in curves.items():
        if codec_name == "original":
            ax.axhline(pts[0]["map50_vs_gt"], color="k", ls="--", label="original images")
            continue
        pts = sorted(pts, key=lambda p: p["bpp"])
        ax.plot([p["bpp"] for p in pts], [p["map50_vs_gt"] for p in pts], "o-", label=codec_name)
    ax.set_xlabel("bits per pixel")
    ax.set_ylabel("mAP50 vs ground truth")
    ax.set_xlim(0, 1.5)
    save_figure(fig, name, [ax])


if __name__ == "__main__":
    run_module(__name__)
