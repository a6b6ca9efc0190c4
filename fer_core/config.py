"""Training configuration, in one place: every field's default, its command-line flag and whether
it fixes the recipe (and so appears in a model card's command). Imports no torch, so the CLI can
build `train --help` and the cards can write commands without the training stack.

    python -m fer_core train --model resnet18 --epochs 40 ...   # one flag per field marked `flag`
"""

from __future__ import annotations

from dataclasses import Field, asdict, dataclass, field, fields
from typing import Any

from .preprocess import TENCROP_SIZE
from .registry import check_arch, get_spec, list_models
from .schedule import SCHEDULES


def flag(default: Any = None, help: str | None = None, *, recipe: bool = False, factory=None, **argparse_kw) -> Any:
    """A TrainConfig field that is also a `train` flag (`--name-with-dashes`). `recipe`: it fixes
    the recipe, so a card's command repeats it. `argparse_kw` go to add_argument (choices, metavar)."""
    meta = {"flag": True, "help": help, "recipe": recipe, "argparse": argparse_kw}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class AugmentConfig:
    rotate_deg: float = 10.0  # faces in FER2013 are roughly upright; +-10 deg covers head tilt
    scale: tuple[float, float] = (0.9, 1.1)  # zoom jitter around FER's loose face framing
    translate: float = 0.08  # shift as a fraction of the side (FER crops are not centred exactly)
    flip: float = 0.5  # expressions are mirror-symmetric
    brightness: float = 0.1  # additive, in [0, 1] pixel units: web photos vary in exposure
    contrast: float = 0.2  # multiplicative around the image mean
    erase_p: float = 0.25  # random erasing: occlusions by hands, hair, glasses
    erase_area: tuple[float, float] = (0.02, 0.2)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (lists, not tuples), as stored in checkpoint configs."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AugmentConfig:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


