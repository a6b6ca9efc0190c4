"""Train a registered model on FER2013; select on val/ (PublicTest), never on test/.

    python -m fer_core train --model resnet18 [--data PATH] [--epochs N] [--out runs] [--resume]
    torchrun --nproc_per_node 2 -m fer_core train --model resnet18 ...   # DistributedDataParallel

Writes into OUT/MODEL/: `last.pt` (atomic, every epoch: everything needed to resume exactly),
`best.pt` (the epoch with the best val accuracy, no optimizer state) and `history.json`.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from . import __version__
from .atomic import write_atomic, write_json_atomic
from .augment import augment_batch, random_crop
from .checkpoint import FORMAT, architecture, load_checkpoint, load_weights, save_atomic, slim
from .config import AugmentConfig, TrainConfig
from .data import FERData, Split, load_fer2013
from .ema import WeightEMA
from .labels import EMOTIONS
from .models import build_model, count_parameters
from .preprocess import predict_proba
from .registry import DEFAULT_OUTPUT_STRIDE, get_spec
from .runtime import autocast, default_device, open_weights, torch_logits_fn
from .schedule import Schedule

SELECTION_SPLIT = "val"  # the split that chooses checkpoints; test/ is only ever reported


# ---------------------------------------------------------------- distributed helpers


def _dist_info() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _init_distributed(device: torch.device) -> None:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


# ---------------------------------------------------------------- the loop


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    # No weight decay on norms and biases: it only shrinks their scale, which BN undoes.
    decay, no_decay = [], []
    for p in model.parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; choose sgd or adamw")


def rank_batches(order: torch.Tensor, batch_size: int, rank: int = 0, world: int = 1) -> list[torch.Tensor]:
    """This process's batches of an epoch. Every rank draws the same `order`; global step s takes
    the `world` consecutive slices after s * world * batch_size, rank r the r-th, so ranks never
    share an image and all run the same number of steps (a trailing partial batch is dropped)."""
    steps = len(order) // (batch_size * world)
    return [order[(step * world + rank) * batch_size : (step * world + rank + 1) * batch_size] for step in range(steps)]


def epoch_generator(cfg: TrainConfig, epoch: int) -> torch.Generator:
    """All randomness of an epoch (order, augmentation, mixup) comes from its own seed."""
    return torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)


def train_one_epoch(
    model: nn.Module,
    train: Split,
    optimizer: torch.optim.Optimizer,
    scheduler: Schedule,
    cfg: TrainConfig,
    epoch: int,
    device: torch.device,
    scaler: torch.amp.GradScaler | None = None,
    soft: torch.Tensor | None = None,
    ema: WeightEMA | None = None,
) -> dict[str, float]:
    """One pass over the training set; returns mean loss and accuracy on augmented batches.

    `soft` (N, 7): a teacher's probabilities for each training image, distilled with weight
    `cfg.distill` (computed once on the clean image, so the student's augmented view and the
    teacher's differ: cheap, since no teacher runs during training)."""
    model.train()
    rank, world = _dist_info()
    g = epoch_generator(cfg, epoch)
    torch.manual_seed(cfg.seed * 1_000_003 + epoch + 7919 * rank)  # dropout, stochastic depth
    batches = rank_batches(torch.randperm(len(train), generator=g), cfg.batch_size, rank, world)
    aug = AugmentConfig.from_dict(cfg.augment)
    images = torch.from_numpy(train.images)
    labels = torch.from_numpy(train.labels)
    loss_sum = correct = seen = 0.0
    start, cpu_start = time.perf_counter(), time.process_time()
    bar = _progress(len(batches), f"epoch {epoch + 1}/{cfg.epochs}", cfg.progress and rank == 0)
    for idx in batches:
        x = images[idx].unsqueeze(1).float().div_(255.0)
        x = augment_batch(x, g, aug)
        if cfg.crop is not None:
            x = random_crop(x, cfg.crop, g)
        y = labels[idx]
        target = F.one_hot(y, len(EMOTIONS)).float()
        teacher = soft[idx] if soft is not None else None
        if cfg.mixup > 0:
            lam = float(torch.distributions.Beta(cfg.mixup, cfg.mixup).sample())
            perm = torch.randperm(len(x), generator=g)
            x = lam * x + (1 - lam) * x[perm]
            target = lam * target + (1 - lam) * target[perm]
            if teacher is not None:
                teacher = lam * teacher + (1 - lam) * teacher[perm]
        x, target, y = x.to(device), target.to(device), y.to(device)
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(cfg.precision, device):
            logits = model(x)
        loss = training_loss(logits.float(), target, cfg, teacher.to(device) if teacher is not None else None)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        scheduler.step_batch()
        if ema is not None:
            ema.update(model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model)
        loss_sum += float(loss.detach()) * len(y)
        correct += float((logits.argmax(1) == y).sum())
        seen += len(y)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}", refresh=False)
    if bar is not None:
        bar.close()
    if world > 1:  # each rank saw its own shard; the history reports the whole epoch
        totals = torch.tensor([loss_sum, correct, seen], dtype=torch.float64)
        dist.all_reduce(totals)
        loss_sum, correct, seen = totals.tolist()
    return {
        "train_loss": loss_sum / max(seen, 1),
        "train_acc": correct / max(seen, 1),
        "lr": optimizer.param_groups[0]["lr"],
        "seconds": time.perf_counter() - start,
        # CPU time of this process (all threads): what the epoch cost, even if the machine was shared
        "cpu_seconds": time.process_time() - cpu_start,
    }


