"""Training: `roistream train`.

Loss over a batch of single-group samples (each the group exactly as the encoder sees it):
    sum_b [lambda(q_b) * 255^2 * SSE_b / 3 + bits_b] / sum_b pixels_b
which is the frame objective "sum over groups of lambda(q_k) MSE_k + total rate" per pixel.
Rate uses additive noise, distortion straight-through rounding (mixed quantization); the hyper-
synthesis is fake-quantized, so the saved model is the one that codes. Transforms run under bf16
autocast on CPU (fast where the CPU has BF16 units), the entropy model and loss in fp32.
"""

from __future__ import annotations

import csv
import math
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import paths
from .data import GroupSampler, list_images, load_coco, load_rgb, MAX_SIDE
from .gain import interpolate_lambda
from .geometry import BLOCK
from .model import ModelConfig, RoiCodecModel, widen_transforms


@dataclass
class TrainConfig:
    out: Path
    steps: int = 100_000
    batch: int = 8
    crop: int = 128
    lr: float = 1e-4
    warm_lr: float = 3e-4  # used for the first 10% of steps
    final_lr: float = 2e-5  # used for the last 10% of steps
    seed: int = 0
    checkpoint_minutes: float = 10.0
    bf16: bool = True
    compile: bool = True  # torch.compile the model: ~1.1-1.3x faster CPU steps after a 1-2 minute compile
    device: str = "auto"
    init: Path | None = None  # weights file to start from when there is no checkpoint yet
    widen: int = 0  # with init: grow the hidden layers of g_a / g_s to this many channels first
    photos: Path | None = None  # photo folder (default ../shared/data/photos)
    coco: Path | None = None  # coco128-seg root with images/ and labels/ (default ../shared/data/coco128-seg)


def rate_distortion_loss(out: dict[str, torch.Tensor], x: torch.Tensor, pixel_mask: torch.Tensor,
                         q: torch.Tensor) -> dict[str, torch.Tensor]:
    bits_y = (-torch.log2(out["y_likelihood"]) * out["y_mask"]).sum(dim=(1, 2, 3))
    bits_z = (-torch.log2(out["z_likelihood"]) * out["z_mask"]).sum(dim=(1, 2, 3))
    sse = ((out["x_hat"] - x) ** 2 * pixel_mask).sum(dim=(1, 2, 3)) / 3
    pixels = pixel_mask.sum(dim=(1, 2, 3))
    lam = interpolate_lambda(q)
    total_pixels = pixels.sum()
    loss = (lam * 255**2 * sse + bits_y + bits_z).sum() / total_pixels
    mse = sse.sum() / total_pixels
    return {"loss": loss, "bpp": (bits_y + bits_z).sum() / total_pixels, "mse": mse,
            "psnr": -10 * torch.log10(mse.clamp_min(1e-10))}


def _learning_rate(cfg: TrainConfig, step: int) -> float:
    if step < cfg.steps * 0.1:
        return cfg.warm_lr
    if step >= cfg.steps * 0.9:
        return cfg.final_lr
    return cfg.lr


