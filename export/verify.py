"""Verification built into the export: exported runtimes against torch on real Kodak images.

For a backend under test (onnxruntime on exported graphs, a TensorRT engine, ...):

1. parity: analysis (y, z; against torch evaluated in float64) and synthesis (image) against the torch reference on full Kodak frames
   (landscape and portrait, so both dynamic axes move) and on a batch of two; the largest absolute
   difference must stay within the tolerance (1e-4 for fp32 ONNX);
2. decodability: every group of a three-group frame encoded with the backend is decoded by the
   standard torch decoder, whose y-hat must equal the encoder's y-hat bit for bit, and the whole
   serialized frame decodes through `Codec.decode`.

Any failure raises `ExportVerificationError` naming every check that failed.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from codec import paths
from codec.geometry import block_grid_shape, model_input
from codec.plan import FramePlan
from codec.runtime.onnxruntime_backend import OnnxRuntimeBackend
from codec.runtime.torch_backend import TorchBackend
from codec.weights import load_codec_weights

FP32_TOLERANCE = 1e-4  # max |diff| on y and z (and pixels in [0, 1]) for fp32 graphs
# fp16 graphs cannot meet 1e-4; this bound only catches a broken graph (the quantization step is 1)
FP16_TOLERANCE = 0.25
DEFAULT_IMAGES = ("kodim23.png", "kodim04.png", "kodim01.png", "kodim09.png", "kodim15.png", "kodim19.png")
Q_INDEX = 217  # quality 0.85: the largest latents the edge codes by default


class ExportVerificationError(RuntimeError):
    """An exported model does not match torch, or its streams do not decode exactly."""


def kodak_images(n: int | None = None, names: tuple[str, ...] = DEFAULT_IMAGES) -> list[Path]:
    """n Kodak images: the default picks first (both orientations), then the rest in order."""
    folder = paths.kodak_dir()
    every = sorted(folder.glob("kodim*.png"))
    if not every:
        raise ExportVerificationError(f"no Kodak images in {folder} to verify against (set ROISTREAM_SHARED)")
    ordered = [folder / n_ for n_ in names if (folder / n_).is_file()]
    ordered += [p for p in every if p not in ordered]
    return ordered if n is None else ordered[: max(int(n), 1)]


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def group_map_for(height: int, width: int) -> np.ndarray:
    """Background + two irregular object groups on the block grid of a frame (for checks)."""
    hb, wb = block_grid_shape(height, width)
    gm = np.zeros((hb, wb), np.int32)
    gm[hb // 6 : hb // 2, wb // 8 : wb // 3] = 1
    gm[hb // 2, wb // 3] = 1  # an irregular block
    gm[hb // 2 : hb - 2, wb // 2 : wb - 3] = 2
    return gm


def verify_backend(backend, weights, *, images: list[Path] | None = None, n_images: int = 2,
                   tolerance: float = FP32_TOLERANCE, label: str | None = None, check_synthesis: bool = True,
                   raise_on_failure: bool = True) -> dict:
    """Parity and exact decodability of `backend` (a codec Backend) against torch on Kodak images."""
    from codec.api import Codec
    from codec.data import load_rgb
    import torch


    start = time.perf_counter()
    w = load_codec_weights(weights)
    reference = Codec(w)
    tested = Codec(w, backend=backend)
    torch_be = reference.coder.backend
    assert isinstance(torch_be, TorchBackend)
    # Latents are compared with the analysis evaluated in float64, the function both runtimes
    # approximate: torch's own float32 (oneDNN, channels-last) is not closer to it than onnxruntime.
    exact_be = TorchBackend(reference.coder.transforms, dtype=torch.float64)
    gain, inverse = reference.coder.transforms.gain_vectors(Q_INDEX)
    label = label or getattr(backend, "name", type(backend).__name__)
    report = {"backend": label, "tolerance": tolerance, "images": [], "max_abs_diff": {"y": 0.0, "z": 0.0, "image": 0.0},
              "groups_checked": 0, "groups_exact": 0, "symbols_differing_from_torch": 0, "symbols": 0}
    failures: list[str] = []
    inputs = []
    for path in images or kodak_images(n_images):
        image = load_rgb(path)
        x = model_input(image)[None]
        cells = np.ones((1, 1, x.shape[2] // 16, x.shape[3] // 16), np.float32)
        inputs.append((path.name, image, x, cells))
    # a batch of two frames of one size (both dynamic axes are already covered by the orientations)
    first = inputs[0]
    batch = ("batch2:" + first[0], None, np.concatenate([first[2], first[2][:, :, ::-1, ::-1]]),
             np.concatenate([first[3], first[3]]))
    for name, image, x, cells in inputs + [batch]:
        b = x.shape[0]
        g = np.repeat(gain[None], b, 0)
        y_ref, z_ref = exact_be.analyze(x, cells, g)
        y, z = backend.analyze(x, cells, g)
        entry = {"image": name, "size": [int(x.shape[3]), int(x.shape[2])], "batch": b,
                 "y": _max_diff(y, y_ref), "z": _max_diff(z, z_ref)}
        if check_synthesis:
            y_hat = np.rint(y_ref).astype(np.float32)
            ig = np.repeat(inverse[None], b, 0)
            entry["image_diff"] = _max_diff(backend.synthesize(y_hat, ig), torch_be.synthesize(y_hat, ig))
        for key, value in (("y", entry["y"]), ("z", entry["z"]), ("image", entry.get("image_diff", 0.0))):
            report["max_abs_diff"][key] = max(report["max_abs_diff"][key], value)
            if not value <= tolerance:  # also catches NaN and shape mismatches (inf)
                failures.append(f"{name}: max |{key} - torch| = {value:.3g} > {tolerance:g}")
        if image is not None:  # exact decodability of every group through the torch decoder
            h, wd = image.shape[:2]
            gm = group_map_for(h, wd)
            assert gm.shape == block_grid_shape(h, wd)
            for gid in np.unique(gm):
                mask = gm == gid
                payload, y_enc = tested.coder.encode(x[0], mask, Q_INDEX)
                decoded = reference.coder.decode(payload, mask, Q_INDEX)
                report["groups_checked"] += 1
                if decoded.y_hat.shape == y_enc.shape and np.array_equal(decoded.y_hat, y_enc):
                    report["groups_exact"] += 1
                else:
                    failures.append(f"{name} group {gid}: the torch decoder's y-hat differs from the encoder's")
                _, y_torch = reference.coder.encode(x[0], mask, Q_INDEX)
                report["symbols"] += int(mask.sum()) * w.config.m
                report["symbols_differing_from_torch"] += int(np.count_nonzero(y_torch != y_enc))
            data = tested.encode(image, FramePlan.from_groups(gm, {0: 0.3, 1: 0.85, 2: 0.6})).SerializeToString()
            try:
                frame = reference.decode(data)
                entry["decoded_groups"] = sorted(frame.groups)
                if sorted(frame.groups) != sorted(int(i) for i in np.unique(gm)):
                    failures.append(f"{name}: the standard decoder returned groups {sorted(frame.groups)}")
            except Exception as exc:  # any bitstream error is a failure of the export
                failures.append(f"{name}: the standard decoder refused the stream ({exc})")
        report["images"].append(entry)
    report["seconds"] = round(time.perf_counter() - start, 2)
    report["passed"] = not failures
    report["failures"] = failures
    if failures and raise_on_failure:
        raise ExportVerificationError(f"{label} failed verification against torch:\n  " + "\n  ".join(failures))
    return report


def verify_models(models_dir: Path | str, weights=None, *, n_images: int = 2, precisions=("fp32", "fp16"),
                  threads: int | None = None, providers=("CPUExecutionProvider",)) -> dict:
    """Verify exported ONNX graphs with onnxruntime (CPU by default): fp32 within 1e-4 of torch,
    fp16 within a sanity bound; both must produce streams that decode exactly."""
    w = load_codec_weights(weights)
    images = kodak_images(n_images)
    out = {}
    for precision in precisions:
        backend = OnnxRuntimeBackend(models_dir, providers=list(providers), weights_id=w.weights_id,
                                     precision=precision, fp16_synthesis=precision == "fp16", threads=threads)
        out[precision] = verify_backend(backend, w, images=images,
                                        tolerance=FP32_TOLERANCE if precision == "fp32" else FP16_TOLERANCE,
                                        label=backend.name)
    return out
