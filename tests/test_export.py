"""Export: ONNX agrees with torch and describes itself, only val-selected checkpoints ship, the
slim fp16 .pt rebuilds the network, and serving the exported files never imports torch."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import run_python, synthetic_faces

from fer_core.errors import WeightsError
from fer_core.labels import EMOTIONS
from fer_core.preprocess import softmax, to_model_input
from fer_core.provenance import sha256_file
from fer_core.registry import get_spec, list_models
from fer_core.serving import META_KEY, ONNX_FORMAT, OnnxModel

torch = pytest.importorskip("torch")  # the torch tier: where torch is not installed, the module is skipped
onnx = pytest.importorskip("onnx")

from fer_core.checkpoint import TRAINING_KEYS, load_checkpoint, model_from_checkpoint, save_atomic  # noqa: E402
from fer_core.export import MAX_ABS_DIFF, check_onnx_matches, export_model, export_onnx  # noqa: E402

pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def fp32_model(checkpoints_dir):
    """name -> the network rebuilt from its fp32 best.pt (built once: EfficientNetV2-S takes seconds)."""
    cache: dict[str, torch.nn.Module] = {}

    def get(name: str) -> torch.nn.Module:
        if name not in cache:
            cache[name] = model_from_checkpoint(load_checkpoint(checkpoints_dir / name / "best.pt"))
        return cache[name]

    return get


def _inputs() -> list[np.ndarray]:
    """FER-like faces and uniform noise, at batch sizes other than the export's dummy batch of 2."""
    rng = np.random.default_rng(0)
    faces, _ = synthetic_faces(7, seed=3)
    return [to_model_input(faces), rng.random((1, 1, 48, 48), dtype=np.float32)]


@pytest.mark.parametrize("name", list_models())
def test_onnx_logits_match_torch(name, trained_weights_dir, fp32_model):
    model = fp32_model(name)
    session = OnnxModel(trained_weights_dir / f"{name}.onnx", threads=1)
    for x in _inputs():
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        got = session(x)
        assert got.shape == (len(x), len(EMOTIONS))
        assert np.abs(ref - got).max() <= MAX_ABS_DIFF


def test_the_export_check_catches_a_differing_network(trained_weights_dir, checkpoints_dir):
    model = model_from_checkpoint(load_checkpoint(checkpoints_dir / "resnet18" / "best.pt"))
    with torch.no_grad():
        model.body.fc[-1].bias.add_(0.01)
    with pytest.raises(RuntimeError, match="differ"):
        check_onnx_matches(trained_weights_dir / "resnet18.onnx", model)


@pytest.mark.parametrize("name", list_models())
def test_onnx_metadata_describes_the_model(name, trained_weights_dir, checkpoints_dir):
    proto = onnx.load(trained_weights_dir / f"{name}.onnx")
    meta = json.loads({p.key: p.value for p in proto.metadata_props}[META_KEY])
    assert meta["format"] == ONNX_FORMAT
    assert meta["model"] == name
    assert meta["labels"] == list(EMOTIONS)
    assert meta["spec"] == get_spec(name).to_dict()
    assert meta["parameters"] == get_spec(name).parameters
    assert meta["selected_on"] == "val" and meta["best"]["split"] == "val"
    assert meta["checkpoint_sha256"] == sha256_file(checkpoints_dir / name / "best.pt")
    assert len(meta["history"]) == meta["epoch"] == 1
    # the serving side reads the same description
    served = OnnxModel(trained_weights_dir / f"{name}.onnx", threads=1)
    assert served.name == name and served.labels == list(EMOTIONS) and served.meta == meta


def _retagged(checkpoints_dir, tmp_path, selected_on):
    ckpt = load_checkpoint(checkpoints_dir / "resnet18" / "best.pt")
    if selected_on is None:
        del ckpt["selected_on"]
    else:
        ckpt["selected_on"] = selected_on
    path = tmp_path / "runs" / "resnet18" / "best.pt"
    save_atomic(ckpt, path)
    return path


@pytest.mark.parametrize("selected_on", ["test", None])
def test_export_refuses_a_checkpoint_not_selected_on_val(selected_on, checkpoints_dir, tmp_path):
    path = _retagged(checkpoints_dir, tmp_path, selected_on)
    with pytest.raises(WeightsError, match="only val-selected checkpoints ship"):
        export_model("resnet18", tmp_path / "runs", tmp_path / "weights")
    # the single-file export (`export --checkpoint`) applies the same rule
    with pytest.raises(WeightsError, match=f"selected on {selected_on!r}"):
        export_onnx(path, tmp_path / "weights" / "resnet18.onnx")
    assert not (tmp_path / "weights").exists() or not any((tmp_path / "weights").iterdir())


@pytest.mark.parametrize("name", list_models())
def test_slim_fp16_checkpoint_rebuilds_the_network(name, trained_weights_dir, checkpoints_dir, fp32_model):
    raw = torch.load(trained_weights_dir / f"{name}.pt", map_location="cpu", weights_only=True)  # no allow-lists
    assert raw["storage"] == "fp16 weights, fp32 norms and biases"
    assert raw["model"] == name and raw["labels"] == list(EMOTIONS) and raw["selected_on"] == "val"
    assert not set(TRAINING_KEYS) & set(raw)
    floats = [v for v in raw["state_dict"].values() if v.is_floating_point()]
    assert floats and all(v.dtype == (torch.float16 if v.ndim > 1 else torch.float32) for v in floats)
    full_file = checkpoints_dir / name / "best.pt"
    assert (trained_weights_dir / f"{name}.pt").stat().st_size < 0.6 * full_file.stat().st_size

    half = model_from_checkpoint(load_checkpoint(trained_weights_dir / f"{name}.pt"))
    full = fp32_model(name)
    x = torch.from_numpy(_inputs()[0])
    with torch.no_grad():
        a, b = full(x).numpy(), half(x).numpy()
    assert np.abs(a - b).max() <= 0.02 * max(1.0, float(np.abs(a).max()))
    assert np.abs(softmax(a) - softmax(b)).max() < 5e-3


def test_serving_never_imports_torch(weights_dir, astronaut_jpeg, tmp_path):
    photo = tmp_path / "astronaut.jpg"
    photo.write_bytes(astronaut_jpeg)
    code = (
        "import sys, fer_core\n"
        "p = fer_core.Predictor.load(sys.argv[1])\n"
        "faces = p.predict(sys.argv[2])\n"
        "assert len(faces) == 1 and len(p.predict(sys.argv[2], detect=False)) == 1, faces\n"
        "import fer_core.batch, fer_core.serving, fer_core.preprocess, fer_core.results\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision'))\n"
        "assert not bad, bad\n"
        "print('ok', p.model_names)\n"
    )
    r = run_python("-c", code, str(weights_dir), str(photo), timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("ok") and all(name in r.stdout for name in list_models())
