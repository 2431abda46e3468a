"""Training: `roistream train`.

Loss over a batch of single-group samples (each the group exactly as the encoder sees it):
    sum_b [lambda(q_b) * 255^2 * SSE_b / 3 + bits_b] / sum_b pixels_b
which is the frame objective "sum over groups of lambda(q_k) MSE_k + total rate" per pixel.
Rate uses additive noise, distortion straight-through rounding (mixed quantization); the hyper-
synthesis is fake-quantized, so the saved model is the one that codes. Transforms run under bf16
autocast on CPU (about 3x faster on AVX512-BF16), the entropy model and loss in fp32.
"""

from __future__ import annotations

import csv
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from roistream import paths

from .data import GroupSampler, list_images, load_coco, load_rgb, MAX_SIDE
from .gain import interpolate_lambda
from .geometry import BLOCK
from .model import ModelConfig, RoiCodecModel


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
    device: str = "auto"
    init: Path | None = None  # weights file to start from when there is no checkpoint yet


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
    x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float().contiguous(memory_format=torch.channels_last) / 255.0
    bm = torch.from_numpy(np.stack(masks)).float()[:, None]
    pm = bm.repeat_interleave(BLOCK, 2).repeat_interleave(BLOCK, 3)
    return x * pm, bm, pm


def train(cfg: TrainConfig, model_config: ModelConfig = ModelConfig()) -> Path:
    """Train (or resume) into cfg.out; returns the path of the exported weights."""
    from .weights import export_weights, load_weights, model_from_weights

    device = torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if cfg.device == "auto" else cfg.device))
    cfg.out.mkdir(parents=True, exist_ok=True)
    ckpt_path = cfg.out / "checkpoint.pt"
    torch.manual_seed(cfg.seed)
    step, rng = 0, np.random.default_rng(cfg.seed)
    if cfg.init is not None and not ckpt_path.exists():
        init = load_weights(cfg.init)
        model = model_from_weights(init).to(device)
        step = int(init.notes.get("steps", 0))  # continue the learning-rate schedule where it stopped
    else:
        model = RoiCodecModel(model_config).to(device)
    model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    if ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step = state["step"]
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
    photos = [load_rgb(p, MAX_SIDE) for p in list_images(paths.photos_dir())]
    sampler = GroupSampler(photos, load_coco(paths.coco_dir()), cfg.crop, rng)
    log_path = cfg.out / "log.csv"
    new_log = not log_path.exists()
    log_file = log_path.open("a", newline="")
    log = csv.writer(log_file)
    if new_log:
        log.writerow(["step", "loss", "bpp", "mse", "psnr", "lr", "seconds"])
    model.train()
    last_ckpt = time.monotonic()
    start = time.monotonic()
    window: list[list[float]] = []
    bad_steps = 0
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16)
    bar = tqdm(total=cfg.steps, initial=step, mininterval=30, desc="train")

    def save() -> Path:
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                    "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                    "config": {**asdict(cfg), "out": str(cfg.out)}, "model_config": model_config.as_dict()},
                   ckpt_path.with_suffix(".tmp"))
        ckpt_path.with_suffix(".tmp").replace(ckpt_path)
        return export_weights(model, cfg.out / "weights.npz", notes={"steps": step})

    while step < cfg.steps:
        for group in opt.param_groups:
            group["lr"] = _learning_rate(cfg, step)
        x, bm, pm = (t.to(device) for t in _batch(sampler, cfg.batch))
        q = torch.rand(cfg.batch, device=device)
        with autocast:
            out = model(x, bm, q)
        metrics = rate_distortion_loss(out, x, pm, q)
        if bad_steps > 50:
            raise FloatingPointError(f"50 batches in a row with non-finite loss or gradients at step {step}")
        if not math.isfinite(metrics["loss"].item()):
            bad_steps += 1
            continue
        opt.zero_grad(set_to_none=True)
        metrics["loss"].backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        if not torch.isfinite(grad_norm):
            bad_steps += 1
            continue
        opt.step()
        bad_steps = 0
        step += 1
        bar.update(1)
        window.append([metrics[k].item() for k in ("loss", "bpp", "mse", "psnr")])
        if step % 100 == 0:
            mean = np.mean(window, axis=0)
            window.clear()
            log.writerow([step, *[f"{v:.5f}" for v in mean], opt.param_groups[0]["lr"],
                          f"{time.monotonic() - start:.0f}"])
            log_file.flush()
            bar.set_postfix(loss=f"{mean[0]:.3f}", bpp=f"{mean[1]:.3f}", psnr=f"{mean[3]:.2f}")
        if time.monotonic() - last_ckpt > cfg.checkpoint_minutes * 60:
            save()
            last_ckpt = time.monotonic()
    bar.close()
    log_file.close()
    return save()
