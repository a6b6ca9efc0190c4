"""The one model registry: name -> everything needed to build, train, feed and describe a model.

This module is plain data and imports no torch, so the app (which serves ONNX files) can read
input sizes and descriptions without the training stack. The builders it names live in
`fer_core.models` and are imported only when a network is built.
"""

from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass, field
from typing import Any

# Pixel statistics of FER2013 train/ (28,709 faces, pixel/255), measured with
# `python -m fer_core data-stats`. Used by every model trained from scratch; the normalisation
# lives inside the network (fer_core.models.InputAdapter), so no caller can forget or repeat it.
FER_MEAN = 0.5136
FER_STD = 0.3067

# ImageNet statistics, for `--pretrained` (torchvision's weights expect them on RGB input).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelSpec:
    """What the project knows about one registered network."""

    name: str  # registry key, used on the command line and in file names
    title: str  # how people write it
    torchvision_name: str  # the torchvision builder the network comes from
    builder: str  # "module:function" that builds the adapted network
    input_size: int  # side of the square grayscale face the network is fed (FER2013: 48)
    mean: float  # normalisation of the [0, 1] gray input, applied inside the network
    std: float
    parameters: int  # exact count of the adapted network; a test checks it against the build
    head: str  # the classification head, in words
    adaptations: tuple[str, ...]  # every change from the torchvision network, in words
    # Training defaults that produced the shipped weights; TrainConfig fills its unset fields
    # from here so `python -m fer_core train --model NAME` repeats the recorded recipe.
    recipe: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain-type copy, stored in checkpoints, ONNX metadata and results files."""
        d = asdict(self)
        d["adaptations"] = list(self.adaptations)
        return d

    def build(self, **kwargs: Any):
        """Build the network (imports torch). kwargs go to the builder (e.g. pretrained=True)."""
        module_name, func_name = self.builder.split(":")
        return getattr(importlib.import_module(module_name), func_name)(self, **kwargs)


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def list_models() -> list[str]:
    """Registered model names, in registry order."""
    return list(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    """The spec of a registered model; an unknown name is a ValueError listing the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(list_models())}") from None


# Every registered network's final map is 3x3 at 48 px unless a run asks for `output_stride` 8
DEFAULT_OUTPUT_STRIDE = 16

# Architecture choices beyond the registry spec, recorded with the weights ("arch" in checkpoints,
# .pt files and ONNX metadata) so a file alone rebuilds its network. None of them adds a parameter:
# every variant's weights load into every other.
ARCH_OPTIONS = {
    # Output stride 8: a 6x6 final map at 48 px instead of 3x3. EfficientNetV2-S and ResNet18 get a
    # stride-1 stem (every layer at twice the resolution); VGG16-BN drops its fourth max-pool (its
    # last block at 6x6), so it has no stem to change
    "output_stride": {"efficientnet_v2_s": (16, 8), "resnet18": (16, 8), "vgg16": (16, 8)},
    "drop_path": {"efficientnet_v2_s": None},  # stochastic depth, torchvision's default 0.2
    "dropout": {"efficientnet_v2_s": None},  # before the classifier, torchvision's default 0.2
}


def check_arch(name: str, arch: dict[str, Any]) -> dict[str, Any]:
    """`arch` if every option is one `name` takes, with an allowed value; else a ValueError."""
    for key, value in arch.items():
        if key == "crop":
            continue
        takes = ARCH_OPTIONS.get(key)
        if takes is None:
            raise ValueError(f"unknown architecture option {key!r}; known: crop, {', '.join(ARCH_OPTIONS)}")
        if name not in takes:
            raise ValueError(f"{key.replace('_', '-')} is an option of {', '.join(takes)}, not of {name}")
        allowed = takes[name]
        if allowed is not None and value not in allowed:
            raise ValueError(f"{key.replace('_', '-')} {value}: {name} takes {' or '.join(map(str, allowed))}")
        if allowed is None and not 0.0 <= float(value) < 1.0:
            raise ValueError(f"{key.replace('_', '-')} {value}: a probability in [0, 1)")
    return arch


def model_title(name: str) -> str:
    """How people write a model's name; an unregistered name (a user's run file) is shown as is."""
    try:
        return get_spec(name).title
    except ValueError:
        return name


register(
    ModelSpec(
        name="efficientnet_v2_s",
        title="EfficientNetV2-S",
        torchvision_name="efficientnet_v2_s",
        builder="fer_core.models:build_efficientnet_v2_s",
        input_size=48,
        mean=FER_MEAN,
        std=FER_STD,
        parameters=20_186_023,
        head="global average pool -> dropout 0.2 -> linear 1280->7 (torchvision's head)",
        adaptations=(
            "stem conv takes 1 gray channel instead of 3 RGB",
            "last stage's stride-2 conv made stride 1: its 15 blocks see 3x3 instead of 2x2 at 48x48 input "
            "(measured no slower here: 4.95-5.1 against 5.3-5.95 min/epoch)",
            "each residual block's last BatchNorm scale starts at zero, so blocks start as the identity "
            "(from scratch with torchvision's init it did not learn: 3 epochs stuck at the majority class)",
            "7-way classifier",
        ),
        # 25 epochs: what one session affords at 5-6 min/epoch (results/bench_train.json; docs/training.md).
        recipe={"epochs": 25, "lr": 1e-3, "optimizer": "adamw", "weight_decay": 0.05},
    )
)

register(
    ModelSpec(
        name="resnet18",
        title="ResNet18",
        torchvision_name="resnet18",
        builder="fer_core.models:build_resnet18",
        input_size=48,
        mean=FER_MEAN,
        std=FER_STD,
        parameters=11_171_271,
        head="global average pool -> dropout 0.2 -> linear 512->7",
        adaptations=(
            "stem: 3x3 stride-2 conv on 1 gray channel instead of 7x7 stride-2 on RGB",
            "stem max-pool removed: layer1 sees 24x24 and layer4 3x3 at 48x48 input "
            "(the torchvision stem would leave 12x12 and 2x2)",
            "dropout before the 7-way classifier",
        ),
        # 40 epochs: 48 did not beat them on PublicTest (docs/training.md); ~2 h at 2.9 min/epoch.
        recipe={"epochs": 40, "lr": 0.05, "optimizer": "sgd", "weight_decay": 5e-4},
    )
)

register(
    ModelSpec(
        name="vgg16",
        title="VGG16-BN",
        torchvision_name="vgg16_bn",
        builder="fer_core.models:build_vgg16",
        input_size=48,
        mean=FER_MEAN,
        std=FER_STD,
        parameters=14_988_231,
        head="global average pool -> linear 512->512 -> ReLU -> dropout 0.5 -> linear 512->7",
        adaptations=(
            "first conv takes 1 gray channel instead of 3 RGB",
            "last max-pool removed: the final 3x3 map is average-pooled instead of cut to 1x1",
            "the 25088->4096->4096 classifier (120M parameters, pointless at 48x48) replaced by a 512->512->7 head",
        ),
        # 32 epochs: one session with time to ship (1.9 h), and better on PublicTest than 26 (docs/training.md).
        recipe={"epochs": 32, "lr": 0.05, "optimizer": "sgd", "weight_decay": 5e-4},
    )
)
