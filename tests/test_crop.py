"""`train --crop 44`: training on random 44x44 windows, serving the centre window, and ten-crop
TTA that hands such a network exactly its ten crops. Weights without a crop load as before."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import tiny_data

from fer_core.preprocess import TENCROP_SIZE, tta_views
from fer_core.serving import OnnxModel

torch = pytest.importorskip("torch")  # the torch tier: where torch is not installed, the module is skipped

from fer_core.augment import random_crop  # noqa: E402
from fer_core.checkpoint import architecture, load_checkpoint, model_from_checkpoint  # noqa: E402
from fer_core.export import export_onnx  # noqa: E402
from fer_core.models import build_model  # noqa: E402
from fer_core.train import TrainConfig, main  # noqa: E402

pytestmark = pytest.mark.torch


def test_random_crop_takes_windows_of_each_image():
    x = torch.arange(2 * 48 * 48, dtype=torch.float32).view(2, 1, 48, 48)
    out = random_crop(x, 44, torch.Generator().manual_seed(0))
    assert out.shape == (2, 1, 44, 44)
    for b in range(2):
        y0, x0 = divmod(int(out[b, 0, 0, 0] - b * 48 * 48), 48)
        assert 0 <= y0 <= 4 and 0 <= x0 <= 4
        assert torch.equal(out[b, 0], x[b, 0, y0 : y0 + 44, x0 : x0 + 44])
    offsets = {tuple(divmod(int(v), 48)) for v in random_crop(x.repeat(50, 1, 1, 1), 44, torch.Generator())[:, 0, 0, 0]}
    assert len(offsets) > 5  # not always the same window


def test_a_crop_network_reads_the_centre_window_of_a_whole_face():
    torch.manual_seed(0)
    net = build_model("resnet18", crop=44).eval()
    x = torch.rand(3, 1, 48, 48)
    with torch.no_grad():
        assert torch.allclose(net(x), net(x[:, :, 2:46, 2:46]), atol=1e-6)
        whole = build_model("resnet18").eval()
        whole.load_state_dict(net.state_dict())  # the same weights, built without the crop
        assert not torch.allclose(whole(x), net(x), atol=1e-4)


def test_tencrop_views_show_a_crop_network_its_ten_crops():
    faces = np.random.default_rng(0).integers(0, 256, size=(2, 48, 48), dtype=np.uint8)
    views = tta_views(faces, "tencrop")
    m = 48 - TENCROP_SIZE
    centres = [v[:, 2:46, 2:46] for v in views]
    crops = []
    for y, x in ((0, 0), (0, m), (m, 0), (m, m), (m // 2, m // 2)):
        c = faces[:, y : y + 44, x : x + 44]
        crops += [c, c[:, :, ::-1]]
    for got, want in zip(centres, crops, strict=True):
        assert np.array_equal(got, want)
    assert all(v.shape == (2, 48, 48) for v in views)


def test_crop_training_records_the_architecture_and_exports(tmp_path):
    data = tiny_data(n_train=32, n_val=16)
    cfg = TrainConfig(
        model="resnet18", out=str(tmp_path), epochs=1, batch_size=16, lr=0.05, progress=False, threads=2, crop=44
    )
    main(cfg, data=data)
    best = tmp_path / "resnet18" / "best.pt"
    ckpt = load_checkpoint(best)
    assert architecture(ckpt) == {"crop": 44} and ckpt["config"]["crop"] == 44
    model = model_from_checkpoint(ckpt)
    assert model.adapter.crop == 44
    export_onnx(best, tmp_path / "r.onnx")  # checks ONNX Runtime against torch on 48x48 faces
    onnx = OnnxModel(tmp_path / "r.onnx", verify=False)
    assert onnx.meta["arch"] == {"crop": 44}
    x = np.random.default_rng(1).random((2, 1, 48, 48), dtype=np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x[:, :, 2:46, 2:46].copy())).numpy()
    assert np.allclose(onnx(x), ref, atol=1e-4)
    with pytest.raises(ValueError, match="crops are 44 px"):
        TrainConfig(model="resnet18", crop=40).resolved()


def test_checkpoints_without_an_architecture_read_the_whole_face():
    assert architecture({"model": "resnet18"}) == {}
