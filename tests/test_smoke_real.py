"""End to end on the real FER2013, once per model: train 1 epoch on a seeded subset -> export ->
evaluate on test -> predict val faces with the exported weights. Needs FER2013 (FER_DATA or
../shared/fer2013); CI has it. Each model takes tens of seconds on a 2-core CPU."""

from __future__ import annotations

import functools
import time
from pathlib import Path

import numpy as np
import pytest

import fer_core
from fer_core.data import FERData, load_fer2013
from fer_core.evaluate import evaluate
from fer_core.preprocess import predict_proba
from fer_core.registry import list_models
from fer_core.results import validate_run

pytest.importorskip("torch")  # the torch tier: where torch is not installed, the module is skipped

from fer_core.export import export_model  # noqa: E402
from fer_core.train import TrainConfig, main  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.torch]


@functools.cache
def _fer2013(path: Path) -> FERData:
    return load_fer2013(path, cache=False)  # decoded once for the three models of this module


@pytest.mark.parametrize("name", list_models())
def test_train_export_evaluate_predict(name, real_data, tmp_path, record_property):
    data = _fer2013(real_data)
    t0 = time.perf_counter()
    cfg = TrainConfig(
        model=name,
        out=str(tmp_path / "runs"),
        epochs=1,
        limit=256,
        val_limit=128,
        batch_size=32,
        progress=False,
        threads=2,
    )
    summary = main(cfg, data=data)
    (row,) = summary["history"]
    assert np.isfinite(row["train_loss"]) and 0 <= row["val_acc"] <= 1
    assert summary["best"] == {"metric": "accuracy", "split": "val", "value": row["val_acc"], "epoch": 1}
    t1 = time.perf_counter()

    weights = tmp_path / "weights"
    info = export_model(name, tmp_path / "runs", weights)
    assert info["max_abs_diff"] <= info["bound"]
    t2 = time.perf_counter()

    run = validate_run(evaluate(name, "test", data=data, weights_dir=str(weights), threads=2, limit=128))
    assert run["data"]["n"] == 128 and run["split"] == "test" and run["selection"][name]["split"] == "val"
    assert run["samples"]["ids"] == data["test"].ids[:128]
    t3 = time.perf_counter()

    predictor = fer_core.Predictor.load(weights, threads=2)
    assert predictor.model_names == [name]
    val = data["val"]
    for i in range(3):
        # a val image read from its file reaches the network exactly as the data loader gives it
        (face,) = predictor.predict(real_data / val.ids[i], detect=False)
        assert np.array_equal(face.face, val.images[i])
        expected = predict_proba(predictor.models[name], val.images[i : i + 1])[0]
        assert face.probabilities[name] == [float(v) for v in expected]
        assert sum(face.ensemble) == pytest.approx(1.0)
    t4 = time.perf_counter()

    timing = {"train": t1 - t0, "export": t2 - t1, "evaluate": t3 - t2, "predict": t4 - t3, "total": t4 - t0}
    record_property("seconds", {k: round(v, 1) for k, v in timing.items()})
    print(f"\n{name}: " + ", ".join(f"{k} {v:.1f}s" for k, v in timing.items()))
