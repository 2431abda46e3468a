"""TensorRT export: lazy import and explicit errors everywhere; real engine builds where TensorRT and a
CUDA device are present (they skip with the reason otherwise)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from codec.runtime import RuntimeUnavailable
from codec.runtime.models import FrameProfile, engine_filename
from codec.runtime.tensorrt_backend import import_tensorrt, tensorrt_status
from export.tensorrt import parse_size
from tests.export_fixtures import exported_models  # noqa: F401  (fixture)

TRT_OK, TRT_REASON = tensorrt_status()


def test_export_modules_import_without_tensorrt():
    code = ("import sys, codec.runtime, codec.runtime.tensorrt_backend, codec.runtime.onnxruntime_backend, "
            "export.tensorrt, export.cli, export.detector; "
            "assert 'tensorrt' not in sys.modules, 'tensorrt imported eagerly'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_profile_and_sizes_are_validated():
    assert parse_size("1088x1920") == (1088, 1920)
    for bad in ("1080x1920", "abc", "0x64"):
        with pytest.raises(ValueError):
            parse_size(bad)
    with pytest.raises(ValueError, match="min <= opt <= max"):
        FrameProfile(min=(128, 128), opt=(64, 64), max=(256, 256))
    p = FrameProfile(min=(64, 64), opt=(512, 768), max=(768, 768), batch=(1, 1, 2))
    shapes = p.input_shapes("analysis", 160)
    assert shapes["x"] == ((1, 3, 64, 64), (1, 3, 512, 768), (2, 3, 768, 768))
    assert shapes["cell_mask"][2] == (2, 1, 48, 48) and shapes["gain"][0] == (1, 160)
    assert p.input_shapes("synthesis", 160)["y_hat"][1] == (1, 160, 32, 48)
    assert p.allows(768, 512) and not p.allows(1088, 64)
    assert engine_filename("analysis", "fp16") == "analysis_fp16.engine"


@pytest.mark.skipif(TRT_OK, reason="TensorRT is present here: the real tests below cover it")
def test_absent_tensorrt_is_an_explicit_error(tmp_path):
    with pytest.raises(RuntimeUnavailable, match="tensorrt|CUDA"):
        import_tensorrt()
    from roistream.cli import main

    assert main(["export", "tensorrt", "--models", str(tmp_path)]) == 2
    from codec.runtime import load

    with pytest.raises(RuntimeUnavailable):
        load("tensorrt", models_dir=tmp_path)


def test_gpu_benchmark_exits_cleanly_without_cuda(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: bench/gpu.py measures for real (run it by hand)")
    from bench import gpu

    assert gpu.main([]) == 0
    assert "skipping" in capsys.readouterr().out.lower()


@pytest.mark.gpu
@pytest.mark.skipif(not TRT_OK, reason=f"TensorRT not usable here: {TRT_REASON}")
def test_build_engines_and_verify_for_real(codec, exported_models, tmp_path):
    from codec.runtime.tensorrt_backend import TensorRTBackend
    from export.tensorrt import build_engines
    from export.verify import kodak_images, verify_backend

    profile = FrameProfile(min=(64, 64), opt=(512, 768), max=(768, 768), batch=(1, 1, 2))
    report = build_engines(exported_models, tmp_path, weights=codec.weights, profile=profile, verify=True,
                           verify_images=1)
    assert set(report["engines"]) == {"analysis_fp16.engine", "synthesis_fp16.engine", "analysis_fp32.engine",
                                      "synthesis_fp32.engine"}
    for precision in ("fp16", "fp32"):
        v = report["verification"][precision]
        assert v["passed"] and v["groups_exact"] == v["groups_checked"] == 3
    backend = TensorRTBackend(tmp_path, "fp16", weights_id=codec.weights_id)
    with pytest.raises(ValueError, match="profile"):
        import numpy as np

        backend.analyze(np.zeros((1, 3, 1088, 64), np.float32), np.ones((1, 1, 68, 4), np.float32),
                        np.ones((1, 160), np.float32))
    r = verify_backend(backend, codec.weights, images=kodak_images(1), tolerance=0.25)
    assert r["groups_exact"] == 3


@pytest.mark.gpu
@pytest.mark.skipif(not TRT_OK, reason=f"TensorRT not usable here: {TRT_REASON}")
def test_engines_of_other_weights_are_refused(codec, exported_models, tmp_path):
    import json

    from codec.runtime.models import ModelMismatchError
    from codec.runtime.tensorrt_backend import TensorRTBackend
    from export.tensorrt import build_engines

    profile = FrameProfile(min=(64, 64), opt=(256, 256), max=(512, 512))
    build_engines(exported_models, tmp_path, weights=codec.weights, precisions=("fp16",), profile=profile,
                  verify=False)
    side = tmp_path / "analysis_fp16.engine.json"
    meta = json.loads(side.read_text())
    meta["weights_id"] = "0" * 16
    side.write_text(json.dumps(meta))
    with pytest.raises(ModelMismatchError):
        TensorRTBackend(tmp_path, "fp16", weights_id=codec.weights_id)
