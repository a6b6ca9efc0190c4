"""int8 weights (`python -m fer_core quantize`): real QDQ graphs that serve like any export and say what they are."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import write_tree

from fer_core import cli
from fer_core.errors import WeightsError
from fer_core.preprocess import to_model_input
from fer_core.provenance import sha256_file
from fer_core.quantize import (
    BATCH,
    CHUNK_BATCHES,
    CalibrationFaces,
    calibration_faces,
    chunk_batches,
    quantize_file,
    quantize_model,
)
from fer_core.serving import OnnxModel

pytestmark = pytest.mark.torch  # the onnx package and real exported networks come with the dev requirements


def _ops(path) -> set[str]:
    import onnx

    return {n.op_type for n in onnx.load(str(path)).graph.node}


def test_calibration_faces_are_a_seeded_sample_of_the_training_faces(tiny):
    images = tiny["train"].images
    a, b = calibration_faces(images, 10), calibration_faces(images, 10)
    assert a.shape == (10, 1, 48, 48) and a.dtype == np.float32 and np.array_equal(a, b)
    assert calibration_faces(images, 10_000).shape[0] == len(images)  # never more than there are
    with pytest.raises(ValueError, match="no training faces"):
        calibration_faces(images[:0])


@pytest.mark.parametrize("method", ["minmax", "percentile"])
def test_a_quantized_network_is_int8_and_reads_like_its_source(trained_weights_dir, tiny, tmp_path, method):
    src = trained_weights_dir / "resnet18.onnx"
    out = quantize_file(src, tmp_path / "resnet18.onnx", to_model_input(tiny["train"].images), method)
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= _ops(out) and "QuantizeLinear" not in _ops(src)
    assert out.stat().st_size < 0.4 * src.stat().st_size  # int8 weights: about a quarter of fp32
    fp32, int8 = OnnxModel(src, verify=False), OnnxModel(out, verify=False)
    assert (fp32.precision, int8.precision) == ("fp32", "int8") and int8.describe()["precision"] == "int8"
    q = int8.meta["quantization"]
    assert q["source_sha256"] == sha256_file(src) and q["calibration_faces"] == len(tiny["train"]) // BATCH * BATCH
    assert q["method"].startswith(method)
    assert {k: v for k, v in int8.meta.items() if k not in ("precision", "quantization")} == fp32.meta
    x = to_model_input(tiny["val"].images)
    ref, got = fp32(x), int8(x)
    assert got.shape == ref.shape and np.isfinite(got).all()
    spread = float(np.abs(ref).max())
    assert float(np.abs(got - ref).max()) < 0.1 * spread + 0.05  # an int8 reading of the same function


def test_quantize_refuses_its_own_source_and_int8_input(trained_weights_dir, tiny, tmp_path):
    src = trained_weights_dir / "vgg16.onnx"
    faces = to_model_input(tiny["train"].images[:8])
    with pytest.raises(ValueError, match="fp32 source itself"):
        quantize_file(src, src, faces)
    with pytest.raises(ValueError, match="unknown method"):
        quantize_file(src, tmp_path / "x.onnx", faces, "kl")
    once = quantize_file(src, tmp_path / "vgg16.onnx", faces)
    with pytest.raises(WeightsError, match="already int8"):
        quantize_file(once, tmp_path / "twice.onnx", faces)


def test_auto_keeps_the_method_that_agrees_most_with_fp32_on_val(trained_weights_dir, tiny, tmp_path):
    val = (tiny["val"].images, tiny["val"].labels)
    report = quantize_model("resnet18", trained_weights_dir / "resnet18.onnx", tmp_path, tiny["train"].images, val)
    assert set(report["candidates"]) == set(report["agreement"]) == {"minmax", "percentile"}
    assert report["val_agreement"] == max(report["agreement"].values()) == report["agreement"][report["method"]]
    assert all(0 <= a <= 1 for a in report["agreement"].values())
    written = OnnxModel(tmp_path / "resnet18.onnx", verify=False)
    assert written.meta["quantization"]["method"].startswith(report["method"])
    with pytest.raises(ValueError, match="needs the val split"):
        quantize_model("resnet18", trained_weights_dir / "resnet18.onnx", tmp_path, tiny["train"].images)


def _folders(tmp_path):
    return write_tree(tmp_path / "data", {"train": ["Training"], "val": ["PublicTest"], "test": ["PrivateTest"]})


def test_the_cli_writes_int8_files_a_predictor_serves(trained_weights_dir, tmp_path, capsys):
    from fer_core.predict import Predictor

    out = tmp_path / "int8"
    argv = ["quantize", "--data", str(_folders(tmp_path)), "--weights-dir", str(trained_weights_dir), "--out", str(out)]
    assert cli.main([*argv, "--faces", "16"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 3 and all("int8" in line and "-> " in line for line in printed)
    predictor = Predictor.load(out)
    face = np.full((48, 48), 128, np.uint8)
    analysis = predictor.analyze(face, detect=False)
    assert len(analysis.faces) == 1 and set(analysis.faces[0].probabilities) == set(predictor.model_names)
    assert json.loads(json.dumps(predictor.models["resnet18"].describe()))["precision"] == "int8"


def test_the_cli_bounds_its_arguments(trained_weights_dir, tmp_path, capsys):
    data = str(_folders(tmp_path))
    argv = ["quantize", "--data", data, "--weights-dir", str(trained_weights_dir), "--out", str(tmp_path)]
    assert cli.main([*argv, "--faces", "0"]) == 2
    assert "--faces must be at least 1" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.onnx"))


def test_calibration_reads_the_faces_in_bounded_chunks_of_whole_batches():
    """ONNX Runtime holds every batch of a collect call in memory: the reader hands it a range of
    batches at a time, and every face is read exactly once over the chunks."""

    faces = np.arange(BATCH * 6, dtype=np.float32).reshape(-1, 1, 1, 1)
    reader = CalibrationFaces(faces)
    assert len(reader) == 6
    stride = chunk_batches(len(reader))
    assert stride == 3 and stride <= CHUNK_BATCHES
    seen = []
    for start in range(0, len(reader), stride):
        reader.set_range(start, start + stride)
        chunk = []
        while (batch := reader.get_next()) is not None:
            chunk.append(batch["faces"])
        assert len(chunk) == stride
        seen.extend(chunk)
    assert np.array_equal(np.concatenate(seen), faces)
    assert chunk_batches(20) == 4 and chunk_batches(7) == 1 and chunk_batches(1) == 1
