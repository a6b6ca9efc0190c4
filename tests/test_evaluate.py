"""Evaluation runs: schema, metrics against scikit-learn and a hand recount, the ensemble, TTA,
the weights' identity, and the results writer/reader on good and hostile files."""

from __future__ import annotations

import copy
import hashlib
import json

import numpy as np
import pytest
from conftest import tiny_data
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_score, recall_score
from tiny_onnx import metadata as tiny_metadata

from fer_core.errors import WeightsError
from fer_core.evaluate import ENSEMBLE, evaluate, evaluate_all
from fer_core.labels import EMOTIONS
from fer_core.preprocess import softmax, to_model_input
from fer_core.registry import get_spec, list_models
from fer_core.results import SCHEMA, RunSchemaError, load_runs, parse_run, validate_run, write_run
from fer_core.serving import OnnxModel

K = len(EMOTIONS)


@pytest.fixture(scope="module")
def data():
    return tiny_data()


@pytest.fixture(scope="module")
def run(weights_dir, data):
    return evaluate("resnet18", "test", data=data, weights_dir=str(weights_dir), threads=1)


@pytest.fixture(scope="module")
def ensemble_run(weights_dir, data):
    return evaluate(ENSEMBLE, "test", data=data, weights_dir=str(weights_dir), threads=1)


@pytest.mark.parametrize("which", ["run", "ensemble_run"])
def test_metrics_match_scikit_learn_and_a_recount(which, request, data):
    r = request.getfixturevalue(which)
    assert validate_run(r) is r
    test = data["test"]
    n = len(test)
    assert r["data"]["n"] == n and r["split"] == "test" and r["labels"] == list(EMOTIONS)
    assert r["samples"]["ids"] == test.ids and r["samples"]["y_true"] == test.labels.tolist()
    y, y_pred = np.array(r["samples"]["y_true"]), np.argmax(r["samples"]["probs"], axis=1)
    m = r["metrics"]
    cm = np.array(m["confusion_matrix"])
    assert cm.sum() == n
    assert np.array_equal(cm, confusion_matrix(y, y_pred, labels=range(K)))
    assert m["accuracy"] == pytest.approx(accuracy_score(y, y_pred))
    assert m["accuracy"] == pytest.approx(np.trace(cm) / n)
    for avg in ("macro", "weighted"):
        kw = dict(labels=list(range(K)), average=avg, zero_division=0)
        assert m[avg]["f1"] == pytest.approx(f1_score(y, y_pred, **kw))
        assert m[avg]["precision"] == pytest.approx(precision_score(y, y_pred, **kw))
        assert m[avg]["recall"] == pytest.approx(recall_score(y, y_pred, **kw))
    for i, name in enumerate(EMOTIONS):  # one-vs-rest counts straight from the matrix
        tp = cm[i, i]
        fp, fn = cm[:, i].sum() - tp, cm[i, :].sum() - tp
        tn = n - tp - fp - fn
        row = m["per_class"][name]
        assert row["support"] == int((y == i).sum())
        assert row["specificity"] == pytest.approx(tn / (tn + fp) if tn + fp else 0.0)
        assert row["recall"] == pytest.approx(tp / (tp + fn) if tp + fn else 0.0)
        assert row["precision"] == pytest.approx(tp / (tp + fp) if tp + fp else 0.0)
    np.testing.assert_allclose(np.sum(r["samples"]["probs"], axis=1), 1.0, atol=1e-5)


def test_ensemble_is_the_mean_of_its_models(ensemble_run, run):
    assert ensemble_run["models"] == list_models()
    per_model = ensemble_run["samples"]["per_model"]
    assert list(per_model) == list_models()
    mean = np.mean([per_model[m] for m in list_models()], axis=0)
    np.testing.assert_allclose(ensemble_run["samples"]["probs"], mean, rtol=0, atol=2e-6)  # 6-decimal rounding
    assert per_model["resnet18"] == run["samples"]["probs"]  # same weights, same numbers
    assert "per_model" not in run["samples"]
    assert [w["model"] for w in ensemble_run["weights"]] == list_models()


