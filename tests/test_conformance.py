"""The committed conformance vectors decode to their manifest's digests on every runtime here.

Latents must be bit-exact on every runtime; pixels bit-exact on the reference runtime (torch) and
within `PIXEL_TOLERANCE` elsewhere. A change to the codec, the entropy coder or the bitstream that
alters what an old stream decodes to fails here first.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from codec import conformance
from codec.runtime import RuntimeUnavailable, make_codec
from tests.export_fixtures import exported_models  # noqa: F401 - fixture

VECTORS = Path(__file__).resolve().parent / "vectors"


def test_vectors_cover_the_bitstream_features():
    manifest = json.loads((VECTORS / conformance.MANIFEST).read_text())
    vectors = manifest["vectors"]
    assert set(vectors) == {"intra", "roi", "encrypted", "background_quarter"}
    assert vectors["encrypted"]["encrypted"] and len(vectors["roi"]["groups"]) == 4
    assert sum(v["bytes"] for v in vectors.values()) < 300_000


def test_reference_runtime_decodes_every_vector_bit_exactly(codec):
    results = conformance.check(VECTORS, codec)
    assert results and all(r.latents_equal and r.pixels_equal for r in results), results


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_onnxruntime_latents_bit_exact_pixels_within_tolerance(exported_models, precision):
    try:
        codec, runtime = make_codec("onnxruntime", None, exported_models, precision=precision)
    except RuntimeUnavailable as exc:
        pytest.skip(f"onnxruntime unavailable: {exc}")
    results = conformance.check(VECTORS, codec)
    assert all(r.latents_equal for r in results), runtime
    assert all(r.ok(reference=False) for r in results), [(r.vector, r.group, r.max_pixel_diff) for r in results]


def test_tensorrt_decodes_the_vectors(exported_models):
    try:
        codec, _ = make_codec("tensorrt", None, exported_models)
    except RuntimeUnavailable as exc:
        pytest.skip(f"TensorRT is not usable here (no NVIDIA GPU / tensorrt package): {exc}")
    assert all(r.ok(reference=False) for r in conformance.check(VECTORS, codec))


def test_a_changed_vector_is_reported(codec, tmp_path):
    for f in VECTORS.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    manifest = json.loads((tmp_path / conformance.MANIFEST).read_text())
    manifest["vectors"]["roi"]["groups"]["1"]["latents"] = "0" * 64
    (tmp_path / conformance.MANIFEST).write_text(json.dumps(manifest))
    bad = [r for r in conformance.check(tmp_path, codec) if not r.ok(reference=True)]
    assert [(r.vector, r.group) for r in bad] == [("roi", "1")]
    out = subprocess.run([sys.executable, "-m", "roistream.cli", "conformance", "check", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 1 and json.loads(out.stdout)["failures"] == ["roi group 1"]
