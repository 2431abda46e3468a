"""The model-file contract between `roistream export` (which writes the files) and the runtimes
(which read them): graph names, their inputs and outputs, file names, the size multiple, the
TensorRT optimization profile, and the weights-id checks that refuse models of other weights.

Both sides import these names from here, so a file written by the export is the file a runtime
looks for. onnx is imported only by the functions that read an ONNX file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .backend import RuntimeUnavailable

GRAPHS = ("analysis", "synthesis")
PRECISIONS = ("fp32", "fp16")  # of the ONNX graphs
ENGINE_PRECISIONS = ("fp16", "fp32")  # of TensorRT engines (fp16 first: what a GPU edge runs)
SIZE_MULTIPLE = 64  # frames are padded to it; every graph input's H and W is a multiple
INPUTS = {"analysis": ("x", "cell_mask", "gain"), "synthesis": ("y_hat", "inverse_gain")}
OUTPUTS = {"analysis": ("y", "z"), "synthesis": ("image",)}
META_PREFIX = "roistream."


class ModelMismatchError(RuntimeUnavailable, ValueError):
    """An exported model does not belong to the loaded weights (or is not a roistream export)."""


def model_filename(graph: str, precision: str = "fp32", suffix: str = ".onnx") -> str:
    if graph not in GRAPHS or precision not in PRECISIONS:
        raise ValueError(f"unknown graph/precision {graph}/{precision}")
    return f"{graph}{'' if precision == 'fp32' else '_' + precision}{suffix}"


def engine_filename(graph: str, precision: str) -> str:
    if precision not in ENGINE_PRECISIONS:
        raise ValueError(f"engine precision must be one of {ENGINE_PRECISIONS}, got {precision!r}")
    return f"{graph}_{precision}.engine"


def engine_sidecar(engine_path: Path) -> Path:
    """The JSON beside an engine naming its weights id, TensorRT version, GPU and profile."""
    return engine_path.with_suffix(".engine.json")


def read_metadata(path: Path | str) -> dict[str, str]:
    """The `roistream.*` metadata of an ONNX file (keys without the prefix)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {p.key[len(META_PREFIX):]: p.value for p in model.metadata_props if p.key.startswith(META_PREFIX)}


def check_model_weights(path: Path | str, weights_id: str, graph: str | None = None) -> dict[str, str]:
    """Refuse (ModelMismatchError) an ONNX model that was not exported from the weights `weights_id`."""
    meta = read_metadata(path)
    if "weights_id" not in meta:
        raise ModelMismatchError(f"{path} has no roistream metadata: export it with `roistream export onnx`")
    if meta["weights_id"] != weights_id:
        raise ModelMismatchError(f"{path} was exported from weights {meta['weights_id']}, but the loaded weights are "
                                 f"{weights_id}: re-export with `roistream export onnx --weights ...`")
    if graph is not None and meta.get("graph") != graph:
        raise ModelMismatchError(f"{path} holds the {meta.get('graph')!r} graph, expected {graph!r}")
    return meta


def check_engine_weights(engine_path: Path, weights_id: str) -> dict:
    """The sidecar of an engine, refused (ModelMismatchError) when it names other weights."""
    sidecar = engine_sidecar(engine_path)
    meta = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    if meta.get("weights_id") != weights_id:
        raise ModelMismatchError(f"{engine_path} was built from weights {meta.get('weights_id')}, the loaded weights "
                                 f"are {weights_id}: rebuild with `roistream export tensorrt`")
    return meta


@dataclass(frozen=True)
class FrameProfile:
    """Padded frame sizes (H, W) and batch sizes of an optimization profile: min / opt / max.

    Defaults: from one 64x64 hyper cell to padded 1080p, tuned for padded 720p, batch 1.
    The edge codes group crops, so every crop size between min and max must be allowed.
    """

    min: tuple[int, int] = (64, 64)
    opt: tuple[int, int] = (768, 1280)
    max: tuple[int, int] = (1088, 1920)
    batch: tuple[int, int, int] = (1, 1, 1)

    def __post_init__(self):
        for size in (self.min, self.opt, self.max):
            if size[0] % SIZE_MULTIPLE or size[1] % SIZE_MULTIPLE or min(size) <= 0:
                raise ValueError(f"profile size {size}: multiples of {SIZE_MULTIPLE} needed")
        for i in range(2):
            if not self.min[i] <= self.opt[i] <= self.max[i]:
                raise ValueError(f"profile needs min <= opt <= max, got {self.min} {self.opt} {self.max}")
        if not 1 <= self.batch[0] <= self.batch[1] <= self.batch[2]:
            raise ValueError(f"profile batch needs 1 <= min <= opt <= max, got {self.batch}")

    def input_shapes(self, graph: str, m: int = 160) -> dict[str, tuple[tuple[int, ...], ...]]:
        """{input: (min shape, opt shape, max shape)} of a graph."""
        sizes = (self.min, self.opt, self.max)
        if graph == "analysis":
            return {"x": tuple((b, 3, h, w) for b, (h, w) in zip(self.batch, sizes)),
                    "cell_mask": tuple((b, 1, h // 16, w // 16) for b, (h, w) in zip(self.batch, sizes)),
                    "gain": tuple((b, m) for b in self.batch)}
        return {"y_hat": tuple((b, m, h // 16, w // 16) for b, (h, w) in zip(self.batch, sizes)),
                "inverse_gain": tuple((b, m) for b in self.batch)}

    def allows(self, height: int, width: int, batch: int = 1) -> bool:
        return (self.min[0] <= height <= self.max[0] and self.min[1] <= width <= self.max[1]
                and self.batch[0] <= batch <= self.batch[2])