def test_weights_identity_and_selection_are_recorded(run, ensemble_run, weights_dir):
    for r in (run, ensemble_run):
        for w in r["weights"]:
            onnx_file = weights_dir / f"{w['model']}.onnx"
            assert w["file"] == onnx_file.name
            assert w["sha256"] == hashlib.sha256(onnx_file.read_bytes()).hexdigest()
            assert w["bytes"] == onnx_file.stat().st_size
            assert w["parameters"] == get_spec(w["model"]).parameters
            # what the file says it was exported from (test_export: a real export's is its best.pt's hash)
            assert w["checkpoint_sha256"] == tiny_metadata(w["model"])["checkpoint_sha256"]
        for m in r["models"]:
            assert r["selection"][m]["split"] == "val" and r["selection"][m]["epoch"] == 1
            assert len(r["history"][m]) == 1
    assert run["timing"]["backend"] == "OnnxModel" and run["timing"]["images_per_second"] > 0


@pytest.mark.parametrize("tta", ["flip", "tencrop"])
def test_tta_runs_are_valid_and_average_their_views(tta, weights_dir, data):
    r = evaluate("resnet18", "test", tta=tta, data=data, weights_dir=str(weights_dir), threads=1, limit=6)
    assert validate_run(r) is r and r["tta"] == tta and r["data"]["n"] == 6
    if tta == "flip":  # the mean of the face's and its mirror's softmax
        model = OnnxModel(weights_dir / "resnet18.onnx", threads=1)
        faces = data["test"].images[:6]
        expected = (softmax(model(to_model_input(faces))) + softmax(model(to_model_input(faces[:, :, ::-1])))) / 2
        np.testing.assert_allclose(r["samples"]["probs"], expected, rtol=0, atol=2e-6)


@pytest.mark.torch
def test_a_torch_checkpoint_evaluates_like_its_onnx_export(trained_weights_dir, data):
    exported = evaluate("resnet18", "test", data=data, weights_dir=str(trained_weights_dir), threads=1)
    pt = trained_weights_dir / "resnet18.pt"
    r = evaluate("resnet18", "test", data=data, weights=str(pt), threads=1)
    assert r["timing"]["backend"] == "TorchCheckpointModel" and exported["timing"]["backend"] == "OnnxModel"
    assert r["weights"][0]["sha256"] == hashlib.sha256(pt.read_bytes()).hexdigest()
    # the .pt is the fp16 copy of the weights the ONNX file holds in fp32
    np.testing.assert_allclose(r["samples"]["probs"], exported["samples"]["probs"], rtol=0, atol=5e-3)


def test_wrong_model_arguments_are_value_errors(weights_dir, data):
    with pytest.raises(ValueError, match="known models: efficientnet_v2_s, resnet18, vgg16"):
        evaluate("resnet50", data=data, weights_dir=str(weights_dir))
    with pytest.raises(ValueError, match="holds resnet18, not vgg16"):
        evaluate("vgg16", data=data, weights=str(weights_dir / "resnet18.onnx"))
    with pytest.raises(ValueError, match="ensemble uses every model"):
        evaluate(ENSEMBLE, data=data, weights=str(weights_dir / "resnet18.onnx"))


def test_ensemble_of_the_models_shipped_so_far(weights_dir, data, run, tmp_path):
    """Two of three models shipped: their ensemble; one: a clear error, not a crash."""
    two = tmp_path / "two"
    two.mkdir()
    for name in ("resnet18", "vgg16"):
        (two / f"{name}.onnx").write_bytes((weights_dir / f"{name}.onnx").read_bytes())
    r = evaluate(ENSEMBLE, data=data, weights_dir=str(two), threads=1)
    assert r["models"] == ["resnet18", "vgg16"]
    (two / "vgg16.onnx").unlink()
    with pytest.raises(WeightsError, match="at least two models' weights .* found resnet18.onnx"):
        evaluate(ENSEMBLE, data=data, weights_dir=str(two), threads=1)


