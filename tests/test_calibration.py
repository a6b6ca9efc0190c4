"""Calibration: the temperature fit, the metrics (ECE, NLL, Brier, reliability), the stored
temperatures keyed by the weights' hashes, and their use everywhere probabilities are served."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import run_python, tiny_data

from fer_core import Predictor
from fer_core.calibration import (
    BINS,
    FILE_NAME,
    SCHEMA,
    Calibration,
    CalibrationError,
    apply_temperature,
    brier,
    calibration_metrics,
    ece,
    fit_model_calibration,
    fit_temperature,
    load_calibration,
    nll,
    parse_calibration,
    reliability,
    write_calibration,
)
from fer_core.errors import WeightsError
from fer_core.evaluate import calibrate, evaluate
from fer_core.preprocess import calibrated_softmax, predict_proba, softmax, to_model_input
from fer_core.registry import list_models
from fer_core.results import RunSchemaError, validate_run
from fer_core.serving import load_models


def _sampled(n: int, temperature: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels drawn from softmax(logits / temperature): the model behind the logits is
    calibrated exactly at that temperature."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2.0, (n, 7))
    p = softmax(z / temperature)
    y = np.array([rng.choice(7, p=row) for row in p])
    return z, y


@pytest.mark.parametrize("true_t", [0.5, 1.0, 2.5])
def test_fit_recovers_the_temperature_that_generated_the_labels(true_t):
    z, y = _sampled(20_000, true_t)
    t = fit_temperature(softmax(z), y)
    assert abs(t - true_t) / true_t < 0.05
    # and it is the NLL's minimum: nudging it either way costs likelihood
    for other in (t * 0.9, t * 1.1):
        assert nll(apply_temperature(softmax(z), t), y) < nll(apply_temperature(softmax(z), other), y)


def test_a_temperature_never_moves_the_argmax_and_one_is_the_identity():
    z, _ = _sampled(500, 1.0, seed=1)
    p = softmax(z)
    for t in (0.3, 0.9, 1.7, 8.0):
        q = apply_temperature(p, t)
        assert np.array_equal(q.argmax(1), p.argmax(1))
        np.testing.assert_allclose(q.sum(1), 1.0)
        np.testing.assert_allclose(q, softmax(z / t), atol=1e-9)  # exactly dividing the logits
    assert np.array_equal(apply_temperature(p, 1.0), p)


def test_calibration_metrics_on_hand_made_cases():
    y = np.array([0, 1])
    right = np.eye(7)[[0, 1]]
    assert brier(right, y) == 0.0 and nll(right, y) == pytest.approx(0.0, abs=1e-9) and ece(right, y) == 0.0
    wrong = np.eye(7)[[1, 0]]
    assert brier(wrong, y) == 2.0 and ece(wrong, y) == 1.0
    # 0.6 confident, right once in two: the gap is 0.1 in one bin
    p = np.full((2, 7), 0.4 / 6)
    p[:, 0] = 0.6
    assert ece(p, y) == pytest.approx(0.1)
    r = reliability(p, y)
    assert sum(r["count"]) == 2 and r["count"][8] == 2  # 0.6 lies in (8/15, 9/15]
    assert r["accuracy"][8] == 0.5 and r["confidence"][8] == pytest.approx(0.6) and r["accuracy"][0] is None


def test_reliability_bin_edges():
    p = np.zeros((2, 7))
    p[0, 0] = 1.0  # confidence exactly 1: the last bin
    p[1, :] = [3 / BINS] + [(1 - 3 / BINS) / 6] * 6  # exactly on an edge: the bin it closes
    r = reliability(p, [0, 0])
    assert r["count"][-1] == 1 and r["count"][2] == 1 and len(r["edges"]) == BINS + 1


def test_a_miscalibrated_model_has_a_large_ece_and_fitting_shrinks_it():
    z, y = _sampled(20_000, 3.0, seed=2)
    over = softmax(z)  # three times too sharp
    m = calibration_metrics(over, y)
    t = fit_temperature(over, y)
    fixed = calibration_metrics(apply_temperature(over, t), y)
    assert m["ece"] > 0.1 and fixed["ece"] < 0.02 and fixed["nll"] < m["nll"]
    assert fixed["accuracy"] == m["accuracy"]
    assert m["mean_confidence"] > m["accuracy"] + 0.1  # over-confident


def _copy_weights(weights_dir, tmp_path):
    out = tmp_path / "weights"
    shutil.copytree(weights_dir, out)
    return out


def _write_temperatures(folder, temps: dict[str, float], ensemble: float | None = None):
    models = load_models(weights_dir=folder)
    cal = Calibration(
        models={m: {"temperature": t, "sha256": models[m].sha256} for m, t in temps.items()},
        ensemble={"temperature": ensemble, "models": {m: mo.sha256 for m, mo in models.items()}} if ensemble else None,
    )
    write_calibration(cal, folder)


def test_models_serve_their_fitted_temperature_and_only_for_their_own_file(weights_dir, tmp_path):
    folder = _copy_weights(weights_dir, tmp_path)
    _write_temperatures(folder, {"resnet18": 2.0, "vgg16": 0.5}, ensemble=1.5)
    models = load_models(weights_dir=folder)
    assert models["resnet18"].temperature == 2.0 and models["vgg16"].temperature == 0.5
    assert models["efficientnet_v2_s"].temperature == 1.0  # none fitted for it
    faces = tiny_data()["test"].images[:5]
    logits = models["resnet18"](to_model_input(faces))
    predictor = Predictor(models)
    face = predictor.analyze(faces[0], detect=False, region="whole").faces[0]
    np.testing.assert_allclose(face.probabilities["resnet18"], softmax(logits[0] / 2.0), atol=1e-6)
    assert predictor.temperatures == {"efficientnet_v2_s": 1.0, "resnet18": 2.0, "vgg16": 0.5, "ensemble": 1.5}
    mean = np.mean([face.probabilities[m] for m in models], axis=0)
    np.testing.assert_allclose(face.ensemble, apply_temperature(mean[None], 1.5)[0], atol=1e-9)
    # another file under the same name (different hash): served raw, never with another file's T
    shutil.copy(folder / "vgg16.onnx", folder / "resnet18.onnx")
    (folder / "resnet18.card.json").unlink()
    with pytest.raises(WeightsError):  # the file says it is vgg16
        load_models(["resnet18"], folder)
    cal = load_calibration(folder)
    assert cal.temperature("resnet18", "0" * 64) == 1.0
    assert cal.ensemble_temperature({"resnet18": "0" * 64}) == 1.0
    # a subset of the models is not the ensemble the temperature was fitted for
    two = load_models(["vgg16", "efficientnet_v2_s"], folder)
    assert Predictor(two).ensemble_temperature == 1.0


def test_a_damaged_calibration_file_is_a_clear_error(weights_dir, tmp_path):
    folder = _copy_weights(weights_dir, tmp_path)
    (folder / FILE_NAME).write_text("{not json")
    with pytest.raises(WeightsError, match="calibration.json is not readable JSON.*calibrate"):
        load_models(weights_dir=folder)
    for bad, match in (
        ({"schema": "other"}, "not a"),
        ({"schema": SCHEMA, "models": {"resnet18": {"temperature": 0.0, "sha256": "x"}}}, "temperature in"),
        ({"schema": SCHEMA, "models": {"resnet18": {"temperature": 1.2}}}, "sha256"),
        ({"schema": SCHEMA, "models": {}, "ensemble": {"temperature": 1.0}}, "ensemble"),
        ({"schema": SCHEMA, "models": []}, "map model names"),
    ):
        with pytest.raises(CalibrationError, match=match):
            parse_calibration(bad)


def test_calibrate_fits_on_val_only_and_writes_what_the_loader_reads(weights_dir, tmp_path, monkeypatch):
    folder = _copy_weights(weights_dir, tmp_path)
    data = tiny_data(n_train=8, n_val=64, n_test=8)
    read = []
    original = type(data).__getitem__
    monkeypatch.setattr(type(data), "__getitem__", lambda self, split: read.append(split) or original(self, split))
    cal = calibrate(data, str(folder), threads=1)
    assert read == ["val"]  # PrivateTest is never read
    assert set(cal.models) == set(list_models()) and cal.ensemble is not None
    assert cal.info["fitted_on"]["split"] == "val" and cal.info["fitted_on"]["n"] == 64
    for name, row in cal.info["metrics"]["val"].items():
        assert row["calibrated"]["nll"] <= row["raw"]["nll"] + 1e-9, name  # the fit minimises it
    write_calibration(cal, folder)
    models = load_models(weights_dir=folder)
    for name, model in models.items():
        assert model.temperature == cal.models[name]["temperature"] != 1.0
    # the runs record raw and calibrated metrics; the served (calibrated) ones are the run's metrics
    run = evaluate("ensemble", "val", data=data, weights_dir=str(folder), threads=1)
    c = run["calibration"]
    assert c["temperatures"] == {m: cal.models[m]["temperature"] for m in models}
    assert c["ensemble_temperature"] == cal.ensemble["temperature"]
    assert c["calibrated"]["nll"] <= c["raw"]["nll"] + 1e-6
    assert c["calibrated"]["accuracy"] == run["metrics"]["accuracy"]
    single = evaluate("resnet18", "val", data=data, weights_dir=str(folder), threads=1)
    assert single["calibration"]["raw"]["accuracy"] == single["calibration"]["calibrated"]["accuracy"]
    probs = np.asarray(single["samples"]["probs"])
    raw = predict_proba(models["resnet18"], data["val"].images)
    np.testing.assert_allclose(probs, apply_temperature(raw, models["resnet18"].temperature), atol=2e-6)


def test_run2_needs_its_calibration_block_and_run1_files_still_read(weights_dir):
    run = evaluate("resnet18", "test", data=tiny_data(), weights_dir=str(weights_dir), threads=1)
    assert run["schema"] == "fer_core.run/2" and run["calibration"]["temperatures"] == {"resnet18": 1.0}
    old = {k: v for k, v in run.items() if k != "calibration"}
    validate_run({**old, "schema": "fer_core.run/1"})
    with pytest.raises(RunSchemaError, match="calibration"):
        validate_run(old)
    broken = json.loads(json.dumps(run))
    broken["calibration"]["raw"]["reliability"]["count"] = [1]
    with pytest.raises(RunSchemaError, match="reliability"):
        validate_run(broken)
    broken = json.loads(json.dumps(run))
    broken["calibration"]["temperatures"] = {"vgg16": 1.0}
    with pytest.raises(RunSchemaError, match="temperatures"):
        validate_run(broken)


def test_calibrate_command_prints_before_and_after(weights_dir, tmp_path, real_data):
    folder = _copy_weights(weights_dir, tmp_path)
    proc = run_python(
        "-m", "fer_core", "calibrate", "--data", str(real_data), "--weights-dir", str(folder), "--limit", "300"
    )
    assert proc.returncode == 0, proc.stderr
    assert "fitted on val (300 images" in proc.stdout and "ensemble" in proc.stdout
    assert load_calibration(folder).info["fitted_on"]["n"] == 300


# --- the bend: a second parameter one temperature cannot stand in for --------------------------


def _bent(n: int, bend: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities softmax(z) whose labels are drawn from their bent version (temperature 1):
    too unsure where they are sure, which no single temperature undoes."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, (n, 7))
    truth = calibrated_softmax(z, 1.0, bend)
    y = np.array([rng.choice(7, p=row) for row in truth])
    return softmax(z), y


def test_the_bend_keeps_every_answer_and_zero_is_plain_temperature_scaling():
    z, _ = _sampled(500, 1.0, seed=3)
    np.testing.assert_allclose(calibrated_softmax(z, 1.7, 0.0), softmax(z / 1.7), atol=1e-12)
    for t, bend in ((1.0, 0.3), (0.5, 1.0), (3.0, 0.05)):
        p = calibrated_softmax(z, t, bend)
        assert np.array_equal(p.argmax(axis=1), z.argmax(axis=1)) and np.allclose(p.sum(axis=1), 1)
        # shift-invariant like a softmax: the logits' constant does not matter
        np.testing.assert_allclose(calibrated_softmax(z + 5.0, t, bend), p, atol=1e-10)


def test_fitting_the_bend_finds_what_one_temperature_cannot():
    probs, y = _bent(20_000, bend=0.3)
    t_only = fit_temperature(probs, y)
    t, bend = fit_model_calibration(probs, y)
    by_t, by_both = apply_temperature(probs, t_only), calibrated_softmax(np.log(probs), t, bend)
    assert abs(bend - 0.3) < 0.06 and abs(t - 1.0) < 0.1  # the curve that made the labels
    assert nll(by_both, y) < nll(by_t, y) and ece(by_both, y) < ece(by_t, y)
    assert np.array_equal(by_both.argmax(axis=1), probs.argmax(axis=1))  # accuracy unchanged
    calibrated, y2 = _sampled(20_000, 1.0, seed=5)  # already calibrated: no bend to find
    t2, bend2 = fit_model_calibration(softmax(calibrated), y2)
    assert abs(t2 - 1.0) < 0.05 and bend2 < 0.02


def test_models_serve_their_bend_and_files_without_one_read_as_zero(weights_dir, tmp_path):
    folder = _copy_weights(weights_dir, tmp_path)
    models = load_models(weights_dir=folder)
    entries = {"resnet18": {"temperature": 0.8, "bend": 0.25, "sha256": models["resnet18"].sha256}}
    entries["vgg16"] = {"temperature": 1.2, "sha256": models["vgg16"].sha256}  # an older file: no bend
    write_calibration(Calibration(models=entries), folder)
    models = load_models(weights_dir=folder)
    assert (models["resnet18"].bend, models["vgg16"].bend, models["efficientnet_v2_s"].bend) == (0.25, 0.0, 0.0)
    faces = tiny_data()["test"].images[:4]
    logits = models["resnet18"](to_model_input(faces))
    got = Predictor(models).analyze(faces[0], detect=False, region="whole").faces[0].probabilities["resnet18"]
    np.testing.assert_allclose(got, calibrated_softmax(logits[:1], 0.8, 0.25)[0], atol=1e-6)
    for bad in (-0.1, 1.5, "x", True):
        with pytest.raises(CalibrationError, match="bend"):
            parse_calibration({"schema": SCHEMA, "models": {"resnet18": {**entries["resnet18"], "bend": bad}}})
