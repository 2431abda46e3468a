"""A plain (not editable) `pip install` of the checkout runs `roistream encode` and `decode` from
outside the checkout: the shipped weights travel as package data and every subpackage is in the
wheel. The fresh venv reuses this interpreter's site-packages for the dependencies (a .pth file),
so nothing is downloaded; roistream itself comes only from the fresh install."""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from codec import paths

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "roistream", "codec", "edge", "cloud", "proto", "export",
           "bench")


def _venv(tmp: Path) -> Path:
    """A venv whose dependencies are this interpreter's, without this checkout on its path."""
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    own = subprocess.run([str(python), "-c", "import site; print(site.getsitepackages()[0])"], check=True,
                         capture_output=True, text=True, env=_clean_env()).stdout.strip()
    # plain path lines: the editable install's finder in those folders is not activated
    Path(own, "dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return python


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


@pytest.mark.slow
def test_plain_install_encodes_and_decodes_outside_the_checkout(tmp_path):
    image_path = paths.kodak_dir() / "kodim23.png"
    if not image_path.is_file():
        pytest.skip(f"no Kodak image at {image_path} (set ROISTREAM_SHARED)")
    source = tmp_path / "source"  # a copy, so the build leaves nothing in the checkout
    source.mkdir()
    for name in SOURCES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, source / name, ignore=shutil.ignore_patterns("__pycache__", "results"))
        else:
            shutil.copy2(src, source / name)
    python = _venv(tmp_path)
    env = _clean_env()
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--no-index", str(source)], check=True, timeout=600, env=env)
    shutil.rmtree(source)  # what runs below can only be the installed copy
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = subprocess.run([str(python), "-c", "import codec.paths as p; print(p.DEFAULT_WEIGHTS)"], cwd=work,
                           env=env, check=True, capture_output=True, text=True).stdout.strip()
    assert Path(where).is_file() and Path(where).is_relative_to(tmp_path / "venv"), where
    web = subprocess.run([str(python), "-c", "import cloud.web.app as a; print(a.HERE)"], cwd=work, env=env,
                         check=True, capture_output=True, text=True).stdout.strip()
    assert Path(web).is_relative_to(tmp_path / "venv"), web  # the viewer's pages travel as package data
    assert (Path(web) / "templates" / "live.html").is_file() and (Path(web) / "static" / "live.js").is_file()
    roistream = str(python.parent / "roistream")
    encoded = subprocess.run([roistream, "encode", str(image_path), "-o", "frame.rst", "--quality", "0.6"], cwd=work,
                             env=env, check=True, capture_output=True, text=True, timeout=300)
    assert json.loads(encoded.stdout)["bytes"] == (work / "frame.rst").stat().st_size > 0
    subprocess.run([roistream, "decode", "frame.rst", "-o", "out.png"], cwd=work, env=env, check=True,
                   capture_output=True, text=True, timeout=300)
    import cv2

    original = cv2.imread(str(image_path))
    decoded = cv2.imread(str(work / "out.png"))
    assert decoded is not None and decoded.shape == original.shape
    mse = np.mean((decoded.astype(np.float64) - original.astype(np.float64)) ** 2)
    assert 10 * np.log10(255**2 / mse) > 28  # a real decode at q 0.6, not a black or shifted frame
