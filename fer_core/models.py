"""Builders for the registered networks: torchvision architectures adapted to 48x48 gray faces.

Every network takes the same input, a float tensor (B, 1, 48, 48) of gray pixels in [0, 1]
(`fer_core.preprocess.to_model_input`), and returns (B, 7) logits in `EMOTIONS` order.
Normalisation (and any resize the spec asks for) happens inside the network, in
`InputAdapter`, so the same numbers reach the weights in training, evaluation, ONNX and the app.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import models as tvm

from .errors import WeightsError
from .labels import NUM_CLASSES
from .preprocess import FACE_SIZE  # the side of every face we feed; a spec may ask to upscale it
from .registry import DEFAULT_OUTPUT_STRIDE, IMAGENET_MEAN, IMAGENET_STD, ModelSpec, check_arch, get_spec


class InputAdapter(nn.Module):
    """[0, 1] gray input -> normalised, resized to the spec's input size.

    With `crop` (a network trained on random crop x crop views of the 48x48 face, `train --crop`),
    a 48x48 input is cut to its centre crop first, so every caller still hands the network the
    whole face; a crop-sized input (the training batches) passes as it is."""

    def __init__(self, mean: float, std: float, size: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(float(mean)).view(1, 1, 1, 1))
        self.register_buffer("std", torch.tensor(float(std)).view(1, 1, 1, 1))
        self.size = size
        self.crop: int | None = None  # set by build_model, as the checkpoint's architecture says
        self.resize = size != FACE_SIZE  # decided once, so ONNX export sees no branch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.crop is not None and x.shape[-1] != self.crop:
            m = (x.shape[-1] - self.crop) // 2
            x = x[:, :, m : m + self.crop, m : m + self.crop]
        if self.resize:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return (x - self.mean) / self.std


class FERNet(nn.Module):
    """An input adapter in front of a torchvision body."""

    def __init__(self, adapter: InputAdapter, body: nn.Module) -> None:
        super().__init__()
        self.adapter = adapter
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.adapter(x))


def build_model(name: str, pretrained: bool = False, crop: int | None = None, **arch: Any) -> FERNet:
    """Build the registered network `name` (random init unless `pretrained`); `crop`: it reads the
    centre crop x crop of each 48x48 face (trained on random crops of that side); `arch`: the
    ARCH_OPTIONS the network takes (e.g. output_stride=8 for efficientnet_v2_s)."""
    check_arch(name, arch)
    model = get_spec(name).build(pretrained=pretrained, **arch)
    model.adapter.crop = crop  # no parameters: weights of either kind load into either
    return model


def _torchvision_body(spec: ModelSpec, pretrained: bool, **kwargs: Any) -> nn.Module:
    if not pretrained:
        return tvm.get_model(spec.torchvision_name, weights=None, **kwargs)
    try:
        weights = tvm.get_model_weights(spec.torchvision_name).DEFAULT
        return tvm.get_model(spec.torchvision_name, weights=weights, **kwargs)
    except Exception as exc:  # no network, no cached file: say what to do
        raise WeightsError(
            f"could not load ImageNet weights for {spec.torchvision_name} ({exc}). "
            "Put torchvision's weight file in $TORCH_HOME/hub/checkpoints or train without "
            "--pretrained."
        ) from exc


def _gray_conv(conv: nn.Conv2d, pretrained: bool, **overrides: Any) -> nn.Conv2d:
    """A copy of `conv` taking 1 channel; pretrained RGB kernels are summed when shapes allow."""
    kw = dict(
        out_channels=conv.out_channels,
        kernel_size=conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        bias=conv.bias is not None,
    )
    kw.update(overrides)
    new = nn.Conv2d(1, **kw)
    if pretrained and new.weight.shape[1:] == (1, *conv.weight.shape[2:]):
        with torch.no_grad():
            new.weight.copy_(conv.weight.sum(dim=1, keepdim=True))
            if conv.bias is not None:
                new.bias.copy_(conv.bias)
    return new


def _adapter(spec: ModelSpec, pretrained: bool) -> InputAdapter:
    if pretrained:  # gray equivalent of ImageNet statistics, matching the summed RGB kernels
        mean = sum(IMAGENET_MEAN) / 3
        std = sum(IMAGENET_STD) / 3
        return InputAdapter(mean, std, spec.input_size)
    return InputAdapter(spec.mean, spec.std, spec.input_size)


# The stem's stride for each output stride the networks with a strided stem take (ARCH_OPTIONS).
STEM_STRIDE = {16: 2, 8: 1}


def build_resnet18(spec: ModelSpec, pretrained: bool = False, output_stride: int = DEFAULT_OUTPUT_STRIDE) -> FERNet:
    """`output_stride` 8: a stride-1 stem, so layer1 sees 48x48 and layer4 6x6 (4x the arithmetic)."""
    body = _torchvision_body(spec, pretrained)
    body.conv1 = _gray_conv(body.conv1, pretrained, kernel_size=3, stride=STEM_STRIDE[output_stride], padding=1)
    body.maxpool = nn.Identity()
    body.fc = nn.Sequential(nn.Dropout(0.2), nn.Linear(body.fc.in_features, NUM_CLASSES))
    return FERNet(_adapter(spec, pretrained), body)


def build_vgg16(spec: ModelSpec, pretrained: bool = False, output_stride: int = DEFAULT_OUTPUT_STRIDE) -> FERNet:
    """`output_stride` 8: the fourth max-pool goes too, so the last block sees 6x6 instead of 3x3."""
    body = _torchvision_body(spec, pretrained)
    body.features[0] = _gray_conv(body.features[0], pretrained)
    pools = [i for i, m in enumerate(body.features) if isinstance(m, nn.MaxPool2d)]
    assert pools[-1] == len(body.features) - 1
    body.features = body.features[:-1]
    if output_stride == 8:  # an identity in its place keeps the layers' indices, so weights load either way
        body.features[pools[-2]] = nn.Identity()
    body.avgpool = nn.AdaptiveAvgPool2d(1)
    body.classifier = nn.Sequential(
        nn.Flatten(1),
        nn.Linear(512, 512),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Linear(512, NUM_CLASSES),
    )
    return FERNet(_adapter(spec, pretrained), body)


def build_efficientnet_v2_s(
    spec: ModelSpec,
    pretrained: bool = False,
    output_stride: int = DEFAULT_OUTPUT_STRIDE,
    drop_path: float | None = None,
    dropout: float | None = None,
) -> FERNet:
    """`output_stride` 8 makes the stem stride 1 as well (a 6x6 final map at 48 px); `drop_path` and
    `dropout` replace torchvision's stochastic depth and classifier dropout (0.2 each)."""
    kwargs = {k: v for k, v in (("stochastic_depth_prob", drop_path), ("dropout", dropout)) if v is not None}
    body = _torchvision_body(spec, pretrained, **kwargs)
    stem = body.features[0][0]
    body.features[0][0] = _gray_conv(stem, pretrained, stride=STEM_STRIDE[output_stride])
    # The last stage's stride-2 conv (in its first block's depthwise conv) made 1: its 15 blocks see
    # 3x3 instead of 2x2 at 48x48, as layer4 of our ResNet18 and the last block of our VGG16 do.
    last_stage = body.features[6]
    downsample = next(m for m in last_stage.modules() if isinstance(m, nn.Conv2d) and m.stride == (2, 2))
    downsample.stride = (1, 1)
    if not pretrained:
        _zero_init_residual_branches(body)
    last = body.classifier[-1]
    body.classifier[-1] = nn.Linear(last.in_features, NUM_CLASSES)
    return FERNet(_adapter(spec, pretrained), body)


def _zero_init_residual_branches(body: nn.Module) -> None:
    """Zero the last BatchNorm scale of every residual (Fused)MBConv block, so each block starts as
    the identity (Goyal et al. 2017, "Accurate, Large Minibatch SGD").

    Measured here: with torchvision's init, EfficientNetV2-S from scratch did not learn at all
    (3 epochs on FER2013 stuck at 24.9 % train and val accuracy, the majority class; 60 AdamW
    steps on 280 images left the loss at 2.05), while with this init the same 60 steps took the
    loss from 1.66 to 0.06."""
    for block in body.modules():
        if getattr(block, "use_res_connect", False):
            norms = [m for m in block.block.modules() if isinstance(m, nn.BatchNorm2d)]
            nn.init.zeros_(norms[-1].weight)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
