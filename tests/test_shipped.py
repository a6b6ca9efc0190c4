"""The shipped weights, their model cards and the stored runs agree with each other and with reality.

The numbers on the dashboard and in the README come from results/; these tests make sure they
were produced by exactly the files in weights/, that no shipped checkpoint was chosen on
PrivateTest, and (with FER2013 present) that re-evaluating the weights reproduces them.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import REPO

from fer_core import EMOTIONS
from fer_core.cards import CARD_SCHEMA, build_card
from fer_core.provenance import sha256_file
from fer_core.results import load_runs
from fer_core.serving import OnnxModel

WEIGHTS = REPO / "weights"
RESULTS = REPO / "results"
SHIPPED = sorted(p.stem for p in WEIGHTS.glob("*.onnx"))
RUNS = load_runs(RESULTS)

needs_weights = pytest.mark.skipif(not SHIPPED, reason="no shipped weights in weights/ yet")


@needs_weights
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weights_were_selected_on_publictest(name):
    meta = OnnxModel(WEIGHTS / f"{name}.onnx").meta
    assert meta["selected_on"] == "val"
    assert meta["best"]["split"] == "val"
    assert meta["labels"] == list(EMOTIONS)
    # the chosen epoch really is the best val epoch of the recorded history
    history = meta["history"]
    best_row = max(history, key=lambda r: r["val_acc"])
    assert meta["best"]["epoch"] == best_row["epoch"]
    assert meta["best"]["value"] == pytest.approx(best_row["val_acc"])
    assert meta["config"].get("val_limit") is None and meta["config"].get("limit") is None


@needs_weights
def test_readme_table_is_the_stored_runs():
    """The README's results table is exactly what `python -m fer_core report` prints from results/."""
    from fer_core.report import results_table

    assert results_table(RUNS) in (REPO / "README.md").read_text(), "README is stale: python -m fer_core report"


@needs_weights
def test_weights_files_fit_github():
    sizes = {p.name: p.stat().st_size for p in WEIGHTS.iterdir() if p.is_file()}
    assert all(size <= 95e6 for size in sizes.values()), sizes
    assert sum(sizes.values()) <= 300e6, sizes


@needs_weights
def test_every_stored_run_names_shipped_weights_and_their_hash():
    assert RUNS, "weights are shipped but results/ holds no runs of them"
    hashes = {name: sha256_file(WEIGHTS / f"{name}.onnx") for name in SHIPPED}
    for run in RUNS:
        for w in run["weights"]:
            assert w["file"] == f"{w['model']}.onnx", run["_file"]
            assert w["sha256"] == hashes.get(w["model"]), f"{run['_file']} was made from other weights"
        for model, sel in run["selection"].items():
            assert sel["split"] == "val", f"{run['_file']}: {model} selected on {sel['split']}"


@needs_weights
@pytest.mark.parametrize("name", SHIPPED)
def test_model_card_matches_weights_and_runs(name):
    card = json.loads((WEIGHTS / f"{name}.card.json").read_text())
    assert card["schema"] == CARD_SCHEMA
    assert card == json.loads(json.dumps(build_card(name, WEIGHTS, RESULTS))), "card is stale: python -m fer_core card"
    assert card["files"]["onnx"]["sha256"] == sha256_file(WEIGHTS / f"{name}.onnx")
    for split in ("val", "test"):
        assert "none" in card["results"].get(split, {}), f"no {split} run of the shipped {name}"


@needs_weights
@pytest.mark.slow
def test_stored_accuracy_is_reproduced_from_the_shipped_weights(real_data):
    """Re-evaluate every stored run (single view and flip; ten-crop would take ten times as long) on
    its split and compare to the stored figure (to 0.1 point)."""
    from fer_core.data import load_fer2013
    from fer_core.evaluate import evaluate

    data = load_fer2013(real_data)
    fresh: dict[tuple[str, str, str], np.ndarray] = {}
    checked = 0
    for run in RUNS:
        assert run["data"]["n"] == len(data[run["split"]]), f"{run['_file']} is not a whole split"
        if run["tta"] not in ("none", "flip"):
            continue
        probs = []
        for model in run["models"]:
            key = (model, run["split"], run["tta"])
            if key not in fresh:
                again = evaluate(model, run["split"], run["tta"], data, weights_dir=str(WEIGHTS))
                fresh[key] = np.array(again["samples"]["probs"])
            probs.append(fresh[key])
        acc = float((np.mean(probs, axis=0).argmax(1) == np.array(run["samples"]["y_true"])).mean())
        assert acc == pytest.approx(run["metrics"]["accuracy"], abs=1e-3), run["_file"]
        checked += 1
    assert checked, "no run to re-check"


@needs_weights
def test_shipped_temperatures_are_fitted_for_the_shipped_files_on_publictest():
    """weights/calibration.json names each shipped file by its hash, was fitted on val/, and every
    stored run applied exactly those temperatures (`python -m fer_core calibrate` after new weights)."""
    from fer_core.calibration import load_calibration

    cal = load_calibration(WEIGHTS)
    hashes = {name: sha256_file(WEIGHTS / f"{name}.onnx") for name in SHIPPED}
    assert {m: e["sha256"] for m, e in cal.models.items()} == hashes, "calibration is stale: fer_core calibrate"
    assert cal.ensemble is not None and cal.ensemble["models"] == hashes
    assert cal.info["fitted_on"]["split"] == "val" and cal.info["fitted_on"]["n"] == 3589
    for run in RUNS:
        c = run.get("calibration")
        assert c is not None, f"{run['_file']} was written before calibration: evaluate again"
        assert c["temperatures"] == {m: cal.models[m]["temperature"] for m in run["models"]}, run["_file"]
        if len(run["models"]) == len(SHIPPED):
            assert c["ensemble_temperature"] == cal.ensemble["temperature"], run["_file"]
        # a model's temperature never changes its answers
        if len(run["models"]) == 1:
            assert c["raw"]["accuracy"] == c["calibrated"]["accuracy"], run["_file"]
