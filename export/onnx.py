"""`roistream export onnx`: the codec's float networks as ONNX graphs.

Two graphs per precision, exactly the modules of `codec.runtime.transforms`:

* `analysis.onnx`: (x [B,3,H,W], cell_mask [B,1,H/16,W/16], gain [B,M]) -> (y, z): g_a with its
  gain and the group's cell mask, then the hyper-analysis h_a.
* `synthesis.onnx`: (y_hat [B,M,h,w], inverse_gain [B,M]) -> image [B,3,16h,16w] in [0, 1].

Batch, height and width are dynamic (H and W multiples of 64). The `_fp16` variants hold the same
networks with float16 convolutions and GDN normalisation in float32, inputs and outputs float32:
a strongly typed graph, which is what TensorRT 11 needs for fp16 engines (it has no FP16 builder
flag any more) and what onnxruntime-gpu runs in half precision. The integer hyper-synthesis is not
exported: it stays in numpy (`codec.intnet`), which is what keeps streams decodable everywhere.

Each file carries metadata (`roistream.*` keys): the weights id it was made from, the roistream
version, graph, precision and opset; runtimes refuse models whose weights id does not match. The
names of graphs, inputs and files are the runtimes' contract (`codec.runtime.models`).
"""

from __future__ import annotations

import copy
import hashlib
import io
import itertools
import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from codec import paths
from codec.runtime.models import GRAPHS, INPUTS, META_PREFIX, OUTPUTS, PRECISIONS, SIZE_MULTIPLE, model_filename
from codec.runtime.transforms import TransformSet
from codec.weights import load_codec_weights

DEFAULT_OPSET = 17
MANIFEST = "manifest.json"
GRAPH_FORMAT = 3  # bumped when the exported graphs change shape (2: GDN as a 1x1 convolution, 3: sub-pixel g_s)


def roistream_version() -> str:
    try:
        from importlib.metadata import version

        return version("roistream")
    except Exception:  # running from a checkout that is not installed
        return "0+unknown"


def _dynamic_axes(graph: str) -> dict[str, dict[int, str]]:
    if graph == "analysis":
        return {"x": {0: "batch", 2: "height", 3: "width"}, "cell_mask": {0: "batch", 2: "cells_h", 3: "cells_w"},
                "gain": {0: "batch"}, "y": {0: "batch", 2: "cells_h", 3: "cells_w"},
                "z": {0: "batch", 2: "hyper_h", 3: "hyper_w"}}
    return {"y_hat": {0: "batch", 2: "cells_h", 3: "cells_w"}, "inverse_gain": {0: "batch"},
            "image": {0: "batch", 2: "height", 3: "width"}}