def test_write_and_load_round_trip(run, ensemble_run, tmp_path):
    path = write_run(run, tmp_path)
    assert path == tmp_path / "resnet18_test_none.json"
    explicit = write_run(ensemble_run, tmp_path / "sub" / "mine.json")
    assert explicit == tmp_path / "sub" / "mine.json" and explicit.is_file()
    # files of other kinds in the folder are skipped, not fatal
    (tmp_path / "bench.json").write_text(json.dumps({"schema": "fer_core.bench/1", "rows": []}))
    (tmp_path / "broken.json").write_text('{"schema":"' + SCHEMA + '", "name": ')
    (tmp_path / "notes.txt").write_text("not a run")
    (loaded,) = load_runs(tmp_path)
    assert loaded.pop("_file") == path.name
    assert loaded == json.loads(json.dumps(run))
    assert not list(tmp_path.glob(".*.tmp"))
    (again,) = load_runs(tmp_path / "sub")
    again.pop("_file")
    assert again == json.loads(json.dumps(ensemble_run))


def test_write_run_refuses_an_invalid_run_and_leaves_no_file(run, tmp_path):
    bad = copy.deepcopy(run)
    bad["metrics"]["accuracy"] = 1.5
    with pytest.raises(RunSchemaError, match="accuracy"):
        write_run(bad, tmp_path)
    unwritable = copy.deepcopy(run)
    unwritable["environment"]["odd"] = object()  # not JSON: the atomic write must clean up
    with pytest.raises(TypeError):
        write_run(unwritable, tmp_path)
    assert list(tmp_path.iterdir()) == []


def _empty(r):
    """A consistent run of zero images (the dashboard cannot draw it: rejected)."""
    r["data"]["n"] = 0
    r["metrics"]["confusion_matrix"] = [[0] * K for _ in range(K)]
    r["samples"].update(ids=[], y_true=[], probs=[])


def _mutations():
    """(description, change to a valid run, words the error must contain)."""

    def setter(path, value):
        def change(r):
            target = r
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value

        return change

    def deleter(key):
        return lambda r: r.pop(key)

    return [
        ("wrong schema", setter(["schema"], "fer_core.run/0"), "schema"),
        ("missing field", deleter("metrics"), "missing field 'metrics'"),
        ("labels reordered", setter(["labels"], sorted(EMOTIONS, reverse=True)), "labels"),
        ("models not names", setter(["models"], [["resnet18"]]), "models"),
        ("metrics a list", setter(["metrics"], []), "metrics"),
        ("macro a list", setter(["metrics", "macro"], [1, 2, 3]), "metrics.macro"),
        ("per_class a list", setter(["metrics", "per_class"], list(EMOTIONS)), "per_class"),
        ("per_class row a number", setter(["metrics", "per_class", "happy"], 0.5), "per_class.happy"),
        ("matrix a number", setter(["metrics", "confusion_matrix"], 7), "confusion_matrix"),
        ("matrix rows numbers", setter(["metrics", "confusion_matrix"], list(range(K))), "confusion_matrix"),
        ("matrix negative", setter(["metrics", "confusion_matrix"], [[-1] * K] * K), "confusion_matrix"),
        ("n disagrees", setter(["data", "n"], 999), "data.n"),
        ("probs wrong length", setter(["samples", "probs"], [[0.5, 0.5]] * 32), "samples.probs"),
        ("probs not numbers", setter(["samples", "probs"], [["x"] * K] * 32), "samples.probs"),
        ("y_true out of range", setter(["samples", "y_true"], [K] * 32), "y_true"),
        ("ids not strings", setter(["samples", "ids"], [{}] * 32), "samples.ids"),
        ("per_model a list", setter(["samples", "per_model"], [1]), "per_model"),
        ("per_model rows short", setter(["samples", "per_model"], {"resnet18": [[1.0]] * 32}), "per_model"),
        ("no models", setter(["models"], []), "non-empty list"),
        ("weights entry null", setter(["weights"], [None]), "each entry of weights"),
        ("weights bytes text", setter(["weights", 0, "bytes"], "big"), "weights[].bytes"),
        ("history not rows", setter(["history"], {"resnet18": [1]}), "history.resnet18"),
        ("history of another model", setter(["history"], {"x": []}), "history may only have entries"),
        (
            "history value text",
            setter(["history"], {"resnet18": [{"epoch": 1, "val_acc": "high"}]}),
            "history.resnet18[].val_acc",
        ),
        ("selection a number", setter(["selection"], {"resnet18": 3}), "selection.resnet18"),
        ("timing speed text", setter(["timing", "images_per_second"], "fast"), "timing.images_per_second"),
        ("no images", _empty, "data.n must be an integer from 1"),
    ]


