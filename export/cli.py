"""Export subcommands: `roistream export onnx | tensorrt | verify | detector` (docs/export.md)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _fail(exc: Exception, code: int = 1) -> int:
    print(f"error: {exc}", file=sys.stderr)
    return code


def _threads(n: int | None) -> None:
    if n:
        import torch

        torch.set_num_threads(n)


def _onnx(args: argparse.Namespace) -> int:
    from .onnx import export_onnx
    from .verify import ExportVerificationError

    _threads(args.threads)
    precisions = ("fp32",) if args.no_fp16 else ("fp32", "fp16")
    try:
        result = export_onnx(args.weights, args.out, opset=args.opset, precisions=precisions,
                             simplify=not args.no_simplify, verify=not args.no_verify, verify_images=args.verify_images)
    except ExportVerificationError as exc:
        return _fail(exc)
    summary = result.summary()
    if summary["verification"]:  # per-image rows stay in manifest.json
        summary["verification"] = {k: {kk: vv for kk, vv in v.items() if kk != "images"}
                                   for k, v in summary["verification"].items()}
    print(json.dumps(summary, indent=2))
    return 0


def _verify(args: argparse.Namespace) -> int:
    from codec import paths
    from codec.weights import load_codec_weights

    from .verify import ExportVerificationError, verify_models

    _threads(args.threads)
    w = load_codec_weights(args.weights)
    try:
        report = verify_models(args.models or paths.models_dir(w.weights_id), w, n_images=args.images,
                               precisions=tuple(args.precision.split(",")), providers=tuple(args.providers.split(",")))
    except ExportVerificationError as exc:
        return _fail(exc)
    print(json.dumps(report, indent=2))
    return 0


def _tensorrt(args: argparse.Namespace) -> int:
    from codec import paths
    from codec.runtime import RuntimeUnavailable
    from codec.runtime.models import FrameProfile
    from codec.weights import load_codec_weights

    from .tensorrt import build_engines, parse_size
    from .verify import ExportVerificationError

    profile = FrameProfile(parse_size(args.min), parse_size(args.opt), parse_size(args.max),
                           (1, args.opt_batch or 1, args.max_batch))
    precisions = tuple(p.strip() for p in args.precision.split(",") if p.strip())
    w = load_codec_weights(args.weights)
    models = args.models or paths.models_dir(w.weights_id)
    try:
        report = build_engines(models, args.out, weights=w, precisions=precisions, profile=profile,
                               workspace_gb=args.workspace_gb, verify=not args.no_verify,
                               verify_images=args.verify_images)
    except (RuntimeUnavailable, ExportVerificationError) as exc:
        return _fail(exc, 2 if isinstance(exc, RuntimeUnavailable) else 1)
    for v in report.get("verification", {}).values():
        v.pop("images", None)
    print(json.dumps(report, indent=2))
    return 0


def _detector(args: argparse.Namespace) -> int:
    from codec.runtime import RuntimeUnavailable

    from .detector import export_detector

    try:
        path = export_detector(args.model, args.format, half=args.half, imgsz=args.imgsz, out_dir=args.out,
                               device=args.device, dynamic=args.dynamic)
    except RuntimeUnavailable as exc:
        return _fail(exc, 2)
    print(json.dumps({"model": str(args.model), "format": args.format, "exported": str(path)}))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    export = sub.add_parser("export", help="export the codec (ONNX, TensorRT) and the detector for deployment")
    esub = export.add_subparsers(dest="export_command", required=True)

    p = esub.add_parser("onnx", help="export analysis/synthesis to ONNX, verified against torch on Kodak")
    p.add_argument("--out", type=Path, help="output folder (default: $ROISTREAM_MODELS or .cache/export/ID)")
    p.add_argument("--weights", type=Path, help="codec weights (default: shipped weights)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (17 or newer; default 17)")
    p.add_argument("--no-fp16", action="store_true", help="skip the fp16 graphs (needed for fp16 TensorRT engines)")
    p.add_argument("--no-simplify", action="store_true", help="keep the exporter's graph (no onnxslim)")
    p.add_argument("--no-verify", action="store_true", help="skip the parity and decodability checks")
    p.add_argument("--verify-images", type=int, default=2, help="Kodak images to verify on (default 2)")
    p.add_argument("--threads", type=int, help="torch threads")
    p.set_defaults(func=_onnx)

    p = esub.add_parser("verify", help="check exported ONNX models against torch (parity + exact decoding)")
    p.add_argument("--models", type=Path,
                   help="folder of exported models (default: $ROISTREAM_MODELS or .cache/export/ID)")
    p.add_argument("--weights", type=Path)
    p.add_argument("--images", type=int, default=2, help="Kodak images (default 2)")
    p.add_argument("--precision", default="fp32,fp16")
    p.add_argument("--providers", default="CPUExecutionProvider", help="onnxruntime providers, comma separated")
    p.add_argument("--threads", type=int, help="torch threads")
    p.set_defaults(func=_verify)

    p = esub.add_parser("tensorrt", help="build TensorRT engines from the exported ONNX (needs an NVIDIA GPU)")
    p.add_argument("--models", type=Path,
                   help="folder of `export onnx` (default: $ROISTREAM_MODELS or .cache/export/ID)")
    p.add_argument("--out", type=Path, help="engine folder (default: the models folder)")
    p.add_argument("--weights", type=Path)
    p.add_argument("--precision", default="fp16,fp32", help="fp16 and/or fp32, comma separated (default both)")
    p.add_argument("--min", default="64x64", help="smallest padded frame HxW (default 64x64)")
    p.add_argument("--opt", default="768x1280", help="frame size to tune for (default 768x1280, padded 720p)")
    p.add_argument("--max", default="1088x1920", help="largest padded frame HxW (default 1088x1920, padded 1080p)")
    p.add_argument("--max-batch", type=int, default=1)
    p.add_argument("--opt-batch", type=int)
    p.add_argument("--workspace-gb", type=float, default=4.0)
    p.add_argument("--no-verify", action="store_true")
    p.add_argument("--verify-images", type=int, default=2)
    p.set_defaults(func=_tensorrt)

    p = esub.add_parser("detector", help="export the YOLO-seg detector with ultralytics (onnx or TensorRT engine)")
    p.add_argument("--model", type=Path, required=True, help="PyTorch checkpoint, e.g. yolo11n-seg.pt")
    p.add_argument("--format", choices=("onnx", "engine"), default="onnx")
    p.add_argument("--half", action="store_true", help="fp16 (GPU export)")
    p.add_argument("--imgsz", type=int, help="input size, a multiple of 32 (default: the model's)")
    p.add_argument("--dynamic", action="store_true", help="dynamic input size")
    p.add_argument("--device", help="export device (default: cpu for onnx, 0 for engine)")
    p.add_argument("--out", type=Path, help="move the exported file here (default: beside the model)")
    p.set_defaults(func=_detector)
