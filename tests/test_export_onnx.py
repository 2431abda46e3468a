"""ONNX export: graphs, metadata, parity with torch on Kodak, exact decodability, loud failures."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

from codec.runtime import RuntimeUnavailable
from codec.plan import FramePlan
from codec.runtime.models import INPUTS, OUTPUTS, ModelMismatchError, model_filename, read_metadata
from codec.runtime.onnxruntime_backend import OnnxRuntimeBackend
from codec.runtime.torch_backend import TorchBackend
from export.onnx import set_metadata
from export.verify import FP32_TOLERANCE, ExportVerificationError, kodak_images, verify_backend, verify_models
from tests.export_fixtures import exported_models  # noqa: F401  (fixture)


def test_graphs_have_dynamic_axes_opset_and_metadata(codec, exported_models):
    names = sorted(p.name for p in exported_models.glob("*.onnx"))
    assert names == ["analysis.onnx", "analysis_fp16.onnx", "synthesis.onnx", "synthesis_fp16.onnx"]
    for graph in ("analysis", "synthesis"):
        for precision in ("fp32", "fp16"):
            model = onnx.load(str(exported_models / model_filename(graph, precision)))
            onnx.checker.check_model(model)
            assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
            assert [i.name for i in model.graph.input] == list(INPUTS[graph])
            assert [o.name for o in model.graph.output] == list(OUTPUTS[graph])
            for value in list(model.graph.input) + list(model.graph.output):
                dims = value.type.tensor_type.shape.dim
                assert dims[0].dim_param == "batch", value.name
                assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # fp16 graphs keep fp32 I/O
                if len(dims) == 4:
                    assert dims[2].dim_param and dims[3].dim_param, value.name
            meta = read_metadata(exported_models / model_filename(graph, precision))
            assert meta["weights_id"] == codec.weights_id
            assert meta["graph"] == graph and meta["precision"] == precision and int(meta["opset"]) >= 17
            assert meta["version"]
            ops = {n.op_type for n in model.graph.node}
            assert "Conv" in ops and not ops & {"Round", "Floor"}  # float transforms only: no integer h_s
            if graph == "synthesis":  # g_s's transposed convolutions exported in sub-pixel form
                assert "DepthToSpace" in ops and "ConvTranspose" not in ops
            if precision == "fp16":
                assert "Cast" in ops
    manifest = json.loads((exported_models / "manifest.json").read_text())
    assert manifest["weights_id"] == codec.weights_id and len(manifest["files"]) == 4


@pytest.mark.slow
def test_onnxruntime_matches_torch_on_kodak_and_streams_decode_exactly(codec, exported_models):
    report = verify_models(exported_models, codec.weights, n_images=1)
    fp32, fp16 = report["fp32"], report["fp16"]
    assert fp32["passed"] and fp16["passed"]
    assert fp32["max_abs_diff"]["y"] <= 1e-4 and fp32["max_abs_diff"]["z"] <= 1e-4
    assert fp32["max_abs_diff"]["image"] <= 1e-4
    for r in (fp32, fp16):
        assert r["groups_checked"] == 3 and r["groups_exact"] == 3
    assert fp32["symbols_differing_from_torch"] <= fp32["symbols"] * 1e-4
    sizes = {tuple(e["size"]) for e in fp32["images"]}
    assert (768, 512) in sizes and any(e["batch"] == 2 for e in fp32["images"])


def test_dynamic_sizes_and_batch_match_torch(codec, exported_models, small_image):
    backend = OnnxRuntimeBackend(exported_models, ["cpu"], weights_id=codec.weights_id)
    torch_be = codec.coder.backend
    # latents against the analysis in float64, as `roistream export verify` does: torch's own float32
    # (oneDNN) analysis is itself about 1e-4 away from it, so comparing with it would test torch's rounding
    exact_be = TorchBackend(codec.coder.transforms, dtype=torch.float64)
    gain, inverse = codec.coder.transforms.gain_vectors(200)
    from codec.geometry import model_input

    base = model_input(small_image)  # 256x256
    for b, h, w in ((1, 64, 64), (3, 128, 64), (2, 192, 256)):
        x = np.ascontiguousarray(np.stack([np.roll(base, k * 7, axis=2)[:, :h, :w] for k in range(b)]))
        cells = np.ones((b, 1, h // 16, w // 16), np.float32)
        cells[:, :, : h // 32] = 0  # a partial group: masked cells
        g = np.repeat(gain[None], b, 0)
        y, z = backend.analyze(x, cells, g)
        y_ref, z_ref = exact_be.analyze(x, cells, g)
        assert y.shape == y_ref.shape == (b, codec.weights.config.m, h // 16, w // 16)
        assert z.shape == z_ref.shape
        assert np.abs(y - y_ref).max() <= FP32_TOLERANCE and np.abs(z - z_ref).max() <= FP32_TOLERANCE
        y_hat = np.rint(y_ref)
        ig = np.repeat(inverse[None], b, 0)
        img = backend.synthesize(y_hat, ig)
        assert img.shape == (b, 3, h, w)
        assert np.abs(img - torch_be.synthesize(y_hat, ig)).max() <= FP32_TOLERANCE


def test_stream_from_onnx_encoder_decodes_through_standard_decoder(codec, exported_models, small_image):
    from codec.api import Codec
    from tests.conftest import three_group_map

    onnx_codec = Codec(codec.weights, backend=OnnxRuntimeBackend(exported_models, ["cpu"], weights_id=codec.weights_id))
    gm = three_group_map(*small_image.shape[:2])
    plan = FramePlan.from_groups(gm, {0: 0.3, 1: 0.8, 2: 0.6})
    data = onnx_codec.encode(small_image, plan).SerializeToString()
    ours = codec.decode(data)  # the standard (torch) decoder
    ref = codec.decode(codec.encode(small_image, plan).SerializeToString())
    assert sorted(ours.groups) == [0, 1, 2]
    # y differs from torch by < 1e-4, so at most a handful of symbols round the other way
    diff = np.abs(ours.image.astype(int) - ref.image.astype(int))
    assert (diff > 2).mean() < 1e-3


def test_tampered_model_fails_verification_loudly(codec, exported_models, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(exported_models, bad)
    model = onnx.load(str(bad / "analysis.onnx"))
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    init = next(i for i in model.graph.initializer if i.name == conv.input[1])
    w = numpy_helper.to_array(init).copy()
    w.flat[0] += 0.05  # one weight of the first convolution
    init.CopyFrom(numpy_helper.from_array(w, init.name))
    onnx.save(model, str(bad / "analysis.onnx"))
    with pytest.raises(ExportVerificationError, match=r"max \|y - torch\|"):
        verify_models(bad, codec.weights, n_images=1, precisions=("fp32",))


def test_backend_refuses_models_of_other_weights(codec, exported_models, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(exported_models, other)
    model = onnx.load(str(other / "analysis.onnx"))
    set_metadata(model, {"weights_id": "0123456789abcdef"})
    onnx.save(model, str(other / "analysis.onnx"))
    with pytest.raises(ModelMismatchError, match="0123456789abcdef"):
        OnnxRuntimeBackend(other, weights_id=codec.weights_id)
    del model.metadata_props[:]
    onnx.save(model, str(other / "analysis.onnx"))
    with pytest.raises(ModelMismatchError, match="no roistream metadata"):
        OnnxRuntimeBackend(other, weights_id=codec.weights_id)
    with pytest.raises(RuntimeUnavailable, match="roistream export onnx"):
        OnnxRuntimeBackend(tmp_path / "nowhere", weights_id=codec.weights_id)


def test_backend_reports_the_provider_the_session_uses(codec, exported_models):
    backend = OnnxRuntimeBackend(exported_models, weights_id=codec.weights_id)  # TensorRT > CUDA > CPU
    available = ort.get_available_providers()
    for graph, sess in backend.sessions.items():
        assert backend.providers[graph] == sess.get_providers()[0]
    assert backend.provider == backend.sessions["analysis"].get_providers()[0]
    expected = next(p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
                    if p in available)
    if expected == "CPUExecutionProvider":
        assert backend.provider == "CPUExecutionProvider" and backend.name == "onnxruntime-cpu-fp32"
    if "CUDAExecutionProvider" not in available:
        with pytest.raises(RuntimeUnavailable, match="CUDAExecutionProvider"):
            OnnxRuntimeBackend(exported_models, ["cuda"], weights_id=codec.weights_id, strict=True)


@pytest.mark.gpu
@pytest.mark.parametrize("provider", ["CUDAExecutionProvider", "TensorrtExecutionProvider"])
def test_gpu_providers_for_real(codec, exported_models, provider):
    available = ort.get_available_providers()
    if provider not in available:
        pytest.skip(f"{provider} is not in this onnxruntime's providers {available} (CPU-only onnxruntime; "
                    f"`pip install roistream[gpu]` on an NVIDIA machine)")
    if provider == "TensorrtExecutionProvider":
        from codec.runtime.tensorrt_backend import tensorrt_status

        ok, reason = tensorrt_status()
        if not ok:
            pytest.skip(reason)
    try:
        backend = OnnxRuntimeBackend(exported_models, [provider], weights_id=codec.weights_id, strict=True)
    except RuntimeUnavailable as exc:  # e.g. listed by onnxruntime-gpu but no CUDA device / libraries
        pytest.skip(f"{provider} listed but cannot start here: {exc}")
    assert backend.sessions["analysis"].get_providers()[0] == provider  # really runs there
    report = verify_backend(backend, codec.weights, images=kodak_images(1), tolerance=1e-3)
    assert report["groups_exact"] == report["groups_checked"] == 3


def test_cli_export_without_verification(tmp_path, codec):
    from roistream.cli import main

    out = tmp_path / "m"
    assert main(["export", "onnx", "--out", str(out), "--no-fp16", "--no-verify"]) == 0
    assert sorted(p.name for p in out.glob("*.onnx")) == ["analysis.onnx", "synthesis.onnx"]
    assert read_metadata(out / "analysis.onnx")["weights_id"] == codec.weights_id
    with pytest.raises(ValueError, match="opset"):
        from export.onnx import export_onnx

        export_onnx(codec.weights, tmp_path / "x", opset=13, verify=False)