def _export_graph_module(module, half: bool = False):
    """A copy of a codec graph shaped for ONNX: GDN's channel mixing as a 1x1 convolution (ONNX
    runtimes fuse it into their blocked convolution layouts, where a MatMul would force layout
    conversions), g_s's stride-2 transposed convolutions as sub-pixel convolutions
    (`SubpixelDeconv`), and with `half` convolutions in float16 between float32 inputs and outputs
    (GDN normalisation kept in float32)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    from codec.layers import GDN

    class ConvGDN(nn.Module):
        def __init__(self, gdn: GDN):
            super().__init__()
            self.inverse = gdn.inverse
            self.register_buffer("beta", gdn.beta.detach().float() ** 2 + 1e-6)
            self.register_buffer("gamma", (gdn.gamma.detach().float() ** 2)[:, :, None, None])

        def forward(self, x):
            xf = x.float()
            norm = torch.sqrt(F.conv2d(xf * xf, self.gamma, self.beta))
            return (xf * norm if self.inverse else xf / norm).to(x.dtype)

    class SubpixelDeconv(nn.Module):
        """A 5x5 stride-2 transposed convolution (codec.layers.deconv) as the same function in ops
        that runtimes run fast: output pixel (2i + r, 2j + s) reads input taps i-1..i+1, j-1..j+1
        through kernel taps r + 2 - 2d, so one 3x3 convolution to 4x the channels, with the unused
        taps zero, then DepthToSpace: runtimes' convolution kernels are tuned far better than their
        ConvTranspose (bench/results/export.md times the synthesis)."""

        TAPS = ((4, 2, 0), (None, 3, 1))  # kernel tap for phase r and input offset d = -1, 0, 1

        def __init__(self, deconv: nn.ConvTranspose2d):
            super().__init__()
            shape = (deconv.kernel_size, deconv.stride, deconv.padding, deconv.output_padding)
            if shape != ((5, 5), (2, 2), (2, 2), (1, 1)):
                raise ValueError(f"no sub-pixel form for {deconv}")
            w = deconv.weight.detach().float()  # [in, out, 5, 5]
            kernel = torch.zeros(w.shape[1], 2, 2, w.shape[0], 3, 3)
            for r, s, a, b in itertools.product(range(2), range(2), range(3), range(3)):
                tap_h, tap_w = self.TAPS[r][a], self.TAPS[s][b]
                if tap_h is not None and tap_w is not None:
                    kernel[:, r, s, :, a, b] = w[:, :, tap_h, tap_w].t()
            self.conv = nn.Conv2d(w.shape[0], 4 * w.shape[1], 3, padding=1)
            self.conv.weight.data = kernel.reshape(4 * w.shape[1], w.shape[0], 3, 3)
            self.conv.bias.data = deconv.bias.detach().float().repeat_interleave(4)

        def forward(self, x):
            return F.pixel_shuffle(self.conv(x), 2)

    class ExportGraph(nn.Module):
        def __init__(self, graph):
            super().__init__()
            self.graph = copy.deepcopy(graph)
            for parent in list(self.graph.modules()):
                for name, child in list(parent.named_children()):
                    if isinstance(child, GDN):
                        setattr(parent, name, ConvGDN(child))
                    elif isinstance(child, nn.ConvTranspose2d):
                        setattr(parent, name, SubpixelDeconv(child))
            if half:
                for mod in self.graph.modules():
                    if isinstance(mod, nn.Conv2d):  # transposed ones are sub-pixel Conv2d by now
                        mod.half()
            self.eval().requires_grad_(False)

        def forward(self, *args):
            if not half:
                return self.graph(*args)
            out = self.graph(*(a.half() for a in args))
            return tuple(o.float() for o in out) if isinstance(out, tuple) else out.float()

    return ExportGraph(module)


def _dummy_inputs(graph: str, m: int):
    import torch

    g = torch.Generator().manual_seed(0)
    if graph == "analysis":  # 128x192: not square, so height and width cannot be confused
        return (torch.rand(1, 3, 128, 192, generator=g), torch.ones(1, 1, 8, 12), torch.rand(1, m, generator=g) + 0.5)
    return (torch.randn(1, m, 8, 12, generator=g) * 3, torch.rand(1, m, generator=g) + 0.5)


def _check_dynamic(model, graph: str) -> None:
    """Loud failure when an exporter froze a dimension that must stay dynamic."""
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        want = _dynamic_axes(graph)[value.name]
        frozen = [i for i in want if not dims[i].dim_param]
        if frozen:
            raise RuntimeError(f"{graph}: axes {frozen} of {value.name} were exported as fixed sizes "
                               f"({[d.dim_value for d in dims]}), they must be dynamic")


def export_graph(module, graph: str, m: int, opset: int = DEFAULT_OPSET, simplify: bool = True):
    """One torch graph -> onnx.ModelProto (checked, simplified with onnxslim, dynamic axes kept)."""
    import onnx
    import torch

    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(module, _dummy_inputs(graph, m), buf, input_names=list(INPUTS[graph]),
                          output_names=list(OUTPUTS[graph]), dynamic_axes=_dynamic_axes(graph),
                          opset_version=opset, do_constant_folding=True, dynamo=False)
    model = onnx.load_from_string(buf.getvalue())
    if simplify:
        import onnxslim

        model = onnxslim.slim(model)
    onnx.checker.check_model(model, full_check=True)
    _check_dynamic(model, graph)
    return model


def set_metadata(model, meta: dict[str, str]) -> None:
    existing = {p.key: p for p in model.metadata_props}
    for key, value in meta.items():
        full = META_PREFIX + key
        if full in existing:
            existing[full].value = str(value)
        else:
            prop = model.metadata_props.add()
            prop.key, prop.value = full, str(value)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class ExportResult:
    out_dir: Path
    weights_id: str
    files: dict[str, Path] = field(default_factory=dict)  # "analysis", "analysis_fp16", ...
    verification: dict | None = None
    seconds: float = 0.0

    def summary(self) -> dict:
        return {"out": str(self.out_dir), "weights_id": self.weights_id,
                "files": {k: str(v) for k, v in self.files.items()}, "seconds": round(self.seconds, 2),
                "verification": self.verification}


def export_onnx(weights=None, out_dir: Path | str | None = None, *, opset: int = DEFAULT_OPSET,
                precisions: tuple[str, ...] = PRECISIONS, simplify: bool = True, verify: bool = True,
                verify_images: int = 2) -> ExportResult:
    """Export analysis and synthesis (fp32, and fp16 unless left out) with metadata, then verify them
    against torch on Kodak images (raises `export.verify.ExportVerificationError` on any failure)."""
    import onnx
    import torch

    if opset < 17:
        raise ValueError(f"opset {opset} is too old: 17 or newer")
    unknown = set(precisions) - set(PRECISIONS)
    if unknown or "fp32" not in precisions:
        raise ValueError(f"precisions must include fp32 and be among {PRECISIONS}, got {precisions}")
    start = time.perf_counter()
    w = load_codec_weights(weights)
    out = Path(out_dir) if out_dir else paths.models_dir(w.weights_id)
    out.mkdir(parents=True, exist_ok=True)
    transforms = TransformSet(w)
    result = ExportResult(out, w.weights_id)
    base_meta = {"weights_id": w.weights_id, "version": roistream_version(), "opset": opset,
                 "torch": torch.__version__, "size_multiple": SIZE_MULTIPLE, "m": w.config.m, "n": w.config.n,
                 "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    manifest = {"weights_id": w.weights_id, "version": roistream_version(), "graph_format": GRAPH_FORMAT,
                "opset": opset, "files": {}}
    for graph in GRAPHS:
        module = transforms.analysis if graph == "analysis" else transforms.synthesis
        for precision in precisions:
            model = export_graph(_export_graph_module(module, half=precision == "fp16"), graph, w.config.m,
                                 opset, simplify)
            model.producer_name, model.producer_version = "roistream", roistream_version()
            model.doc_string = (f"roistream {graph} ({precision}); inputs {', '.join(INPUTS[graph])}; "
                                f"H and W multiples of {SIZE_MULTIPLE}")
            set_metadata(model, {**base_meta, "graph": graph, "precision": precision,
                                 "inputs": ",".join(INPUTS[graph]), "outputs": ",".join(OUTPUTS[graph])})
            path = out / model_filename(graph, precision)
            with paths.replacing(path) as tmp:
                onnx.save(model, str(tmp))
            key = path.stem
            result.files[key] = path
            manifest["files"][path.name] = {"graph": graph, "precision": precision, "sha256": sha256(path),
                                            "bytes": path.stat().st_size, "nodes": len(model.graph.node)}
    if verify:
        from .verify import verify_models

        result.verification = verify_models(out, w, n_images=verify_images, precisions=precisions)
        manifest["verification"] = result.verification
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    result.seconds = time.perf_counter() - start
    return result


def ensure_exported(weights=None, out_dir: Path | str | None = None) -> Path:
    """The folder of exported graphs for a weights file, exported (unverified) when its graphs are
    missing or from an older graph format. For benchmarks and tools that need the models."""
    w = load_codec_weights(weights)
    folder = Path(out_dir) if out_dir else paths.models_dir(w.weights_id)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        manifest = {}
    complete = all((folder / model_filename(g, p)).is_file() for g in GRAPHS for p in PRECISIONS)
    if not complete or manifest.get("graph_format") != GRAPH_FORMAT:
        print(f"exporting the ONNX graphs to {folder} ...", flush=True)
        export_onnx(w, folder, verify=False)
    return folder
