"""Shared fixtures of the export tests: the codec's graphs exported once per test session."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

_EXPORTED: dict[str, Path] = {}


def export_once(weights) -> Path:
    """Export fp32 + fp16 graphs of `weights` once per process (unverified: tests verify explicitly)."""
    if weights.weights_id not in _EXPORTED:
        from export.onnx import export_onnx

        folder = Path(tempfile.mkdtemp(prefix="roistream-export-")) / "models"
        export_onnx(weights, folder, verify=False)
        _EXPORTED[weights.weights_id] = folder
    return _EXPORTED[weights.weights_id]


@pytest.fixture(scope="session")
def exported_models(codec) -> Path:
    return export_once(codec.weights)