def training_loss(
    logits: torch.Tensor, target: torch.Tensor, cfg: TrainConfig, teacher: torch.Tensor | None = None
) -> torch.Tensor:
    """Label-smoothed cross-entropy on `target`; with a teacher, mixed with the distillation term
    T^2 * KL(teacher_T || student_T), both softened by T = cfg.distill_temp (Hinton et al. 2015;
    T^2 keeps its gradient on the scale of the hard term)."""
    hard = F.cross_entropy(logits, target, label_smoothing=cfg.label_smoothing)
    if teacher is None or cfg.distill <= 0:
        return hard
    t = cfg.distill_temp
    soft_teacher = torch.softmax(torch.log(teacher.clamp_min(1e-8)) / t, dim=1)
    kl = F.kl_div(torch.log_softmax(logits / t, dim=1), soft_teacher, reduction="batchmean")
    return (1 - cfg.distill) * hard + cfg.distill * t * t * kl


def teacher_targets(cfg: TrainConfig, train: Split, out: Path) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """The mean softmax of `cfg.teacher`'s weight files on every training image (mirror-averaged,
    through the shared inference loop), and what the run records of the teachers (file, sha256).

    Cached in the run folder, keyed by the teachers' hashes and the images, so `--resume` trains
    on exactly the targets the run started with."""
    from .provenance import sha256_file

    files = [Path(f) for f in cfg.teacher or []]
    for f in files:
        if not f.is_file():
            raise ValueError(f"--teacher {f}: no such weights file")
    teachers = [{"file": f.name, "sha256": sha256_file(f)} for f in files]
    key = {"teachers": teachers, "n": len(train), "labels_sum": int(train.labels.sum()), "tta": "flip"}
    cache = out / "teacher_targets.npz"
    if cache.is_file():
        saved = np.load(cache, allow_pickle=False)
        if str(saved["key"]) == repr(key):
            return torch.from_numpy(saved["probs"]), teachers
    probs = np.zeros((len(train), len(EMOTIONS)), dtype=np.float64)
    for f in files:
        model = open_weights(f, cfg.threads)
        print(f"teacher {f.name}: predicting {len(train)} training images", flush=True)
        probs += predict_proba(model, train.images, tta="flip")
    probs = (probs / len(files)).astype(np.float32)
    agree = float((probs.argmax(1) == train.labels).mean())
    print(f"teachers agree with the training labels on {agree:.1%} of images", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(cache, lambda fh: np.savez(fh, probs=probs, key=np.array(repr(key))))
    return torch.from_numpy(probs), teachers


def val_metrics(model: nn.Module, split: Split, device: torch.device, cfg: TrainConfig) -> dict[str, float]:
    """Accuracy and cross-entropy of a model on a split (single view, the training precision),
    through the shared inference loop: what the history records each epoch."""
    model.eval()
    probs = predict_proba(torch_logits_fn(model, device, cfg.precision, cfg.channels_last), split.images, tta="none")
    nll = -np.log(np.clip(probs[np.arange(len(split)), split.labels], 1e-12, None)).mean()
    return {"acc": float((probs.argmax(1) == split.labels).mean()), "loss": float(nll)}


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    tty = sys.stderr.isatty()
    return tqdm(total=total, desc=desc, unit="batch", leave=False, mininterval=0.5 if tty else 30, dynamic_ncols=True)


def _subset(split: Split, limit: int | None, seed: int) -> Split:
    if limit is None or limit >= len(split):
        return split
    index = np.sort(np.random.default_rng(seed).permutation(len(split))[:limit])
    return split.subset(index)


def run_dir(cfg: TrainConfig) -> Path:
    return Path(cfg.out) / cfg.model


@dataclass
class TrainState:
    """What an epoch changes and a checkpoint saves: the network and its optimizer, schedule, loss
    scaler and weight average, and the run's history, best epoch and epochs done."""

    model: nn.Module  # the network itself (unwrapped: DDP, when used, wraps it for the epochs only)
    optimizer: torch.optim.Optimizer
    scheduler: Schedule
    scaler: torch.amp.GradScaler | None  # CUDA with fp16 autocast only
    ema: WeightEMA | None
    averaged: nn.Module | None  # with EMA: a second network the average is copied into to be validated
    lineage: dict[str, Any] | None  # None from scratch; else the run these weights started from ("init")
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(
        default_factory=lambda: {"metric": "accuracy", "split": SELECTION_SPLIT, "value": -1.0, "epoch": None}
    )
    epoch: int = 0  # epochs done


def main(
    cfg: TrainConfig, data: FERData | None = None, resume: bool = False, stop_after: int | None = None
) -> dict[str, Any]:
    """Train, or with `resume` continue OUT/MODEL/last.pt exactly; returns a summary.

    `stop_after` ends this process after that many epochs (the schedule is unchanged), so a
    long run can be split across sessions and continued with `resume`.
    """
    ckpt = _resume_state(cfg) if resume else None
    cfg = (cfg if ckpt is None else _resumed_config(cfg, ckpt)).resolved()
    device, rank, world = _setup_process(cfg)
    data = data or load_fer2013(cfg.data)
    train, val, steps_per_epoch = _train_val(data, cfg, world)
    state = _build_state(cfg, device, steps_per_epoch, ckpt)
    if ckpt is not None and rank == 0:
        print(f"resumed {cfg.model} at epoch {state.epoch}/{cfg.epochs} (best val acc {state.best['value']:.4f})")
    net = state.model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)

    out = run_dir(cfg)
    if rank == 0:
        print(
            f"training {get_spec(cfg.model).title} ({count_parameters(state.model) / 1e6:.1f}M parameters) "
            f"on {len(train)} images, {cfg.epochs} epochs x {steps_per_epoch} steps, {cfg.optimizer} lr {cfg.lr}, "
            f"device {device}, {world} process(es), {torch.get_num_threads()} threads -> {out}",
            flush=True,
        )
    soft, teachers = teacher_targets(cfg, train, out) if cfg.teacher and cfg.distill > 0 else (None, None)
    end_epoch = cfg.epochs if stop_after is None else min(cfg.epochs, state.epoch + stop_after)
    for epoch in range(state.epoch, end_epoch):
        stats = train_one_epoch(
            net, train, state.optimizer, state.scheduler, cfg, epoch, device, state.scaler, soft, state.ema
        )
        row = {"epoch": epoch + 1, **stats, **_validate(state, val, device, cfg)} if rank == 0 else None
        state.scheduler.step_epoch(_from_rank0(row["val_acc"] if row else 0.0, world))  # before the checkpoint
        state.epoch = epoch + 1
        if rank == 0:
            _save_epoch(state, row, cfg, data, teachers, out)
        if world > 1:
            dist.barrier()
    if world > 1:
        dist.destroy_process_group()
    return {
        "model": cfg.model,
        "best": state.best,
        "epochs_done": end_epoch,
        "epochs": cfg.epochs,
        "run_dir": str(out),
        "history": state.history,
    }


