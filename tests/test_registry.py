"""The registry against reality: every model builds, gives (B, 7), and matches its metadata.

Building a network needs torch (the tests marked `torch`); the registry itself does not."""

from __future__ import annotations

import pytest

import fer_core
from fer_core import EMOTIONS, get_spec, list_models
from fer_core.labels import FER_CSV_CODE_TO_INDEX


def test_registry_lists_the_three_study_models():
    assert list_models() == ["efficientnet_v2_s", "resnet18", "vgg16"]


def test_unknown_model_is_a_value_error_listing_the_known_ones():
    with pytest.raises(ValueError) as err:
        get_spec("resnet50")
    for name in list_models():
        assert name in str(err.value)


def test_label_order_is_imagefolder_order():
    assert EMOTIONS == ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
    assert list(EMOTIONS) == sorted(EMOTIONS)
    assert fer_core.EMOTIONS is EMOTIONS


def test_csv_codes_map_to_our_names():
    # fer2013.csv: 0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral
    names = {code: EMOTIONS[i] for code, i in FER_CSV_CODE_TO_INDEX.items()}
    assert names == {0: "angry", 1: "disgust", 2: "fear", 3: "happy", 4: "sad", 5: "surprise", 6: "neutral"}


@pytest.mark.torch
@pytest.mark.parametrize("name", list_models())
def test_model_builds_and_matches_its_spec(name):
    import torch

    from fer_core.models import build_model, count_parameters

    spec = get_spec(name)
    torch.manual_seed(0)
    model = build_model(name).eval()
    assert count_parameters(model) == spec.parameters
    x = torch.rand(3, 1, 48, 48)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (3, len(EMOTIONS))
    assert torch.isfinite(y).all()
    # normalisation lives in the network, with the spec's numbers
    assert model.adapter.mean.item() == pytest.approx(spec.mean)
    assert model.adapter.std.item() == pytest.approx(spec.std)
    # the stem takes one gray channel
    first_conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert first_conv.in_channels == 1


def test_spec_round_trips_as_plain_types():
    import json

    for name in list_models():
        d = get_spec(name).to_dict()
        assert json.loads(json.dumps(d)) == d
        assert d["name"] == name


@pytest.mark.torch
@pytest.mark.parametrize("name", list_models())
def test_every_model_ends_on_a_3x3_map_at_48_pixels(name):
    """The 48x48 adaptations keep the last feature map at 3x3 (torchvision's strides would leave
    2x2 for ResNet18 and EfficientNetV2-S, 1x1 for VGG16): the pool sees where the parts of a face are."""
    import torch

    from fer_core.models import build_model

    model = build_model(name).eval()
    seen = []
    model.body.avgpool.register_forward_hook(lambda _m, inputs, _out: seen.append(tuple(inputs[0].shape)))
    with torch.no_grad():
        model(torch.rand(1, 1, 48, 48))
    assert seen and seen[0][-2:] == (3, 3), seen
