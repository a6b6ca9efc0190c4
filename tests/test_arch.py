"""Architecture choices beyond the registry spec (registry.ARCH_OPTIONS): EfficientNetV2-S at output
stride 8, its stochastic depth and dropout; recorded with the weights, checked before training."""

from __future__ import annotations

from dataclasses import asdict

import pytest

from fer_core.cards import train_command
from fer_core.config import TrainConfig
from fer_core.registry import check_arch, get_spec

torch = pytest.importorskip("torch")  # the torch tier

from fer_core.checkpoint import model_from_checkpoint  # noqa: E402
from fer_core.models import build_model, count_parameters  # noqa: E402

pytestmark = pytest.mark.torch


def _final_map(net) -> tuple[int, int]:
    with torch.no_grad():
        x = net.adapter(torch.rand(1, 1, 48, 48))
        return tuple(net.body.features(x).shape[-2:])


def test_output_stride_8_keeps_a_6x6_map_with_the_same_weights():
    torch.manual_seed(0)
    registered, os8 = build_model("efficientnet_v2_s").eval(), build_model("efficientnet_v2_s", output_stride=8).eval()
    assert _final_map(registered) == (3, 3) and _final_map(os8) == (6, 6)
    assert count_parameters(os8) == count_parameters(registered) == get_spec("efficientnet_v2_s").parameters
    os8.load_state_dict(registered.state_dict())  # every variant's weights load into every other
    with torch.no_grad():
        assert os8(torch.rand(2, 1, 48, 48)).shape == (2, 7)


def test_stochastic_depth_and_dropout_are_set_where_asked():
    net = build_model("efficientnet_v2_s", drop_path=0.0, dropout=0.1)
    depths = [m.p for m in net.modules() if type(m).__name__ == "StochasticDepth"]
    assert depths and all(p == 0.0 for p in depths)
    assert [m.p for m in net.body.classifier if isinstance(m, torch.nn.Dropout)] == [0.1]
    default = build_model("efficientnet_v2_s")
    assert max(m.p for m in default.modules() if type(m).__name__ == "StochasticDepth") > 0  # torchvision's 0.2


def test_a_checkpoint_rebuilds_its_own_variant():
    net = build_model("efficientnet_v2_s", output_stride=8)
    ckpt = {"model": "efficientnet_v2_s", "arch": {"output_stride": 8}, "state_dict": net.state_dict()}
    assert _final_map(model_from_checkpoint(ckpt)) == (6, 6)
    assert _final_map(model_from_checkpoint({**ckpt, "arch": {}})) == (3, 3)  # files of before: as registered


@pytest.mark.parametrize(
    ("name", "arch", "says"),
    [
        ("resnet18", {"drop_path": 0.1}, "drop-path is an option of efficientnet_v2_s, not of resnet18"),
        ("vgg16", {"output_stride": 4}, "takes 16 or 8"),
        ("efficientnet_v2_s", {"output_stride": 4}, "takes 16 or 8"),
        ("efficientnet_v2_s", {"drop_path": 1.5}, "a probability in"),
        ("efficientnet_v2_s", {"width": 2}, "unknown architecture option 'width'"),
    ],
)
def test_options_a_network_does_not_take_are_refused(name, arch, says):
    with pytest.raises(ValueError, match=says):
        check_arch(name, arch)
    with pytest.raises(ValueError, match=says):
        build_model(name, **arch)


def test_the_config_records_its_choices_and_the_card_repeats_them():
    cfg = TrainConfig(model="efficientnet_v2_s", output_stride=8, drop_path=0.0, dropout=0.1).resolved()
    assert cfg.arch() == {"output_stride": 8, "drop_path": 0.0, "dropout": 0.1}
    assert "--output-stride 8 --drop-path 0.0 --dropout 0.1" in train_command(asdict(cfg))
    assert TrainConfig(model="efficientnet_v2_s").resolved().arch() == {}
    with pytest.raises(ValueError, match="not of vgg16"):
        TrainConfig(model="vgg16", dropout=0.1).resolved()


def test_bench_train_times_the_variant_asked_for():
    from fer_core.bench_train import time_epoch

    row = time_epoch("efficientnet_v2_s", steps=1, warmup=1, batch_size=4, output_stride=8)
    assert row["arch"] == {"output_stride": 8} and row["seconds_per_step"] > 0


@pytest.mark.parametrize("name", ["resnet18", "vgg16"])
def test_resnet18_and_vgg16_at_output_stride_8_keep_a_6x6_map_with_the_same_weights(name):
    torch.manual_seed(0)
    registered, os8 = build_model(name).eval(), build_model(name, output_stride=8).eval()

    def last_map(net):
        seen = []
        last = net.body.layer4 if name == "resnet18" else net.body.features
        handle = last.register_forward_hook(lambda _m, _i, out: seen.append(tuple(out.shape[-2:])))
        with torch.no_grad():
            out = net(torch.rand(2, 1, 48, 48))
        handle.remove()
        assert out.shape == (2, 7)
        return seen[0]

    assert last_map(registered) == (3, 3) and last_map(os8) == (6, 6)
    assert count_parameters(os8) == count_parameters(registered) == get_spec(name).parameters
    os8.load_state_dict(registered.state_dict())  # the same keys and shapes: files load into either