def _resumed_config(cfg: TrainConfig, ckpt: dict[str, Any]) -> TrainConfig:
    """The checkpoint's config: the schedule and recipe come from it; only where and how to run may change."""
    saved = TrainConfig.from_dict(ckpt["config"])
    for key in ("data", "out", "threads", "device", "progress"):
        setattr(saved, key, getattr(cfg, key))
    return saved


def _setup_process(cfg: TrainConfig) -> tuple[torch.device, int, int]:
    """This process's threads and device, and (under torchrun) its process group: (device, rank, world)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = default_device(cfg.device)
    _init_distributed(device)
    return (device, *_dist_info())


def _train_val(data: FERData, cfg: TrainConfig, world: int) -> tuple[Split, Split, int]:
    """The training images and the selection images (each a seeded subset with a limit), and the
    optimizer steps per epoch."""
    train = _subset(data["train"], cfg.limit, cfg.seed)
    val = _subset(data[SELECTION_SPLIT], cfg.val_limit, cfg.seed)
    steps_per_epoch = len(train) // (cfg.batch_size * world)
    if steps_per_epoch == 0:
        raise ValueError(f"{len(train)} training images is less than one batch of {cfg.batch_size}")
    return train, val, steps_per_epoch


def _build_state(
    cfg: TrainConfig, device: torch.device, steps_per_epoch: int, ckpt: dict[str, Any] | None
) -> TrainState:
    """The seeded network (or `cfg.init`'s weights) on `device` with its optimizer, schedule, EMA and
    loss scaler; with `ckpt` (a last.pt), everything as that epoch left it."""
    torch.manual_seed(cfg.seed)  # weight init
    model = build_model(cfg.model, pretrained=cfg.pretrained, **cfg.arch())
    lineage = ckpt.get("init") if ckpt is not None else None  # what this run started from
    if cfg.init and ckpt is None:
        lineage = _init_from(model, cfg)  # the checkpoint records it, with the file's sha256, as "init"
    model = _placed(model, device, cfg)
    optimizer = make_optimizer(model, cfg)
    scheduler = Schedule(
        optimizer,
        cfg.schedule,
        cfg.lr,
        cfg.epochs,
        steps_per_epoch,
        cfg.warmup,
        cfg.plateau_factor,
        cfg.plateau_patience,
    )
    ema = WeightEMA(model, cfg.ema) if cfg.ema > 0 else None
    averaged = _placed(build_model(cfg.model, **cfg.arch()), device, cfg) if ema is not None else None
    scaler = torch.amp.GradScaler("cuda") if device.type == "cuda" and cfg.precision != "fp32" else None
    state = TrainState(model, optimizer, scheduler, scaler, ema, averaged, lineage)
    if ckpt is not None:
        _restore(state, ckpt)
    return state


def _placed(model: nn.Module, device: torch.device, cfg: TrainConfig) -> nn.Module:
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if cfg.channels_last else model


def _restore(state: TrainState, ckpt: dict[str, Any]) -> None:
    """Continue exactly where `ckpt` stopped: the weights the optimizer trains (the raw ones, with
    EMA), optimizer, schedule, scaler and average, history, best epoch and torch's RNG."""
    state.model.load_state_dict(ckpt["raw_state_dict"] if ckpt.get("ema") else ckpt["state_dict"])
    state.optimizer.load_state_dict(ckpt["optimizer"])
    state.scheduler.load_state_dict(ckpt["scheduler"])
    if state.scaler is not None and ckpt.get("scaler"):
        state.scaler.load_state_dict(ckpt["scaler"])
    if state.ema is not None:  # the average is the checkpoint's served weights
        state.ema.load_state_dict(ckpt["ema"], ckpt["state_dict"])
    state.history, state.best, state.epoch = ckpt["history"], ckpt["best"], ckpt["epoch"]
    torch.set_rng_state(ckpt["rng"]["torch"])


def _validate(state: TrainState, val: Split, device, cfg: TrainConfig) -> dict[str, float]:
    """Val loss and accuracy of the weights that would ship: the EMA's when it is on (the raw
    weights' figures then go beside them as val_loss_raw / val_acc_raw)."""
    t0 = time.perf_counter()
    raw = val_metrics(state.model, val, device, cfg)
    row: dict[str, float] = {}
    if state.ema is not None:
        state.ema.copy_to(state.averaged)
        row = {"val_loss_raw": raw["loss"], "val_acc_raw": raw["acc"]}
        raw = val_metrics(state.averaged, val, device, cfg)
    return {**row, "val_loss": raw["loss"], "val_acc": raw["acc"], "eval_seconds": time.perf_counter() - t0}


def _save_epoch(state: TrainState, row: dict[str, Any], cfg: TrainConfig, data: FERData, teachers, out: Path) -> None:
    """Rank 0 after an epoch: add it to the history, select on val, write last.pt (and best.pt when
    val accuracy improved) and history.json, and print the epoch's line."""
    state.history.append(row)
    improved = row["val_acc"] > state.best["value"]
    if improved:
        state.best = {**state.best, "value": row["val_acc"], "epoch": state.epoch}
    ckpt = _checkpoint(state, cfg, data, teachers)
    if improved:
        save_atomic(slim(ckpt), out / "best.pt")
    save_atomic(ckpt, out / "last.pt")
    _write_json(out / "history.json", {"model": cfg.model, "best": state.best, "history": state.history})
    _print_epoch(row, cfg.epochs, improved)


def _from_rank0(value: float, world: int) -> float:
    """Rank 0's value on every rank (the plateau schedule must step alike everywhere)."""
    if world == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.broadcast(t, 0)
    return float(t)


def _print_epoch(row: dict[str, Any], epochs: int, improved: bool) -> None:
    raw = f" (raw {row['val_acc_raw']:.4f})" if "val_acc_raw" in row else ""
    print(
        f"epoch {row['epoch']:3d}/{epochs} train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f} | "
        f"val loss {row['val_loss']:.4f} acc {row['val_acc']:.4f}{raw}{' *' if improved else '  '} | "
        f"lr {row['lr']:.2e} | {row['seconds'] / 60:.2f} min",
        flush=True,
    )


def _checkpoint(state: TrainState, cfg: TrainConfig, data: FERData, teachers) -> dict[str, Any]:
    """Everything to resume. With EMA, `state_dict` holds the averaged weights (what best.pt and
    the exports serve) and `raw_state_dict` the optimizer's weights the next epoch trains on."""
    ema = state.ema
    raw = {k: v.detach().cpu().contiguous() for k, v in state.model.state_dict().items()}
    served = raw if ema is None else {k: v.detach().cpu().contiguous() for k, v in ema.shadow.items()}
    return {
        "format": FORMAT,
        "fer_core_version": __version__,
        "model": cfg.model,
        "labels": list(EMOTIONS),
        "spec": get_spec(cfg.model).to_dict(),
        "arch": cfg.arch(),
        "state_dict": served,
        "raw_state_dict": raw if ema is not None else None,
        "ema": ema.state_dict() if ema is not None else None,
        "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict(),
        "scaler": state.scaler.state_dict() if state.scaler is not None else None,
        "rng": {"torch": torch.get_rng_state()},
        "epoch": state.epoch,
        "best": dict(state.best),
        "selected_on": SELECTION_SPLIT,
        "config": asdict(cfg),
        "history": [dict(r) for r in state.history],
        "data": data.describe(),
        "torch_version": str(torch.__version__),
        "init": state.lineage,  # None from scratch; else the run these weights started from (and its own)
        "teachers": teachers,  # None, or the weight files (and sha256) this run distilled
    }


def _init_from(model: nn.Module, cfg: TrainConfig) -> dict[str, Any]:
    """Load the weights of checkpoint `cfg.init` into `model`; returns what the new run records
    of it: the file, its sha256, and the run that made it (recipe, selection, history, its own
    starting point), so a fine-tuned model's card can show every stage and its whole cost."""
    from .provenance import sha256_file

    if cfg.pretrained:
        raise ValueError("--init and --pretrained both set the starting weights; choose one")
    ckpt = load_checkpoint(cfg.init)
    if ckpt["model"] != cfg.model:
        raise ValueError(f"--init {cfg.init} holds a {ckpt['model']} network, not {cfg.model}")
    # Every variant's weights load into every other (registry.ARCH_OPTIONS), so a run that forgot
    # the flag its starting weights were trained with would silently train another network.
    for key, flag, default in (("output_stride", "--output-stride", DEFAULT_OUTPUT_STRIDE), ("crop", "--crop", None)):
        was, now = architecture(ckpt).get(key, default), cfg.arch().get(key, default)
        if was != now:
            fix = f"pass {flag} {was}" if was else f"drop {flag}"
            raise ValueError(
                f"--init {cfg.init} was trained with {flag} {was or 'off'} but this run has {flag} {now or 'off'}: "
                f"{fix} to fine-tune the network those weights belong to"
            )
    load_weights(model, ckpt)
    return {
        "file": Path(cfg.init).name,
        "sha256": sha256_file(cfg.init),
        "config": ckpt.get("config"),
        "best": ckpt.get("best"),
        "selected_on": ckpt.get("selected_on"),
        "history": ckpt.get("history") or [],
        "init": ckpt.get("init"),
        "teachers": ckpt.get("teachers"),
    }


def _resume_state(cfg: TrainConfig) -> dict[str, Any] | None:
    last = run_dir(cfg) / "last.pt"
    if not last.is_file():
        print(f"--resume: no {last} yet, starting a new run")
        return None
    ckpt = load_checkpoint(last)
    if ckpt["model"] != cfg.model:
        raise ValueError(f"{last} is a {ckpt['model']} run, not {cfg.model}")
    if "optimizer" not in ckpt:
        raise ValueError(f"{last} has no optimizer state; it cannot be resumed")
    return ckpt


def _write_json(path: Path, obj: Any) -> None:
    write_json_atomic(path, obj, indent=1)
