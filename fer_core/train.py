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
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from . import __version__
from .atomic import write_atomic, write_json_atomic
from .augment import AugmentConfig, augment_batch, random_crop
from .checkpoint import FORMAT, load_checkpoint, load_weights, save_atomic, slim
from .data import FERData, Split, load_fer2013
from .ema import WeightEMA
from .labels import EMOTIONS
from .models import build_model, count_parameters
from .preprocess import TENCROP_SIZE, predict_proba
from .registry import get_spec
from .runtime import autocast, default_device, open_weights, torch_logits_fn
from .schedule import SCHEDULES, Schedule

SELECTION_SPLIT = "val"  # the split that chooses checkpoints; test/ is only ever reported


@dataclass
class TrainConfig:
    """Every training default in one place; None means "the registry recipe for this model"."""

    model: str = "resnet18"
    data: str | None = None  # data folder or fer2013.csv; None -> $FER_DATA or data/fer2013
    out: str = "runs"  # run folders go to OUT/MODEL/; keep it out of git (it is in .gitignore)
    epochs: int | None = None  # schedule length; accuracy here is bought with epochs
    batch_size: int = 64  # small batches generalise better on 28k images and suit 2 CPU cores
    optimizer: str | None = None  # "sgd" (nesterov) or "adamw"
    lr: float | None = None  # one-cycle peak learning rate
    weight_decay: float | None = None
    momentum: float = 0.9
    warmup: float = 0.15  # share of steps rising to the peak lr (onecycle and cosine)
    # onecycle: warmup then cosine to lr/25e3 (OneCycleLR); cosine: linear warmup then cosine to 0;
    # plateau: constant lr, times plateau_factor after plateau_patience epochs without a better val
    # accuracy (Khaireddin & Chen 2021 found it the best scheduler on FER2013, one-cycle the worst)
    schedule: str = "onecycle"
    plateau_factor: float = 0.75
    plateau_patience: int = 5
    # Exponential moving average of the weights (and BatchNorm statistics), updated every step with
    # this decay (0 = off). With it on, the averaged weights are what is validated, selected and
    # shipped; the raw weights' val accuracy is kept beside it in the history (val_acc_raw).
    ema: float = 0.0
    label_smoothing: float = 0.1  # FER2013 labels are noisy (~10 % disputed by re-annotation)
    mixup: float = 0.0  # mixup alpha; 0 = off
    augment: dict[str, Any] = field(default_factory=lambda: AugmentConfig().to_dict())
    # Train on random crop x crop windows of each (augmented) 48x48 face, and serve the centre window:
    # cheaper epochs ((44/48)^2 = 0.84) and views that ten-crop TTA reads exactly at test time
    # (None = the whole face, as the shipped weights of before were trained)
    crop: int | None = None
    seed: int = 0
    limit: int | None = None  # train on a seeded subset of this many images (smoke runs, tests)
    val_limit: int | None = None  # select on a seeded subset of N val images (smoke runs, tests)
    pretrained: bool = False  # ImageNet init through torchvision's weights API (needs the file)
    init: str | None = None  # start from this fer_core checkpoint's weights (fine-tuning), new schedule
    teacher: list[str] | None = None  # weight files (.onnx/.pt) whose mean softmax is distilled
    distill: float = 0.0  # share of the loss on the teacher's soft targets (0 = off, 1 = only them)
    distill_temp: float = 2.0  # temperature both sides are softened with in the distillation term
    precision: str = "auto"  # auto: fp16 + GradScaler on CUDA, bf16 on CPUs with native bf16, else fp32
    channels_last: bool = True  # faster convolutions on CPU (oneDNN) and on tensor cores
    threads: int | None = None  # torch intra-op threads; None -> all cores
    device: str | None = None  # None -> cuda if available, else cpu
    progress: bool = True

    def resolved(self) -> TrainConfig:
        """A copy with every None recipe field filled from the registry."""
        spec = get_spec(self.model)
        values = asdict(self)
        for key, value in spec.recipe.items():
            if values.get(key) is None:
                values[key] = value
        cfg = TrainConfig(**values)
        missing = [k for k in ("epochs", "optimizer", "lr", "weight_decay") if getattr(cfg, k) is None]
        if missing:
            raise ValueError(f"no value for {', '.join(missing)} (neither given nor in the recipe)")
        if not 0.0 <= cfg.distill <= 1.0:
            raise ValueError(f"--distill {cfg.distill}: the distillation share must be between 0 and 1")
        if cfg.distill > 0 and not cfg.teacher:
            raise ValueError("--distill needs --teacher: the weight files whose predictions to distill")
        if cfg.distill_temp <= 0:
            raise ValueError(f"--distill-temp {cfg.distill_temp}: the temperature must be positive")
        if cfg.crop is not None and cfg.crop != TENCROP_SIZE:
            raise ValueError(f"--crop {cfg.crop}: crops are {TENCROP_SIZE} px, the views ten-crop TTA reads")
        if cfg.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {cfg.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if not 0.0 <= cfg.ema < 1.0:
            raise ValueError(f"--ema {cfg.ema}: the decay must be in [0, 1) (0 = off; 0.999 is typical)")
        return cfg

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


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


def main(
    cfg: TrainConfig, data: FERData | None = None, resume: bool = False, stop_after: int | None = None
) -> dict[str, Any]:
    """Train, or with `resume` continue OUT/MODEL/last.pt exactly; returns a summary.

    `stop_after` ends this process after that many epochs (the schedule is unchanged), so a
    long run can be split across sessions and continued with `resume`.
    """
    resume = _resume_state(cfg) if resume else None
    if resume is not None:
        saved = TrainConfig.from_dict(resume["config"])
        # The schedule and recipe come from the checkpoint; only where and how to run may change.
        for key in ("data", "out", "threads", "device", "progress"):
            setattr(saved, key, getattr(cfg, key))
        cfg = saved
    cfg = cfg.resolved()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = default_device(cfg.device)
    _init_distributed(device)
    rank, world = _dist_info()
    spec = get_spec(cfg.model)

    data = data or load_fer2013(cfg.data)
    train = _subset(data["train"], cfg.limit, cfg.seed)
    val = _subset(data[SELECTION_SPLIT], cfg.val_limit, cfg.seed)
    steps_per_epoch = len(train) // (cfg.batch_size * world)
    if steps_per_epoch == 0:
        raise ValueError(f"{len(train)} training images is less than one batch of {cfg.batch_size}")

    torch.manual_seed(cfg.seed)  # weight init
    model = build_model(cfg.model, pretrained=cfg.pretrained, crop=cfg.crop)
    lineage = resume.get("init") if resume is not None else None  # what this run started from
    if cfg.init and resume is None:
        lineage = _init_from(model, cfg)  # the checkpoint records it, with the file's sha256, as "init"
    model = model.to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
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
    averaged = build_model(cfg.model, crop=cfg.crop).to(device) if ema is not None else None  # evaluates ema's weights
    if averaged is not None and cfg.channels_last:
        averaged = averaged.to(memory_format=torch.channels_last)
    scaler = torch.amp.GradScaler("cuda") if device.type == "cuda" and cfg.precision != "fp32" else None
    history: list[dict[str, Any]] = []
    best = {"metric": "accuracy", "split": SELECTION_SPLIT, "value": -1.0, "epoch": None}
    start_epoch = 0
    if resume is not None:
        model.load_state_dict(resume["raw_state_dict"] if resume.get("ema") else resume["state_dict"])
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
        if scaler is not None and resume.get("scaler"):
            scaler.load_state_dict(resume["scaler"])
        if ema is not None:  # the average is the checkpoint's served weights
            ema.load_state_dict(resume["ema"], resume["state_dict"])
        history, best, start_epoch = resume["history"], resume["best"], resume["epoch"]
        torch.set_rng_state(resume["rng"]["torch"])
        if rank == 0:
            print(f"resumed {cfg.model} at epoch {start_epoch}/{cfg.epochs} (best val acc {best['value']:.4f})")

    net = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    out = run_dir(cfg)
    if rank == 0:
        print(
            f"training {spec.title} ({count_parameters(model) / 1e6:.1f}M parameters) on {len(train)} images, "
            f"{cfg.epochs} epochs x {steps_per_epoch} steps, {cfg.optimizer} lr {cfg.lr}, "
            f"device {device}, {world} process(es), {torch.get_num_threads()} threads -> {out}",
            flush=True,
        )
    soft, teachers = None, None
    if cfg.teacher and cfg.distill > 0:
        soft, teachers = teacher_targets(cfg, train, out)
    end_epoch = cfg.epochs if stop_after is None else min(cfg.epochs, start_epoch + stop_after)
    for epoch in range(start_epoch, end_epoch):
        stats = train_one_epoch(net, train, optimizer, scheduler, cfg, epoch, device, scaler, soft, ema)
        row = {"epoch": epoch + 1, **stats, **_validate(model, averaged, ema, val, device, cfg)} if rank == 0 else None
        scheduler.step_epoch(_from_rank0(row["val_acc"] if row else 0.0, world))  # before the checkpoint
        if rank == 0:
            history.append(row)
            improved = row["val_acc"] > best["value"]
            if improved:
                best = {**best, "value": row["val_acc"], "epoch": epoch + 1}
            ckpt = _checkpoint(
                model, optimizer, scheduler, scaler, cfg, epoch + 1, best, history, data, lineage, teachers, ema
            )
            if improved:
                save_atomic(slim(ckpt), out / "best.pt")
            save_atomic(ckpt, out / "last.pt")
            _write_json(out / "history.json", {"model": cfg.model, "best": best, "history": history})
            _print_epoch(row, cfg.epochs, improved)
        if world > 1:
            dist.barrier()
    if world > 1:
        dist.destroy_process_group()
    return {
        "model": cfg.model,
        "best": best,
        "epochs_done": end_epoch,
        "epochs": cfg.epochs,
        "run_dir": str(out),
        "history": history,
    }


def _validate(model, averaged, ema: WeightEMA | None, val: Split, device, cfg: TrainConfig) -> dict[str, float]:
    """Val loss and accuracy of the weights that would ship: the EMA's when it is on (the raw
    weights' figures then go beside them as val_loss_raw / val_acc_raw)."""
    t0 = time.perf_counter()
    raw = val_metrics(model, val, device, cfg)
    row: dict[str, float] = {}
    if ema is not None:
        ema.copy_to(averaged)
        row = {"val_loss_raw": raw["loss"], "val_acc_raw": raw["acc"]}
        raw = val_metrics(averaged, val, device, cfg)
    return {**row, "val_loss": raw["loss"], "val_acc": raw["acc"], "eval_seconds": time.perf_counter() - t0}


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


def _checkpoint(
    model, optimizer, scheduler, scaler, cfg, epoch, best, history, data, lineage, teachers=None, ema=None
) -> dict[str, Any]:
    """Everything to resume. With EMA, `state_dict` holds the averaged weights (what best.pt and
    the exports serve) and `raw_state_dict` the optimizer's weights the next epoch trains on."""
    raw = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    served = raw if ema is None else {k: v.detach().cpu().contiguous() for k, v in ema.shadow.items()}
    return {
        "format": FORMAT,
        "fer_core_version": __version__,
        "model": cfg.model,
        "labels": list(EMOTIONS),
        "spec": get_spec(cfg.model).to_dict(),
        "arch": {"crop": cfg.crop} if cfg.crop is not None else {},
        "state_dict": served,
        "raw_state_dict": raw if ema is not None else None,
        "ema": ema.state_dict() if ema is not None else None,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "rng": {"torch": torch.get_rng_state()},
        "epoch": epoch,
        "best": dict(best),
        "selected_on": SELECTION_SPLIT,
        "config": asdict(cfg),
        "history": [dict(r) for r in history],
        "data": data.describe(),
        "torch_version": str(torch.__version__),
        "init": lineage,  # None from scratch; else the run these weights started from (and its own)
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
