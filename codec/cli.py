"""Codec subcommands: encode, decode, info, keygen, train."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

# image -> (block group map, labels per group id, scores per group id)
DetectGroups = Callable[[np.ndarray, str], tuple[np.ndarray, dict[int, str], dict[int, float]]]


def _parse_ids(text: str | None) -> list[int] | None:
    return None if text is None else [int(t) for t in text.split(",") if t.strip()]


def _parse_words(text: str | None) -> list[str] | None:
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


def _read_group_map(path: Path, height: int, width: int) -> np.ndarray:
    import cv2

    from .geometry import group_map_from_label_image

    labels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if labels is None:
        raise SystemExit(f"error: cannot read group mask {path}")
    if labels.ndim == 3:
        labels = labels[..., 0]
    return group_map_from_label_image(labels.astype(np.int64), height, width)


def _encode(args: argparse.Namespace) -> int:
    from .api import Codec
    from .crypto import EncryptionKey
    from .data import load_rgb
    from .signing import SigningKey
    from .geometry import block_grid_shape
    from .plan import FramePlan

    image = load_rgb(args.image)
    h, w = image.shape[:2]
    detect = getattr(args, "detect", None)
    if args.groups and detect:
        raise ValueError("use either --groups or --detect")
    scores: dict[int, float] = {}
    if detect:
        group_map, labels, scores = args.detect_groups(image, detect)
    else:
        group_map = _read_group_map(args.groups, h, w) if args.groups else np.zeros(block_grid_shape(h, w), np.int32)
        labels = {int(i): ("background" if i == 0 else f"region{i}") for i in np.unique(group_map)}
    ids = [int(i) for i in np.unique(group_map)]
    qualities = {i: (args.quality if i == 0 else args.roi_quality) for i in ids}
    key = EncryptionKey.load(args.key) if args.key else None
    encrypt: list[int] = []
    if args.encrypt:
        if key is None:
            raise SystemExit("error: --encrypt needs --key KEYFILE")
        wanted = set(_parse_words(args.encrypt) or [])
        encrypt = [i for i in ids if labels[i] in wanted or str(i) in wanted or ("roi" in wanted and i)]
    codec = Codec.load(args.weights)
    plan = FramePlan.from_groups(group_map, qualities, labels=labels, scores=scores, encrypt=encrypt,
                                 scales={0: args.bg_scale})
    signer = SigningKey.load(args.sign_key) if args.sign_key else None
    frame = codec.encode(image, plan, key=key, signer=signer)
    data = frame.SerializeToString()
    args.output.write_bytes(data)
    bpp = len(data) * 8 / (h * w)
    print(json.dumps({"output": str(args.output), "bytes": len(data), "bpp": round(bpp, 4),
                      "groups": len(frame.groups), "labels": {str(i): labels[i] for i in ids}, "encrypted": encrypt}))
    return 0


def _decode(args: argparse.Namespace) -> int:
    import cv2

    from .api import Codec
    from .crypto import EncryptionKey, Keyring
    from .signing import TrustedKeys

    keys = Keyring([EncryptionKey.load(args.key)]) if args.key else None
    codec = Codec.load(args.weights)
    decoded = codec.decode(args.input.read_bytes(), groups=_parse_ids(args.groups), labels=_parse_words(args.classes),
                           keys=keys, on_error="skip", trusted=TrustedKeys.load(args.trust_key))
    cv2.imwrite(str(args.output), cv2.cvtColor(decoded.image, cv2.COLOR_RGB2BGR))
    for gid, err in decoded.failures.items():
        print(f"warning: group {gid} not decoded: {err}", file=sys.stderr)
    print(json.dumps({"output": str(args.output), "decoded": sorted(decoded.groups), "failed": sorted(decoded.failures)}))
    return 0 if decoded.groups or not decoded.failures else 1


def _info(args: argparse.Namespace) -> int:
    from .bitstream import dequantize_quality, parse_frame

    frame = parse_frame(args.input.read_bytes())
    h = frame.header
    groups = [{
        "group_id": g.group_id, "label": g.label, "score": round(g.score, 4), "track_id": g.track_id,
        "bbox": [g.bbox.x, g.bbox.y, g.bbox.width, g.bbox.height], "quality": round(dequantize_quality(g.quality), 4),
        "scale": 1 << g.scale_log2, "bytes": len(g.payload), "encrypted": g.HasField("encryption"),
        **({"key_id": g.encryption.key_id} if g.HasField("encryption") else {}),
    } for g in frame.groups]
    print(json.dumps({"format_version": h.format_version, "weights_id": h.weights_id, "width": h.width,
                      "height": h.height, "stream_id": h.stream_id, "frame_index": h.frame_index,
                      "timestamp_us": h.timestamp_us, "bytes": frame.ByteSize(), "groups": groups}, indent=2))
    return 0


def _keygen(args: argparse.Namespace) -> int:
    from .crypto import EncryptionKey
    from .signing import SigningKey

    if args.signing:  # the private key stays on the edge; the public one goes to the cloud and readers
        signer = SigningKey.generate()
        signer.save(args.output)
        public = args.output.with_name(args.output.name + ".pub")
        signer.verify_key.save(public)
        print(json.dumps({"key_file": str(args.output), "public_key_file": str(public), "key_id": signer.key_id}))
        return 0
    key = EncryptionKey.generate()
    key.save(args.output)
    print(json.dumps({"key_file": str(args.output), "key_id": key.key_id}))
    return 0


def _train(args: argparse.Namespace) -> int:
    import torch

    from .train import TrainConfig, train

    torch.set_num_threads(args.threads)
    cfg = TrainConfig(out=args.out, steps=args.steps, batch=args.batch, crop=args.crop, seed=args.seed,
                      checkpoint_minutes=args.checkpoint_minutes, device=args.device, init=args.init,
                      photos=args.photos, coco=args.coco, compile=not args.no_compile, widen=args.widen,
                      **{k: getattr(args, k) for k in ("lr", "warm_lr", "final_lr") if getattr(args, k) is not None})
    path = train(cfg)
    print(f"weights written to {path}")
    return 0


def _conformance(args: argparse.Namespace) -> int:
    from . import conformance, paths
    from .runtime import make_codec

    if args.action == "make":
        if args.backend != conformance.REFERENCE_RUNTIME:
            raise SystemExit(f"error: vectors are made on the reference runtime ({conformance.REFERENCE_RUNTIME})")
        codec, _ = make_codec(conformance.REFERENCE_RUNTIME, args.weights)
        manifest = conformance.make(args.dir, paths.kodak_dir(), codec)
        print(json.dumps({"dir": str(args.dir), "vectors": sorted(manifest["vectors"]),
                          "weights_id": manifest["weights_id"]}))
        return 0
    codec, runtime = make_codec(args.backend, args.weights, args.models_dir)
    results = conformance.check(args.dir, codec)
    reference = args.backend == conformance.REFERENCE_RUNTIME
    failed = [r for r in results if not r.ok(reference)]
    print(json.dumps({"runtime": runtime, "groups": len(results), "failed": len(failed),
                      "latents_equal": sum(r.latents_equal for r in results),
                      "pixels_equal": sum(r.pixels_equal for r in results),
                      "max_pixel_diff": max((r.max_pixel_diff for r in results), default=0),
                      "failures": [f"{r.vector} group {r.group}" for r in failed]}))
    return 1 if failed else 0


def _pack_data(args: argparse.Namespace) -> int:
    from . import paths

    from .data import MAX_SIDE
    from .datapack import pack_training_data

    summary = pack_training_data(args.output, args.photos or paths.photos_dir(), args.coco or paths.coco_dir(),
                                 max_side=args.max_side or MAX_SIDE, jpeg_quality=args.jpeg_quality, max_mb=args.max_mb)
    print(json.dumps({"pack": str(args.output), "photos": summary.photos, "coco_images": summary.coco_images,
                      "jpeg_quality": summary.jpeg_quality, "mib": round(summary.bytes / 2**20, 1),
                      "train_with": f"ROISTREAM_SHARED={args.output} roistream train ..."}))
    return 0


def register(sub: argparse._SubParsersAction, detect_groups: DetectGroups | None = None) -> None:
    """The codec's subcommands. `detect_groups` (given by the combined CLI, which may import the
    edge's detector; the codec may not) adds `encode --detect WORDS`."""
    p = sub.add_parser("encode", help="encode an image into a roistream frame")
    p.add_argument("image", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True)
    p.add_argument("--quality", type=float, default=0.5, help="background quality q in [0, 1]")
    p.add_argument("--bg-scale", type=int, choices=(1, 2, 4, 8), default=1,
                   help="code the background at 1/N resolution (docs/bitstream.md)")
    p.add_argument("--roi-quality", type=float, default=0.8, help="quality of the groups in --groups")
    p.add_argument("--groups", type=Path, help="integer label image (0 = background), one group per label")
    if detect_groups is not None:
        p.add_argument("--detect", metavar="WORDS", help='detect these classes as groups, e.g. "people, dogs"')
    p.add_argument("--encrypt", help="labels or group ids to encrypt (comma separated; 'roi' = every object group)")
    p.add_argument("--key", type=Path, help="key file (roistream keygen)")
    p.add_argument("--sign-key", type=Path, help="sign every record with this edge key (roistream keygen --signing)")
    p.add_argument("--weights", type=Path, help="codec weights file (default: shipped weights)")
    p.set_defaults(func=_encode, detect_groups=detect_groups)

    p = sub.add_parser("decode", help="decode a roistream frame (all groups, or the selected ones)")
    p.add_argument("input", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True)
    p.add_argument("--groups", help="group ids to decode, comma separated")
    p.add_argument("--classes", help="labels to decode, comma separated")
    p.add_argument("--key", type=Path, help="key file for encrypted groups")
    p.add_argument("--trust-key", type=Path, action="append", default=[],
                   help="edge public key (repeatable): decode only records signed by one of them")
    p.add_argument("--weights", type=Path)
    p.set_defaults(func=_decode)

    p = sub.add_parser("info", help="describe a roistream frame as JSON")
    p.add_argument("input", type=Path)
    p.set_defaults(func=_info)

    p = sub.add_parser("conformance", help="make or check the conformance vectors (docs/bitstream.md)")
    p.add_argument("action", choices=("make", "check"))
    p.add_argument("dir", type=Path, help="vectors folder (the project's: tests/vectors)")
    p.add_argument("--backend", default="torch", help="runtime to check (codec.runtime names)")
    p.add_argument("--models", "--models-dir", dest="models_dir", type=Path,
                   help="exported models for onnxruntime / tensorrt (default: $ROISTREAM_MODELS or the cache)")
    p.add_argument("--weights", type=Path)
    p.set_defaults(func=_conformance)

    p = sub.add_parser("keygen", help="create an AES-256-GCM key file, or an Ed25519 edge signing key (--signing)")
    p.add_argument("-o", "--output", type=Path, required=True)
    p.add_argument("--signing", action="store_true",
                   help="an Ed25519 signing key for an edge (OUTPUT) and its public key (OUTPUT.pub)")
    p.set_defaults(func=_keygen)

    p = sub.add_parser("train", help="train the codec (resumes from OUT/checkpoint.pt)")
    p.add_argument("--out", type=Path, default=Path("runs/codec"))
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--checkpoint-minutes", type=float, default=10.0)
    p.add_argument("--lr", type=float, help="learning rate between the warm-up and final phases (default 1e-4)")
    p.add_argument("--warm-lr", type=float, help="learning rate of the first 10%% of steps (default 3e-4)")
    p.add_argument("--final-lr", type=float, help="learning rate of the last 10%% of steps (default 2e-5)")
    p.add_argument("--device", default="auto")
    p.add_argument("--init", type=Path, help="weights file to start from when OUT has no checkpoint")
    p.add_argument("--widen", type=int, default=0, metavar="N",
                   help="with --init: grow the hidden layers of g_a / g_s to N channels first, computing the same "
                        "function, so training adds capacity to a trained model (a checkpoint keeps its size)")
    p.add_argument("--no-compile", action="store_true", help="run eagerly (torch.compile makes CPU steps ~1.1-1.3x "
                   "faster after a 1-2 minute compile, and needs a C++ compiler)")
    p.add_argument("--photos", type=Path, help="folder of training photos (default ../shared/data/photos)")
    p.add_argument("--coco", type=Path, help="coco128-seg root with images/ and labels/ (default ../shared/data/coco128-seg)")
    p.set_defaults(func=_train)

    p = sub.add_parser("pack-data", help="compact copy of the training data, for a machine without ../shared "
                                         "(train there with ROISTREAM_SHARED=OUTPUT)")
    p.add_argument("-o", "--output", type=Path, required=True)
    p.add_argument("--max-side", type=int, help="shrink photos to this longer side (default: the training loader's, 1024)")
    p.add_argument("--jpeg-quality", type=int, default=90, help="JPEG quality of the photos (4:4:4; default %(default)s)")
    p.add_argument("--max-mb", type=float, help="lower the JPEG quality in steps of 5 until the pack fits in this many MiB")
    p.add_argument("--photos", type=Path, help="folder of training photos (default ../shared/data/photos)")
    p.add_argument("--coco", type=Path, help="coco128-seg root (default ../shared/data/coco128-seg)")
    p.set_defaults(func=_pack_data)
