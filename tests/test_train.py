"""Training on real (tiny) data: it runs, checkpoints, resumes where it stopped, stops cleanly on
SIGTERM without losing steps, and exports weights that code and decode a frame."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from codec.api import Codec
from codec.data import list_images, load_rgb
from codec.geometry import block_grid_shape
from codec.train import TrainConfig, train
from codec.model import ModelConfig
from codec.plan import FramePlan
from codec.weights import load_weights
from codec import paths
from roistream.cli import main

TINY = ModelConfig(n=16, m=24)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> tuple[Path, Path]:
    """Two photos and two coco128-seg images with their instance labels."""
    root = tmp_path_factory.mktemp("data")
    photos = root / "photos"
    photos.mkdir()
    for p in list_images(paths.photos_dir())[:2]:
        shutil.copy(p, photos / p.name)
    coco = root / "coco"
    for p in sorted((paths.coco_dir() / "images" / "train2017").glob("*.jpg"))[:2]:
        for kind, name in (("images", p.name), ("labels", p.stem + ".txt")):
            src = paths.coco_dir() / kind / "train2017" / name
            (coco / kind / "train2017").mkdir(parents=True, exist_ok=True)
            shutil.copy(src, coco / kind / "train2017" / name)
    return photos, coco


def _config(out: Path, data: tuple[Path, Path], steps: int, compile: bool = False) -> TrainConfig:
    return TrainConfig(out=out, steps=steps, batch=2, crop=64, photos=data[0], coco=data[1], checkpoint_minutes=60,
                       compile=compile)


def test_train_resume_and_code_with_the_result(tmp_path, tiny_data, small_image):
    out = tmp_path / "run"
    train(_config(out, tiny_data, 3, compile=True), TINY)  # the compiled path, as `roistream train` runs
    first = torch.load(out / "checkpoint.pt", weights_only=False)
    assert first["step"] == 3
    weights_path = train(_config(out, tiny_data, 5), TINY)  # resumes at step 3
    second = torch.load(out / "checkpoint.pt", weights_only=False)
    assert second["step"] == 5
    changed = [k for k, v in first["model"].items() if not torch.equal(v, second["model"][k])]
    assert changed, "resumed training did not update the model"
    assert (out / "log.csv").read_text().splitlines()[0].startswith("step,loss,bpp")

    weights = load_weights(weights_path)
    assert weights.notes["steps"] == 5 and weights.config.m == TINY.m
    codec = Codec(weights)
    h, w = small_image.shape[:2]
    group_map = np.zeros(block_grid_shape(h, w), np.int32)
    group_map[1:3, 1:4] = 1
    frame = codec.encode(small_image, FramePlan.from_groups(group_map, {0: 0.2, 1: 0.9}))
    decoded = codec.decode(frame.SerializeToString())
    assert decoded.image.shape == small_image.shape
    assert sorted(decoded.groups) == [0, 1] and not decoded.failures


def test_sigterm_checkpoints_before_stopping(tmp_path, tiny_data):
    out = tmp_path / "run"
    script = (
        "import sys; from pathlib import Path; from codec.train import TrainConfig, train; "
        "from codec.model import ModelConfig; "
        f"train(TrainConfig(out=Path({str(out)!r}), steps=10**6, batch=2, crop=64, photos=Path({str(tiny_data[0])!r}), "
        f"coco=Path({str(tiny_data[1])!r}), checkpoint_minutes=60, compile=False), ModelConfig(n=16, m=24))"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=paths.SOURCE_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / "log.csv").exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        time.sleep(3)  # let it take some steps
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    state = torch.load(out / "checkpoint.pt", weights_only=False)
    assert state["step"] > 0
    assert f"checkpoint at step {state['step']}, stopping" in output
    assert load_weights(out / "weights.npz").notes["steps"] == state["step"]


def test_widened_transforms_code_as_before_then_train_and_resume_at_their_size(tmp_path, tiny_data, small_image):
    """--widen: g_a / g_s grow from 16 to 24 channels computing the same function; training from the
    grown model runs, its checkpoint resumes at 24, and the exported weights code a frame."""
    from codec.model import RoiCodecModel, widen_transforms
    from codec.weights import export_weights

    torch.manual_seed(0)
    small = RoiCodecModel(TINY).eval()
    wide = widen_transforms(small, 24).eval()
    assert wide.config.transform_channels == 24 and wide.g_a.net[0].out_channels == 24
    x = torch.rand(1, 3, 64, 64)
    mask, q = torch.ones(1, 1, 4, 4), torch.tensor([0.7])
    with torch.no_grad():
        (y0, z0), (y1, z1) = small.analyze(x, mask, q), wide.analyze(x, mask, q)
        assert torch.allclose(y0, y1, atol=1e-4, rtol=1e-3) and torch.allclose(z0, z1, atol=1e-4, rtol=1e-3)
        assert torch.allclose(small.synthesize(y0, q), wide.synthesize(y0, q), atol=1e-4)
    with pytest.raises(ValueError, match="cannot widen"):
        widen_transforms(small, 16)

    init = export_weights(small, tmp_path / "small.npz", notes={"steps": 0})
    out = tmp_path / "wide"
    cfg = _config(out, tiny_data, 2)
    cfg.init, cfg.widen = init, 24
    train(cfg)
    assert torch.load(out / "checkpoint.pt", weights_only=False)["model_config"] == {"n": 16, "m": 24, "nt": 24}
    cfg.steps, cfg.init, cfg.widen = 3, None, 0  # resumes from the checkpoint, at its own size
    weights = load_weights(train(cfg))
    assert weights.notes["steps"] == 3 and weights.config.transform_channels == 24
    codec = Codec(weights)
    frame = codec.encode(small_image, FramePlan.uniform(*small_image.shape[:2], 0.5))
    assert codec.decode(frame.SerializeToString()).image.shape == small_image.shape
    with pytest.raises(ValueError, match="--init"):
        train(TrainConfig(out=tmp_path / "bad", widen=24))


def test_packed_data_trains_where_only_the_training_dependencies_exist(tmp_path, tiny_data, capsys):
    """`roistream pack-data` writes the shared layout (photos as JPEG, coco copied), steps its JPEG
    quality down to fit a size budget, and `ROISTREAM_SHARED=PACK roistream train` trains on it in
    a Python where the coding, crypto, detector and benchmark-metric packages cannot be imported
    (as on a GPU machine that only has torch)."""
    from codec.datapack import pack_training_data

    photos, coco = tiny_data
    full = pack_training_data(tmp_path / "full", photos, coco, max_side=256)
    assert (full.photos, full.coco_images, full.jpeg_quality) == (2, 2, 90)
    packed = sorted((tmp_path / "full" / "data" / "photos").iterdir())
    assert [p.suffix for p in packed] == [".jpg", ".jpg"]
    assert all(max(load_rgb(p).shape[:2]) == 256 for p in packed)
    assert sorted(p.name for p in (tmp_path / "full" / "data" / "coco128-seg" / "labels" / "train2017").iterdir()) \
        == sorted(p.name for p in (coco / "labels" / "train2017").iterdir())

    budget_mb = (full.bytes - 1) / 2**20  # one byte short of quality 90: the pack must step down
    assert main(["pack-data", "-o", str(tmp_path / "pack"), "--photos", str(photos), "--coco", str(coco),
                 "--max-side", "256", "--max-mb", str(budget_mb)]) == 0
    small = json.loads(capsys.readouterr().out)
    assert small["jpeg_quality"] < 90 and small["photos"] == 2
    assert sum(p.stat().st_size for p in (tmp_path / "pack").rglob("*") if p.is_file()) <= budget_mb * 2**20
    with pytest.raises(ValueError, match="do not fit"):
        pack_training_data(tmp_path / "none", photos, coco, max_side=256, max_mb=0.01)

    blocked = ["constriction", "cryptography", "ultralytics", "pytorch_msssim"]
    script = (f"import sys; sys.modules.update(dict.fromkeys({blocked!r})); from roistream.cli import main; "
              f"sys.exit(main(['train', '--out', {str(tmp_path / 'run')!r}, '--steps', '2', '--batch', '2', "
              f"'--crop', '64', '--no-compile']))")
    env = {**os.environ, "ROISTREAM_SHARED": str(tmp_path / "pack")}
    done = subprocess.run([sys.executable, "-c", script], cwd=paths.SOURCE_ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert load_weights(tmp_path / "run" / "weights.npz").notes["steps"] == 2
