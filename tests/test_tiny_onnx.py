"""The tiny stand-in weights of the serving and app tests (tiny_onnx.py): small, deterministic,
loaded through every check of the real loader, reading faces differently per model, and, in the
torch tier, the model `onnx` itself builds, with the metadata keys of a real export."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import tiny_data
from tiny_onnx import INPUT, IR_VERSION, OPSET, OUTPUT, doc_string, metadata, tiny_onnx_bytes, tiny_parameters

from fer_core.cards import CARD_SCHEMA
from fer_core.preprocess import predict_proba
from fer_core.provenance import sha256_file
from fer_core.registry import list_models
from fer_core.serving import META_KEY, load_models


def test_tiny_weights_are_small_deterministic_and_pass_the_loaders_checks(weights_dir):
    models = load_models(weights_dir=weights_dir)  # every file against its card, name and labels
    assert list(models) == list_models()
    for name, model in models.items():
        raw = (weights_dir / f"{name}.onnx").read_bytes()
        assert raw == tiny_onnx_bytes(name) and len(raw) < 8_000
        assert model.meta == metadata(name)
        card = json.loads((weights_dir / f"{name}.card.json").read_text())
        assert card["schema"] == CARD_SCHEMA and card["model"] == name
        assert card["files"]["onnx"]["sha256"] == sha256_file(weights_dir / f"{name}.onnx") == model.sha256
    assert len({tiny_onnx_bytes(name) for name in list_models()}) == len(list_models())


def test_the_tiny_models_read_the_synthetic_faces_and_differ(weights_dir):
    models = load_models(weights_dir=weights_dir, threads=1)
    test = tiny_data()["test"]
    probs = {name: predict_proba(model, test.images) for name, model in models.items()}
    for name, p in probs.items():
        assert (p.argmax(1) == test.labels).mean() > 0.5, name  # chance is 1/7
        flipped = predict_proba(models[name], np.ascontiguousarray(test.images[:, :, ::-1]))
        assert np.abs(flipped - p).max() > 1e-3, name  # a mirrored face reads differently
    names = list(probs)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert np.abs(probs[a] - probs[b]).max() > 0.05, (a, b)
    agree = len({tuple(p.argmax(1)) for p in probs.values()}) == 1
    assert not agree, "the three models should disagree on some face, or ensemble tests cannot tell them apart"


@pytest.mark.torch
@pytest.mark.parametrize("name", list_models())
def test_the_hand_written_protobuf_is_the_model_onnx_builds(name):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    weight, bias = tiny_parameters(name)
    graph = helper.make_graph(
        [
            helper.make_node("AveragePool", [INPUT], ["pooled"], kernel_shape=[6, 6], strides=[6, 6]),
            helper.make_node("Flatten", ["pooled"], ["features"], axis=1),
            helper.make_node("Gemm", ["features", "weight", "bias"], [OUTPUT]),
        ],
        f"tiny_{name}",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", 1, 48, 48])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", 7])],
        [numpy_helper.from_array(weight, "weight"), numpy_helper.from_array(bias, "bias")],
    )
    expected = helper.make_model(
        graph,
        ir_version=IR_VERSION,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="fer_core tests",
        doc_string=doc_string(name),
    )
    helper.set_model_props(expected, {META_KEY: json.dumps(metadata(name))})
    ours = tiny_onnx_bytes(name)
    assert onnx.load_from_string(ours) == expected
    assert ours == expected.SerializeToString()
    onnx.checker.check_model(onnx.load_from_string(ours), full_check=True)


def _keys(meta: dict) -> dict[str, object]:
    """The metadata's keys, and those of its nested records, without the values."""
    return {
        "top": sorted(meta),
        "config": sorted(meta["config"]),
        "augment": sorted(meta["config"]["augment"]),
        "best": sorted(meta["best"]),
        "history": [sorted(row) for row in meta["history"]],
        "data": sorted(meta["data"]),
        "input": meta["input"],
        "spec": meta["spec"],
    }


@pytest.mark.torch
def test_tiny_metadata_has_the_fields_of_a_real_export(trained_weights_dir):
    real = load_models(weights_dir=trained_weights_dir, threads=1)
    for name, model in real.items():
        # a difference here: tests/tiny_onnx.py (CONFIG, HISTORY_ROW, metadata()) is behind fer_core.export
        assert _keys(metadata(name)) == _keys(model.meta), name
        assert metadata(name)["parameters"] == model.meta["parameters"]
