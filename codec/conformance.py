"""Conformance vectors: reference bitstreams with the digests of what every decoder must get from them.

A learned codec is only interoperable if a stream coded today decodes the same tomorrow, on
another machine and another runtime. The vectors (tests/vectors/, made by `roistream conformance
make`) cover the bitstream's features: one intra group, several ROI groups, an encrypted group
(with a committed *test* key) and a background at reduced resolution. For each group the manifest
holds two SHA-256 digests:

* `latents`: the group's latents as entropy-decoded. The integer hyper-synthesis and the entropy
  decoder make these bit-exact on every runtime (torch, onnxruntime, TensorRT, fp16 or fp32).
* `pixels`: the decoded pixels on the reference runtime (torch, fp32). The synthesis transform
  runs in floating point, so other runtimes may differ by a few levels; `check` reports their
  largest difference and holds them to `PIXEL_TOLERANCE`.

    make:  Kodak crops ──Codec.encode──▶ NAME.rsf ──reference decode──▶ manifest.json (digests)
    check: NAME.rsf ──Codec.decode on a runtime──▶ digests ──compare──▶ [Mismatch, ...]
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .api import Codec, DecodedFrame
from .crypto import EncryptionKey, Keyring
from .data import load_rgb
from .geometry import block_grid_shape
from .plan import FramePlan

MANIFEST = "manifest.json"
TEST_KEY = "test-key.json"  # a key made for the vectors and published with them: never use it for data
PIXEL_TOLERANCE = 8  # levels a non-reference runtime's pixels may differ from the reference's
REFERENCE_RUNTIME = "torch"
SIZE = 256


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def _plans() -> dict[str, tuple[str, FramePlan]]:
    """Vector name -> (Kodak image, plan): each vector exercises one feature of the bitstream."""
    grid = block_grid_shape(SIZE, SIZE)
    rois = np.zeros(grid, np.int32)
    rois[1:6, 1:5] = 1
    rois[8:14, 6:15] = 2
    rois[3:7, 10:14] = 3
    labels = {1: "person", 2: "car", 3: "dog"}
    qualities = {0: 0.3, 1: 0.85, 2: 0.6, 3: 1.0}
    return {
        "intra": ("kodim23.png", FramePlan.from_groups(np.zeros(grid, np.int32), {0: 0.5})),
        "roi": ("kodim05.png", FramePlan.from_groups(rois, qualities, labels=labels, scores={1: 0.9, 2: 0.7, 3: 0.5})),
        "encrypted": ("kodim05.png", FramePlan.from_groups(rois, qualities, labels=labels, encrypt=[2])),
        "background_quarter": ("kodim21.png", FramePlan.from_groups(rois, qualities, labels=labels,
                                                                    scales={0: 4})),
    }


def _digests(decoded: DecodedFrame) -> dict[str, dict[str, str]]:
    return {str(gid): {"latents": _digest(g.latents), "pixels": _digest(g.pixels)}
            for gid, g in sorted(decoded.groups.items())}


def make(out_dir: Path, kodak_dir: Path, codec: Codec) -> dict:
    """Write the vectors, the test key and the manifest (digests from `codec`, which must run the
    reference runtime)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    key = EncryptionKey.generate()
    key.save(out_dir / TEST_KEY)
    vectors = {}
    for i, (name, (image_name, plan)) in enumerate(_plans().items()):
        image = np.ascontiguousarray(load_rgb(kodak_dir / image_name)[:SIZE, :SIZE])
        frame = codec.encode(image, plan, key=key if plan.encrypt_ids else None, stream_id="conformance",
                             frame_index=i, timestamp_us=1_700_000_000_000_000 + i)
        data = frame.SerializeToString()
        (out_dir / f"{name}.rsf").write_bytes(data)
        decoded = codec.decode(data, keys=Keyring([key]))
        vectors[name] = {"file": f"{name}.rsf", "bytes": len(data), "source": f"{image_name}[:{SIZE}, :{SIZE}]",
                         "encrypted": bool(plan.encrypt_ids), "groups": _digests(decoded)}
    manifest = {"weights_id": codec.weights_id, "reference_runtime": REFERENCE_RUNTIME, "test_key": TEST_KEY,
                "vectors": vectors}
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


@dataclass(frozen=True)
class Result:
    vector: str
    group: str
    latents_equal: bool
    pixels_equal: bool
    max_pixel_diff: int

    def ok(self, reference: bool) -> bool:
        return self.latents_equal and (self.pixels_equal if reference else self.max_pixel_diff <= PIXEL_TOLERANCE)


def check(vectors_dir: Path, codec: Codec) -> list[Result]:
    """Decode every vector with `codec` and compare each group with the manifest's digests. The
    reference pixels are decoded again on the reference runtime only to measure a difference."""
    manifest = json.loads((vectors_dir / MANIFEST).read_text())
    if manifest["weights_id"] != codec.weights_id:
        raise ValueError(f"the vectors need codec weights {manifest['weights_id']}, this codec has {codec.weights_id}")
    keys = Keyring([EncryptionKey.load(vectors_dir / manifest["test_key"])])
    reference: Codec | None = None
    results = []
    for name, vec in manifest["vectors"].items():
        data = (vectors_dir / vec["file"]).read_bytes()
        got = codec.decode(data, keys=keys)
        digests = _digests(got)
        for gid, want in vec["groups"].items():
            have = digests.get(gid, {})
            pixels_equal = have.get("pixels") == want["pixels"]
            diff = 0
            if not pixels_equal and gid in digests:
                if reference is None:
                    reference = Codec(codec.weights)  # the torch runtime
                ref = reference.decode(data, groups=[int(gid)], keys=keys).groups[int(gid)].pixels
                diff = int(np.abs(ref.astype(np.int16) - got.groups[int(gid)].pixels.astype(np.int16)).max())
            elif gid not in digests:
                diff = 255
            results.append(Result(name, gid, have.get("latents") == want["latents"], pixels_equal, diff))
    return results