@pytest.mark.parametrize("what, change, words", _mutations(), ids=[m[0] for m in _mutations()])
def test_parse_run_names_what_is_wrong(run, what, change, words):
    bad = copy.deepcopy(run)
    change(bad)
    with pytest.raises(RunSchemaError) as err:
        parse_run(json.dumps(bad), "upload.json")
    assert str(err.value).startswith("upload.json: ") and words in str(err.value), str(err.value)


@pytest.mark.parametrize(
    "raw, words",
    [
        (b"this is not json", "is not JSON"),
        (b"\xff\xfe\x00garbage", "is not JSON"),
        ("[1, 2, 3]", "one JSON object"),
        ("[" * 200_000 + "]" * 200_000, "nested too deeply"),
        ('{"a": ' * 200_000 + "1" + "}" * 200_000, "nested too deeply"),
    ],
    ids=["text", "binary", "array", "deep-array", "deep-object"],
)
def test_parse_run_rejects_non_runs(raw, words):
    with pytest.raises(RunSchemaError, match=words):
        parse_run(raw, "upload.json")


def test_parse_run_caps_the_size(run, monkeypatch):
    import fer_core.results

    raw = json.dumps(run)
    assert parse_run(raw)["name"] == "resnet18"
    monkeypatch.setattr(fer_core.results, "MAX_RUN_BYTES", len(raw) - 1)
    with pytest.raises(RunSchemaError, match="run files are at most"):
        parse_run(raw, "upload.json")


def test_evaluate_all_is_each_model_and_the_ensemble_from_one_pass(weights_dir, data, run, ensemble_run):
    """`evaluate --model all`: the same runs as evaluating each model and the ensemble apart."""
    runs = evaluate_all("test", "flip", data=data, weights_dir=str(weights_dir), threads=1)
    assert [r["name"] for r in runs] == [*list_models(), ENSEMBLE]
    by_name = {r["name"]: r for r in runs}
    flip_apart = evaluate("vgg16", "test", "flip", data=data, weights_dir=str(weights_dir), threads=1)
    plain = evaluate_all("test", "none", data=data, weights_dir=str(weights_dir), threads=1)
    for mine, apart in [
        (by_name["vgg16"], flip_apart),
        (plain[list_models().index("resnet18")], run),
        (plain[-1], ensemble_run),
    ]:
        assert validate_run(mine) is mine and mine["tta"] == apart["tta"]
        for key in ("name", "models", "weights", "samples", "metrics", "history", "selection", "data"):
            assert mine[key] == apart[key], key
        assert set(mine["timing"]["per_model_seconds"]) == set(mine["models"])
    ens = by_name[ENSEMBLE]
    for m in list_models():  # the ensemble's per-model reading is that model's own run
        assert ens["samples"]["per_model"][m] == by_name[m]["samples"]["probs"]
    assert "per_model" not in by_name["resnet18"]["samples"]