@dataclass
class TrainConfig:
    """Every training default in one place; None means "the registry recipe for this model"."""

    model: str = flag("resnet18", choices=list_models())
    data: str | None = flag(None, "data folder or fer2013.csv (default: $FER_DATA or data/fer2013)")
    out: str = flag("runs", "run folders go to OUT/MODEL (default: runs; keep it out of git)")
    # The recipe, in the order a card's command shows it. Accuracy here is bought with epochs.
    epochs: int | None = flag(None, "schedule length (default: the registry recipe)", recipe=True)
    # small batches generalise better on 28k images and suit 2 CPU cores
    batch_size: int = flag(64, "images per step (default 64)", recipe=True)
    optimizer: str | None = flag(
        None, "sgd (Nesterov) or adamw (default: the recipe)", recipe=True, choices=["sgd", "adamw"]
    )
    lr: float | None = flag(None, "peak learning rate (default: the registry recipe)", recipe=True)
    weight_decay: float | None = flag(None, "weight decay (default: the registry recipe)", recipe=True)
    # FER2013 labels are noisy (~10 % disputed by re-annotation)
    label_smoothing: float = flag(0.1, "label smoothing (default 0.1)", recipe=True)
    mixup: float = flag(0.0, "mixup alpha (0 = off)", recipe=True)
    # Random crop x crop windows of each (augmented) 48x48 face in training, the centre window served:
    # cheaper epochs ((44/48)^2 = 0.84) and the views ten-crop TTA reads (None = the whole face)
    crop: int | None = flag(
        None, f"train on random {TENCROP_SIZE}x{TENCROP_SIZE} crops, serve the centre crop", recipe=True
    )
    # Architecture choices (registry.ARCH_OPTIONS; None = as registered): at output stride 8 the last
    # stages see 6x6 instead of 3x3 at 48 px; short schedules need less regularisation
    output_stride: int | None = flag(
        None,
        "8 = a 6x6 final map (default 16, 3x3): a stride-1 stem (efficientnet_v2_s, resnet18), "
        "no fourth max-pool (vgg16)",
        recipe=True,
        choices=[8, 16],
    )
    drop_path: float | None = flag(None, "efficientnet_v2_s: stochastic depth (default 0.2)", recipe=True)
    dropout: float | None = flag(None, "efficientnet_v2_s: dropout before the classifier (default 0.2)", recipe=True)
    # onecycle: warmup then cosine to lr/25e3 (OneCycleLR); cosine: linear warmup then cosine to 0;
    # plateau: constant lr, times plateau_factor after plateau_patience epochs without a better val
    # accuracy (Khaireddin & Chen 2021 found it the best scheduler on FER2013, one-cycle the worst)
    schedule: str = flag("onecycle", "lr schedule (default onecycle)", recipe=True, choices=SCHEDULES)
    # Exponential moving average of the weights (and BatchNorm statistics), updated every step (0 = off).
    # With it on, the averaged weights are validated, selected and shipped; the raw weights' val
    # accuracy is kept beside it in the history (val_acc_raw).
    ema: float = flag(0.0, "EMA decay of the weights, e.g. 0.999 (default 0 = off); EMA ships", recipe=True)
    seed: int = flag(0, "random seed (default 0)", recipe=True)
    # Recipe details a card's command shows only when they differ from these defaults (cards.train_command).
    warmup: float = flag(0.15, "share of steps rising to the peak lr (onecycle, cosine; default 0.15)")
    plateau_factor: float = flag(0.75, "plateau: lr multiplier on a plateau (default 0.75)")
    plateau_patience: int = flag(5, "plateau: epochs without a better val accuracy (default 5)")
    momentum: float = 0.9
    augment: dict[str, Any] = field(default_factory=lambda: AugmentConfig().to_dict())
    limit: int | None = flag(None, "train on a seeded subset of N images")
    val_limit: int | None = flag(None, "validate on N val images (smoke runs)")
    pretrained: bool = flag(False, "ImageNet init (needs torchvision's weight file)")
    init: str | None = flag(
        None,
        "start from a fer_core checkpoint's weights, e.g. weights/resnet18.pt (fine-tuning; new schedule)",
        metavar="CHECKPOINT",
    )
    teacher: list[str] | None = flag(
        None,
        "distill the mean softmax of these .onnx/.pt files, e.g. weights/*.onnx (needs --distill)",
        metavar="WEIGHTS",
    )
    distill: float = flag(0.0, "share of the loss on the teacher's soft targets, 0-1 (default 0)")
    distill_temp: float = flag(2.0, "distillation temperature (default 2)")
    # auto: fp16 + GradScaler on CUDA, bf16 on CPUs with native bf16, else fp32
    precision: str = flag("auto", "auto (bf16 on CPUs that have it, fp16 on CUDA) or fp32", choices=["auto", "fp32"])
    channels_last: bool = True  # faster convolutions on CPU (oneDNN) and on tensor cores
    threads: int | None = flag(None, "torch intra-op threads (default: all cores)")
    device: str | None = flag(None, "cpu, cuda, cuda:1, ... (default: cuda if available, else cpu)")
    progress: bool = flag(True, "a progress bar per epoch (--no-progress: none)")

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
        check_arch(cfg.model, cfg.arch())
        if cfg.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {cfg.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if not 0.0 <= cfg.ema < 1.0:
            raise ValueError(f"--ema {cfg.ema}: the decay must be in [0, 1) (0 = off; 0.999 is typical)")
        return cfg

    def arch(self) -> dict[str, Any]:
        """The architecture choices this run makes beyond the registry spec (crop and
        registry.ARCH_OPTIONS), as the checkpoint records them; {} for the network as registered."""
        names = ("crop", "output_stride", "drop_path", "dropout")
        return {k: getattr(self, k) for k in names if getattr(self, k) is not None}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def flag_fields() -> list[Field]:
    """The TrainConfig fields that are `train` flags, in declaration order."""
    return [f for f in fields(TrainConfig) if f.metadata.get("flag")]


def recipe_flags() -> tuple[str, ...]:
    """The fields that fix a recipe, in the order a card's command shows them."""
    return tuple(f.name for f in flag_fields() if f.metadata["recipe"])


def add_train_flags(parser) -> None:
    """One argparse option per flag field: its type, help and choices come from the field. Every
    default is None, so a flag not given leaves TrainConfig's default (or the registry recipe)."""
    types = {"int": int, "float": float, "str": str}
    for f in flag_fields():
        kind = str(f.type).replace(" | None", "")
        kw: dict[str, Any] = {"help": f.metadata["help"], **f.metadata["argparse"]}
        name = "--" + f.name.replace("_", "-")
        if f.name == "model":
            parser.add_argument(name, required=True, **kw)
        elif f.name == "progress":
            parser.add_argument("--no-progress", dest="progress", action="store_false", default=None, help=kw["help"])
        elif kind == "bool":
            parser.add_argument(name, action="store_true", default=None, **kw)
        elif kind == "list[str]":
            parser.add_argument(name, nargs="+", **kw)
        else:
            parser.add_argument(name, type=types[kind], **kw)
