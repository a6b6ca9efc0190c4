"""How long a training epoch takes per model on this machine, written to results/bench_train.json.

    python -m fer_core bench-train [--model NAME ...] [--steps 12] [--out results/bench_train.json]

Runs the real training step (`train_one_epoch`: augmentation, autocast, backward, optimizer,
scheduler) on synthetic batches of the configured size and scales the measured step time to
one FER2013 epoch (28,709 training images). Used to plan how many epochs fit a CPU budget.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data import Split
from .models import build_model
from .provenance import utc_timestamp
from .runtime import cpu_has_native_bf16, default_device
from .schedule import Schedule
from .train import TrainConfig, make_optimizer, train_one_epoch

FER_TRAIN_IMAGES = 28_709
BENCH_SCHEMA = "fer_core.bench_train/1"
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "results" / "bench_train.json"


def time_epoch(name: str, steps: int = 12, warmup: int = 3, batch_size: int = 64, **arch: Any) -> dict[str, Any]:
    """Seconds per training step of `name` (after `warmup` steps), scaled to a FER2013 epoch;
    `arch`: registry.ARCH_OPTIONS of the network timed (e.g. output_stride=8)."""
    cfg = TrainConfig(model=name, epochs=1, batch_size=batch_size, progress=False, **arch).resolved()
    device = default_device(cfg.device)
    rng = np.random.default_rng(0)
    n = (warmup + steps) * batch_size
    split = Split(rng.integers(0, 256, (n, 48, 48), dtype=np.uint8), rng.integers(0, 7, n), [""] * n)
    torch.manual_seed(0)
    model = build_model(name, **cfg.arch()).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, cfg)
    scheduler = Schedule(optimizer, "plateau", cfg.lr, 1, 1)  # the lr stays put within an epoch

    def run(k: int) -> tuple[float, float]:
        part = split.subset(np.arange(k * batch_size))
        stats = train_one_epoch(model, part, optimizer, scheduler, cfg, 0, device)
        return stats["seconds"], stats["cpu_seconds"]

    run(warmup)
    wall, cpu = run(steps)
    per_step = wall / steps
    epoch_steps = FER_TRAIN_IMAGES // batch_size
    return {
        "model": name,
        "arch": cfg.arch(),
        "batch_size": batch_size,
        "steps_timed": steps,
        "seconds_per_step": per_step,
        "cpu_seconds_per_step": cpu / steps,
        "minutes_per_epoch": per_step * epoch_steps / 60,
        "precision": _precision(cfg, device),
        "channels_last": cfg.channels_last,
        "device": str(device),
        "threads": torch.get_num_threads(),
    }


def _precision(cfg: TrainConfig, device: torch.device) -> str:
    """What `runtime.autocast` chose, in words."""
    if cfg.precision == "fp32":
        return "fp32"
    if device.type == "cuda":
        return "fp16 autocast"
    return "bf16 autocast" if cpu_has_native_bf16() else "fp32"


def time_models(names: Iterable[str], steps: int = 12, batch_size: int = 64, **arch: Any) -> dict[str, Any]:
    """`time_epoch` of each model (a line printed as each is timed), as the bench_train.json record."""
    rows = []
    for name in names:
        row = time_epoch(name, steps, batch_size=batch_size, **arch)
        print(f"{name}: {row['seconds_per_step'] * 1000:.0f} ms/step -> {row['minutes_per_epoch']:.2f} min/epoch")
        rows.append(row)
    return {
        "schema": BENCH_SCHEMA,
        "created_utc": utc_timestamp(),
        "train_images_per_epoch": FER_TRAIN_IMAGES,
        "models": rows,
        "environment": {
            "torch": str(torch.__version__),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "native_bf16": cpu_has_native_bf16(),
        },
    }