def _batch(sampler: GroupSampler, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    imgs, masks = zip(*(sampler.sample() for _ in range(size)))
    x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float().div_(255.0)  # NHWC data: channels-last
    bm = torch.from_numpy(np.stack(masks)).float()[:, None]
    b, _, h, w = bm.shape
    pm = bm[:, :, :, None, :, None].expand(b, 1, h, BLOCK, w, BLOCK).reshape(b, 1, h * BLOCK, w * BLOCK)
    return (x * pm).contiguous(memory_format=torch.channels_last), bm, pm


def train(cfg: TrainConfig, model_config: ModelConfig = ModelConfig()) -> Path:
    """Train (or resume) into cfg.out; returns the path of the exported weights."""
    from .weights import export_weights, load_weights, model_from_weights

    device = torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if cfg.device == "auto" else cfg.device))
    cfg.out.mkdir(parents=True, exist_ok=True)
    ckpt_path = cfg.out / "checkpoint.pt"
    if cfg.widen and cfg.init is None:
        raise ValueError("widening (--widen) grows a trained model: give it with --init")
    torch.manual_seed(cfg.seed)
    step, rng = 0, np.random.default_rng(cfg.seed)
    state = torch.load(ckpt_path, map_location=device, weights_only=False) if ckpt_path.exists() else None
    if state is not None:  # a checkpoint knows its own model size (widened runs included)
        model = RoiCodecModel(ModelConfig(**state["model_config"]))
    elif cfg.init is not None:
        init = load_weights(cfg.init)
        model = model_from_weights(init)
        step = int(init.notes.get("steps", 0))  # continue the learning-rate schedule where it stopped
        if cfg.widen:
            model = widen_transforms(model, cfg.widen, seed=cfg.seed)
    else:
        model = RoiCodecModel(model_config)
    model = model.to(device, memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step = state["step"]
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
    photos = [load_rgb(p, MAX_SIDE) for p in list_images(cfg.photos or paths.photos_dir())]
    coco = load_coco(cfg.coco or paths.coco_dir())
    if not photos and not coco:
        raise ValueError(f"no training images in {cfg.photos or paths.photos_dir()} or {cfg.coco or paths.coco_dir()}")
    sampler = GroupSampler(photos, coco, cfg.crop, rng)
    log = TrainingLog(cfg.out / "log.csv")
    model.train()
    last_ckpt = time.monotonic()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16)
    step_model = model
    if cfg.compile:
        from torch import _dynamo

        _dynamo.config.suppress_errors = True  # a backend that cannot compile falls back to eager
        step_model = torch.compile(model)  # same parameters; checkpoints and exports use `model`
    bar = tqdm(total=cfg.steps, initial=step, mininterval=30, desc="train")

    def save() -> Path:
        with paths.replacing(ckpt_path) as tmp:
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                        "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                        "config": {**asdict(cfg), "out": str(cfg.out)}, "model_config": model.config.as_dict()}, tmp)
        return export_weights(model, cfg.out / "weights.npz", notes={"steps": step})

    stop_signal: list[int] = []  # SIGINT / SIGTERM: checkpoint, then stop (a stopped job loses nothing)
    previous = {sig: signal.signal(sig, lambda signum, _frame: stop_signal.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    bad_batches = 0
    try:
        while step < cfg.steps and not stop_signal:
            lr = _learning_rate(cfg, step)
            for group in opt.param_groups:
                group["lr"] = lr
            x, bm, pm = (t.to(device) for t in _batch(sampler, cfg.batch))
            metrics = _optimizer_step(step_model, opt, autocast, x, bm, pm, torch.rand(cfg.batch, device=device))
            if metrics is None:
                bad_batches += 1
                if bad_batches > 50:
                    raise FloatingPointError(f"50 batches in a row with non-finite loss or gradients at step {step}")
                continue
            bad_batches = 0
            step += 1
            bar.update(1)
            summary = log.add(step, metrics, lr)
            if summary:
                bar.set_postfix(summary)
            if time.monotonic() - last_ckpt > cfg.checkpoint_minutes * 60:
                save()
                last_ckpt = time.monotonic()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        bar.close()
        log.close()
    if stop_signal:
        print(f"signal {stop_signal[0]}: checkpoint at step {step}, stopping", flush=True)
    return save()


def _optimizer_step(model, opt, autocast, x: torch.Tensor, block_mask: torch.Tensor, pixel_mask: torch.Tensor,
                    q: torch.Tensor) -> dict[str, float] | None:
    """One Adam step on a batch; None (and no update) when the loss or the gradients are not finite."""
    with autocast:
        out = model(x, block_mask, q)
    metrics = rate_distortion_loss(out, x, pixel_mask, q)
    if not math.isfinite(metrics["loss"].item()):
        return None
    opt.zero_grad(set_to_none=True)
    metrics["loss"].backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    if not torch.isfinite(grad_norm):
        return None
    opt.step()
    return {k: metrics[k].item() for k in ("loss", "bpp", "mse", "psnr")}


class TrainingLog:
    """log.csv: means over every 100 steps, appended (a resumed run continues the same file)."""

    COLUMNS = ["step", "loss", "bpp", "mse", "psnr", "lr", "seconds"]
    EVERY = 100

    def __init__(self, path: Path):
        new = not path.exists()
        self._file = path.open("a", newline="")
        self._csv = csv.writer(self._file)
        if new:
            self._csv.writerow(self.COLUMNS)
        self._window: list[list[float]] = []
        self._start = time.monotonic()

    def add(self, step: int, metrics: dict[str, float], lr: float) -> dict[str, str] | None:
        """Record one step; every EVERY steps write a row and return it for the progress bar."""
        self._window.append([metrics[k] for k in ("loss", "bpp", "mse", "psnr")])
        if step % self.EVERY:
            return None
        loss, bpp, mse, psnr = np.mean(self._window, axis=0)
        self._window.clear()
        self._csv.writerow([step, *(f"{v:.5f}" for v in (loss, bpp, mse, psnr)), lr,
                            f"{time.monotonic() - self._start:.0f}"])
        self._file.flush()
        return {"loss": f"{loss:.3f}", "bpp": f"{bpp:.3f}", "psnr": f"{psnr:.2f}"}

    def close(self) -> None:
        self._file.close()
