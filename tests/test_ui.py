"""What the pages draw (ui/), and the core functions that read runs and write exports for them."""

from __future__ import annotations

import csv
import io
import json
import re

import numpy as np
import pytest
from conftest import REPO
from PIL import Image

from fer_core import cards, jsonfile, predict, results
from fer_core.faces import Box
from fer_core.labels import EMOTIONS
from fer_core.metrics import classification_metrics
from fer_core.predict import Analysis, FacePrediction
from fer_core.registry import list_models
from fer_core.report import load_references
from fer_core.results import load_runs
from ui import drawing, figures, tables, text

LABELS = list(EMOTIONS)


def one_hot_probs(preds: list[int], k: int = 7, p: float = 0.7) -> np.ndarray:
    out = np.full((len(preds), k), (1 - p) / (k - 1))
    out[np.arange(len(preds)), preds] = p
    return out


def fake_analysis(n_faces: int = 2, seed: int = 0) -> Analysis:
    rng = np.random.default_rng(seed)
    faces = []
    for i in range(n_faces):
        probs = {m: rng.dirichlet(np.ones(7)).tolist() for m in list_models()}
        ensemble = np.mean(list(probs.values()), axis=0).tolist()
        face = rng.integers(0, 256, (48, 48), dtype=np.uint8)
        faces.append(
            FacePrediction(box=Box(10 + 60 * i, 20, 50, 55), probabilities=probs, ensemble=ensemble, face=face)
        )
    image = Image.new("RGB", (200, 120), "gray")
    return Analysis(image, faces, True, n_faces + 1, {"decode": 1.0, "detect": 2.5, "total": 9.0})


# --- drawing -----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(60, 40), (640, 480), (4000, 3000)])
def test_draw_faces_keeps_size_and_leaves_input_alone(size):
    image = Image.new("RGB", size, (30, 30, 30))
    w, h = size
    boxes = [Box(0, 0, w // 3, h // 3), Box(w // 2, h // 2, w // 3, h // 3)]  # one touches the top edge
    out = drawing.draw_faces(image, boxes, ["happy", "sad"])
    assert out.size == image.size and out.mode == "RGB"
    assert image.getpixel((0, 0)) == (30, 30, 30)  # the caller's image is not drawn on
    assert np.asarray(out).std() > 0  # something was drawn
    assert out.getpixel((w // 2, h // 2 + h // 6)) != (30, 30, 30)  # the left edge of box 2


def test_draw_faces_line_width_scales_with_photo():
    def drawn_fraction(side: int) -> float:
        out = drawing.draw_faces(Image.new("L", (side, side)), [Box(side // 4, side // 4, side // 2, side // 2)])
        return float((np.asarray(out.convert("L")) > 0).mean())

    # a box drawn with a fixed 2-px pen would cover ten times less of a 10x larger photo
    assert drawn_fraction(3000) > 0.5 * drawn_fraction(300)


def test_draw_faces_shrinks_a_large_photo_and_its_boxes_together():
    image = Image.new("RGB", (4000, 3000), (30, 30, 30))
    out = drawing.draw_faces(image, [Box(2000, 1500, 400, 400)], max_side=1000)
    assert out.size == (1000, 750)
    px = np.asarray(out)
    assert (px[375:475, 500] != 30).any(axis=1).all()  # the box's left edge, at 1/4 scale
    assert (px[380:470, 470] == 30).all()  # and nothing left of it
    small = Image.new("RGB", (300, 200))
    assert drawing.draw_faces(small, [Box(10, 10, 50, 50)], max_side=1000).size == (300, 200)


def test_enlarge_face_is_nearest_neighbour():
    face = np.arange(48 * 48, dtype=np.uint16).reshape(48, 48) % 256
    big = np.asarray(drawing.enlarge_face(face.astype(np.uint8), scale=4))
    assert big.shape == (192, 192)
    assert (big[::4, ::4] == face).all() and (big[3::4, 3::4] == face).all()


# --- figures -----------------------------------------------------------------------------------


def test_comparison_figure_groups_every_model_in_label_order():
    probs = {"resnet18": [0.05, 0.05, 0.1, 0.5, 0.1, 0.1, 0.1], "vgg16": [0.1, 0.0, 0.1, 0.6, 0.1, 0.05, 0.05]}
    ensemble = list(np.mean([probs["resnet18"], probs["vgg16"]], axis=0))
    fig = figures.comparison_figure(probs, LABELS, ensemble)
    assert [t.name for t in fig.data] == ["ResNet18", "VGG16-BN", "Ensemble"] and fig.layout.barmode == "group"
    assert all(list(t.y) == LABELS for t in fig.data) and list(fig.data[1].x) == probs["vgg16"]
    assert list(fig.layout.yaxis.categoryarray) == LABELS[::-1]  # first label drawn on top
    assert fig.data[0].marker.color != fig.data[1].marker.color  # one colour per model
    assert fig.data[2].marker.line.width > 0  # the ensemble outlined
    assert len(figures.comparison_figure(probs, LABELS).data) == 2  # no ensemble given: none drawn
    with pytest.raises(ValueError, match="labels"):
        figures.comparison_figure({"resnet18": probs["resnet18"][:3]}, LABELS)


def test_confusion_figure_counts_and_row_normalised():
    cm = np.arange(49).reshape(7, 7)
    cm[2] = 0  # a class with no images
    counts = figures.confusion_figure(cm, LABELS)
    heat = counts.data[0]
    assert list(heat.x) == LABELS and list(heat.y) == LABELS
    assert np.asarray(heat.z).shape == (7, 7) and np.asarray(heat.z)[1, 3] == cm[1, 3]
    assert counts.layout.yaxis.autorange == "reversed"  # true class 0 on top
    norm = np.asarray(figures.confusion_figure(cm, LABELS, normalise=True).data[0].z)
    assert np.allclose(norm.sum(axis=1), [1, 1, 0, 1, 1, 1, 1])
    assert np.isclose(norm[1, 3], cm[1, 3] / cm[1].sum())
    with pytest.raises(ValueError):
        figures.confusion_figure(cm[:6, :6], LABELS)
    shared = figures.confusion_figure(cm, LABELS, zmax=1000)  # side by side on one scale
    assert shared.data[0].zmax == 1000 and figures.confusion_figure(cm, LABELS, True, zmax=1000).data[0].zmax == 1


def test_per_class_figure_groups_runs_per_metric():
    rng = np.random.default_rng(0)
    runs = {
        name: classification_metrics(rng.integers(0, 7, 50), rng.dirichlet(np.ones(7), 50)) for name in ("a", "b", "c")
    }
    fig = figures.per_class_figure(runs, LABELS, ["f1", "recall"])
    assert len(fig.data) == 6 and fig.layout.barmode == "group"
    assert all(list(t.x) == LABELS for t in fig.data)
    assert fig.data[0].y[4] == pytest.approx(runs["a"]["per_class"]["neutral"]["f1"])
    assert [t.showlegend for t in fig.data] == [True, True, True, False, False, False]
    with pytest.raises(ValueError, match="metrics"):
        figures.per_class_figure(runs, LABELS, ["auc"])


def test_history_figure_val_loss_and_both_accuracies_per_model():
    rows = [
        {"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "train_acc": 0.1 * e, "val_acc": 0.09 * e}
        for e in (1, 2, 3)
    ]
    fig = figures.history_figure({"resnet18": rows, "vgg16": rows})
    assert len(fig.data) == 6  # 2 models x {val loss, train acc, val acc}: train loss is not comparable
    assert not [t for t in fig.data if list(t.y) == [1 / e for e in (1, 2, 3)]]  # no train loss drawn
    names = {t.name for t in fig.data}
    assert {"ResNet18 train", "ResNet18 val", "VGG16-BN train", "VGG16-BN val"} <= names
    assert list(fig.data[0].x) == [1, 2, 3]
    assert sum(bool(t.showlegend) for t in fig.data) == 4  # each legend entry once, not once per panel
    assert not fig.layout.shapes and not fig.layout.annotations[2:]  # one schedule: no marks (2 = titles)
    assert list(fig.layout.xaxis.range) == [0.5, 3.5]  # the axis ends where the data does

    staged = [{**r, "stage": 1 if r["epoch"] < 3 else 2} for r in rows]  # train --init after epoch 2
    fig = figures.history_figure({"resnet18": rows, "efficientnet_v2_s": staged})
    assert [s.x0 for s in fig.layout.shapes] == [2.5, 2.5]  # loss and accuracy panels
    assert not fig.layout.annotations[2:]  # no text on the plot to overlap: the page's caption says it
    assert figures.stage_lengths(staged) == [2, 1] and figures.stage_lengths(rows) == [3]


# --- agreement and subset ensembles --------------------------------------------------------------


def test_agreement_on_a_hand_made_example():
    y = [0, 1, 2, 3]
    probs = {
        "a": one_hot_probs([0, 1, 2, 0]),
        "b": one_hot_probs([0, 1, 5, 1]),
        "c": one_hot_probs([0, 2, 2, 3], p=0.9),
    }
    # all agree only on image 0 (right); image 1: a,b say 1, c says 2 -> ensemble mean picks 1 (right);
    # image 2: a,c say 2 (c surer) -> right; image 3: c's 0.9 on class 3 wins the mean -> right.
    a = results.agreement(y, probs)
    assert (a.n, a.n_agree) == (4, 1)
    assert a.fraction_agree == 0.25 and a.accuracy_agree == 1.0 and a.accuracy_disagree == 1.0
    wrong = results.agreement([6, 6, 6, 6], probs)
    assert wrong.accuracy_agree == 0.0 and wrong.accuracy_disagree == 0.0
    same = results.agreement(y, {"a": probs["a"], "a2": probs["a"]})
    assert same.fraction_agree == 1.0 and same.accuracy_disagree is None
    with pytest.raises(ValueError):
        results.agreement(y, {})


def test_subset_ensemble_matches_metrics_of_the_mean(results_dir):
    run = next(r for r in load_runs(results_dir) if r["name"] == "ensemble")
    probs = results.per_model_probs(run)
    assert set(probs) == set(list_models())
    pair = ["resnet18", "vgg16"]
    m = results.subset_ensemble(run, pair)
    expected = classification_metrics(run["samples"]["y_true"], (probs["resnet18"] + probs["vgg16"]) / 2)
    assert m["accuracy"] == expected["accuracy"] and m["confusion_matrix"] == expected["confusion_matrix"]
    # all three: the run's own ensemble (up to the 6-decimal rounding of stored probabilities)
    assert results.subset_ensemble(run, list(probs))["confusion_matrix"] == run["metrics"]["confusion_matrix"]
    with pytest.raises(ValueError, match="choose models"):
        results.subset_ensemble(run, ["nope"])
    single = next(r for r in load_runs(results_dir) if r["name"] == "resnet18")
    assert results.per_model_probs(single) == {}


# --- tables --------------------------------------------------------------------------------------


def test_summary_and_reference_rows(results_dir):
    runs = load_runs(results_dir)
    rows = tables.summary_rows(runs)
    assert len(rows) == len(runs) == 2
    ens = next(r for r in rows if r["model"].startswith("Ensemble"))
    assert ens["model"] == "Ensemble (EfficientNetV2-S + ResNet18 + VGG16-BN)"
    run = next(r for r in runs if r["name"] == "ensemble")
    assert ens["accuracy %"] == round(100 * run["metrics"]["accuracy"], 2)
    assert ens["parameters (M)"] == round(sum(w["parameters"] for w in run["weights"]) / 1e6, 2)
    assert ens["images"] == 21 and ens["images/s"] > 0
    references = load_references(REPO / "results")
    refs = tables.reference_rows(runs, references)
    assert [r["kind"] for r in refs[:2]] == [tables.MEASURED] * 2  # ours first
    assert {r["kind"] for r in refs} == {tables.MEASURED, tables.REPORTED}
    assert all(isinstance(r["accuracy %"], str) for r in refs)
    assert len(tables.reference_rows([], references)) == len(references) >= 5
    assert refs[2]["source"] == "fer pip package" and refs[2]["accuracy %"] == "58.2"  # no literal backticks


def test_collect_histories_takes_each_model_once(results_dir):
    histories = results.collect_histories(load_runs(results_dir))
    assert set(histories) == set(list_models())
    assert all(len(rows) == 1 and "val_acc" in rows[0] for rows in histories.values())


def test_model_cards_and_descriptions(tmp_path):
    (tmp_path / "resnet18.card.json").write_text(json.dumps({"model": "resnet18", "title": "ResNet18"}))
    (tmp_path / "vgg16.card.json").write_text("{not json")
    (tmp_path / "huge.card.json").write_bytes(b" " * (jsonfile.MAX_SMALL_JSON_BYTES + 1))
    assert cards.read_model_cards(tmp_path) == {"resnet18.card.json": {"model": "resnet18", "title": "ResNet18"}}
    assert jsonfile.read_json_file(tmp_path / "missing.json") is None
    described = tables.describe_models({m: {} for m in list_models()})
    assert [d["title"] for d in described] == ["EfficientNetV2-S", "ResNet18", "VGG16-BN"]
    assert described[1]["parameters"] == 11_171_271 and described[1]["selected"] is None
    meta = {"parameters": 5, "best": {"metric": "accuracy", "value": 0.5, "epoch": 3}, "selected_on": "val"}
    assert tables.describe_models({"resnet18": {**meta, "history": [{}] * 4}})[0]["selected"] == (
        "epoch 3 of 4; accuracy 0.5000 on val"
    )
    # a model trained in stages: its ONNX file holds the last stage only, its card all of them
    staged = {**meta, "history": [{}] * 3, "init": {"file": "resnet18.pt"}}
    assert tables.describe_models({"resnet18": staged})[0]["selected"] == (
        "epoch 3 of the last stage's 3 (it went on from an earlier checkpoint); accuracy 0.5000 on val"
    )
    stages = [{"epochs": 40}, {"epochs": 18}]
    card = {"model": "resnet18", "training": {"epochs": 58, "best_epoch": 58, "stages": stages}}
    assert tables.describe_models({"resnet18": staged}, {"resnet18.card.json": card})[0]["selected"] == (
        "epoch 58 of 58, trained in 2 stages (40 + 18 epochs); accuracy 0.5000 on val"
    )


# --- exports -------------------------------------------------------------------------------------


def test_json_export_round_trip():
    analysis = fake_analysis()
    doc = json.loads(predict.export_json([("a.jpg", analysis)]))
    assert doc["schema"] == predict.EXPORT_SCHEMA
    (image,) = doc["images"]
    assert image["source"] == "a.jpg" and (image["width"], image["height"]) == (200, 120)
    assert image["faces_found"] == 3 and image["truncated"] is True
    assert image["tta"] == analysis.tta == "none"  # how the faces were read travels with them
    for got, face in zip(image["faces"], analysis.faces, strict=True):
        assert got["box"] == face.box._asdict() and got["ensemble"] == face.ensemble
        assert got["labels"] == LABELS
        assert {m: v["probabilities"] for m, v in got["models"].items()} == face.probabilities


def test_csv_export_round_trip():
    """The app's CSV is the batch CLI's shape: a row per face, each model's reading, the ensemble's
    probabilities; an image without faces still has its row."""
    analysis, empty = fake_analysis(), fake_analysis(0)
    raw = predict.export_csv([("a.jpg", analysis), ("b.png", fake_analysis(1, 1)), ("none.jpg", empty)]).decode()
    header, *cells = list(csv.reader(io.StringIO(raw, newline="")))
    models = list(analysis.faces[0].probabilities)
    assert header == predict.csv_header(models) and header[:2] == ["file", "face"]
    rows = [dict(zip(header, row, strict=True)) for row in cells]
    assert len(rows) == 2 + 1 + 1
    assert rows[-1]["file"] == "none.jpg" and rows[-1]["face"] == "" and rows[-1]["label"] == ""
    first = rows[0]
    face = analysis.faces[0]
    assert (int(first["x"]), int(first["y"]), int(first["w"]), int(first["h"])) == tuple(face.box)
    assert first["label"] == face.label and float(first["score"]) == pytest.approx(face.score, abs=5e-5)
    assert [float(first[f"p_{label}"]) for label in LABELS] == pytest.approx(face.ensemble, abs=5e-5)
    for m in models:
        label, score = face.top(m)
        assert first[f"{m}_label"] == label and float(first[f"{m}_score"]) == pytest.approx(score, abs=5e-5)
    assert predict.export_csv([]).decode().startswith("file,face,time_s,track,x,y,w,h,label,score,agree")
    assert rows[0]["time_s"] == rows[0]["track"] == ""  # a photo: no time, no track


def test_escape_markdown_keeps_text_literal():
    assert text.escape_markdown("a_b [x](y) :red[z].jpg") == "a\\_b \\[x\\](y) \\:red\\[z\\].jpg"
    assert text.escape_markdown("plain name.png") == "plain name.png"


def test_load_and_batch_views_read_the_tools_records(results_dir):
    load_run_view, batch_run_view, memory_figure = tables.load_run_view, tables.batch_run_view, figures.memory_figure
    load = load_run_view(json.loads((results_dir / "loadrun.json").read_text()))
    assert load["clients"] == 20 and load["errors"] == 0 and load["series"]["server"][-1] == (2.0, 270.0)
    batch = batch_run_view(json.loads((results_dir / "batchrun.json").read_text()))
    assert list(batch["series"]) == ["killed run", "resumed run"]
    assert batch["series"]["resumed run"][0] == (10.0, 100.0)  # drawn after the killed run's 10 s
    fig = memory_figure(batch["series"])
    assert [t.name for t in fig.data] == ["killed run", "resumed run"]


@pytest.mark.parametrize(
    "record",
    [None, [], {"schema": "fer_core.run/1"}, {"schema": "fer_core.loadrun/1"}, {"schema": "fer_core.batchrun/1"}],
)
def test_load_and_batch_views_reject_other_files(record):
    assert tables.load_run_view(record) is None and tables.batch_run_view(record) is None


def test_bench_view_reads_the_shipped_benchmark_and_rejects_partial_ones():
    record = json.loads((REPO / "results" / "bench_app.json").read_text())
    view = tables.bench_view(record)
    assert view["median_ms"] == record["latency"]["median_ms"] and view["models"] == record["models"]
    assert set(view["stages_ms"]) >= {"detect", *record["models"]}
    for broken in (
        {**record, "schema": "fer_core.loadrun/1"},
        {**record, "latency": {"runs": 30}},  # no median: the page says "no benchmark", not KeyError
        {**record, "memory": None},
        {k: v for k, v in record.items() if k != "cold_start"},
    ):
        assert tables.bench_view(broken) is None


def test_card_rows_summarise_the_shipped_cards():
    shipped = cards.read_model_cards(REPO / "weights")
    rows = tables.card_rows(shipped)
    assert len(rows) == len(shipped) >= 1
    for row, card in zip(rows, shipped.values(), strict=True):
        assert row["model"] == card["title"] and row["command"].startswith("python -m fer_core train")
        assert row["PrivateTest acc %"] == round(100 * card["results"]["test"]["none"]["accuracy"], 2)
    assert tables.card_rows({"x.card.json": ["not", "a", "card"]}) == []


def test_memory_figure_skips_malformed_series():
    fig = figures.memory_figure({"ok": [[0, 1.0], [1, 2.0]], "text": "nope", "bad": [[0, "x"]], "empty": []})
    assert [t.name for t in fig.data] == ["ok"]


def test_comparison_labels_pick_each_models_single_view_test_run():
    def run(name, split, tta, models=None):
        return {"name": name, "split": split, "tta": tta, "models": models or [name], "_file": f"{name}_{split}_{tta}"}

    runs = [
        run("ensemble", "test", "none", ["resnet18", "vgg16"]),
        run("vgg16", "test", "flip"),
        run("vgg16", "test", "none"),
        run("resnet18", "val", "none"),
        run("resnet18", "test", "none"),
    ]
    got = text.comparison_labels(runs)
    assert got == [text.run_label(runs[i]) for i in (4, 2, 0)]  # single models by name, then the ensemble
    only_val = [runs[3]]
    assert text.comparison_labels(only_val) == [text.run_label(runs[3])]  # nothing on test: every run


def test_run_labels_never_show_file_names_and_stay_unique():
    base = {"name": "resnet18", "models": ["resnet18"], "split": "test", "tta": "none", "_file": "resnet18_test.json"}
    mine = {**base, "_file": "/home/me/resnet18_test.json", "_uploaded": True}
    labels = text.unique_labels([base, {**base, "_file": "other.json"}, mine, {**mine}])
    assert list(labels) == [
        "ResNet18 · test · TTA none",
        "ResNet18 · test · TTA none (2)",
        "ResNet18 · test · TTA none · uploaded",
        "ResNet18 · test · TTA none · uploaded (2)",
    ]
    assert not [k for k in labels if ".json" in k or "/" in k]
    assert text.comparison_labels([base, base]) == list(text.unique_labels([base, base]))


def _scored(name, split, tta, accuracy, models=None, sha=None):
    models = models or [name]
    return {
        "name": name,
        "models": models,
        "split": split,
        "tta": tta,
        "data": {"n": 3589},
        "metrics": {"accuracy": accuracy, "macro": {"f1": accuracy - 0.02}},
        "weights": [{"model": m, "sha256": sha or m} for m in models],
    }


def test_leaderboard_and_headline_lead_with_the_default_view():
    ens = ["efficientnet_v2_s", "resnet18", "vgg16"]
    runs = [
        _scored("efficientnet_v2_s", "test", "none", 0.66),
        _scored("resnet18", "test", "none", 0.694),
        _scored("resnet18", "test", "flip", 0.705),
        _scored("resnet18", "val", "none", 0.679),
        _scored("resnet18", "val", "none", 0.5, sha="other weights"),  # not the same weights: not its twin
        _scored("vgg16", "test", "none", 0.692),
        _scored("ensemble", "test", "none", 0.712, models=ens),
        {**_scored("vgg16", "test", "none", 0.99), "_uploaded": True},  # a visitor's file leads nothing
    ]
    board = tables.leaderboard_rows(runs[:-1])
    assert [r["model"] for r in board] == [
        "Ensemble (EfficientNetV2-S + ResNet18 + VGG16-BN)",
        "ResNet18",
        "VGG16-BN",
        "EfficientNetV2-S",
    ]
    assert [r["rank"] for r in board] == [1, 2, 3, 4]
    resnet = board[1]
    assert resnet["test accuracy %"] == 69.4 and resnet["val accuracy %"] == 67.9
    assert resnet["with the mirror %"] == 70.5
    assert board[2]["val accuracy %"] is None  # no val run of VGG16 stored

    refs = [
        {"source": "`fer` pip package", "accuracy %": "58.2", "macro-F1": 0.54},
        {"source": "x", "accuracy %": "1 / 2"},
    ]
    top = tables.headline(runs, refs)
    assert top["ensemble"]["title"].startswith("Ensemble") and top["ensemble"]["models"] == 3
    assert [m["title"] for m in top["models"]] == ["ResNet18", "VGG16-BN", "EfficientNetV2-S"]
    assert top["fer"] == {"accuracy": pytest.approx(0.582), "macro_f1": 0.54}
    assert tables.headline(runs, [])["fer"] is None
    assert tables.headline([r for r in runs if r["split"] == "val"], refs) is None  # nothing to lead with


# --- hostile names: formulas in the CSV, autolinks in markdown, HTML in figures, odd JSON files --------

FORMULA_NAMES = ["=SUM(1+1)*cmd|calc.jpg", "+cmd.jpg", "-x.jpg", "@x.jpg", "\tx.jpg", "\rx.jpg"]


def test_csv_export_neutralises_formula_cells():
    from fer_core.csvsafe import FORMULA_PREFIXES

    analysis = fake_analysis(1)
    face = analysis.faces[0]
    ensemble = [-0.0, *face.ensemble[1:]]  # a -0.0 must stay a number
    analysis.faces[0] = FacePrediction(box=face.box, probabilities=face.probabilities, ensemble=ensemble)
    raw = predict.export_csv([(name, analysis) for name in FORMULA_NAMES]).decode()
    header, *rows = list(csv.reader(io.StringIO(raw, newline="")))
    assert {row[0] for row in rows} == {"'" + name for name in FORMULA_NAMES}
    for row in rows:
        for cell in row:
            if cell.startswith(FORMULA_PREFIXES):
                float(cell)  # only numbers may start like a formula
    assert all(row[header.index(f"p_{LABELS[0]}")] == "-0.0000" for row in rows)  # the number, unquoted


AUTOLINK_NAMES = [
    "www.evil-example.com.jpg",
    "see https://evil.example/a.jpg",
    "HTTP://EVIL.EXAMPLE/B.PNG",
    "WwW.evil.example",
    "me@evil.example.jpg",
    "[x](http://a.example)",
    "<https://a.example>",
]
# What remark-gfm (Streamlit's markdown) turns into links, in the text left after backslash escapes
# are undone: the two patterns of mdast-util-gfm-autolink-literal, as bundled with streamlit.
GFM_URL = re.compile(r"(https?://|www(?=\.))", re.IGNORECASE)
GFM_EMAIL = re.compile(r"([-.\w+]+)@([-\w]+(?:\.[-\w]+)+)", re.ASCII)


@pytest.mark.parametrize("name", AUTOLINK_NAMES)
def test_escape_markdown_defeats_autolinks(name):
    escaped = text.escape_markdown(name)
    unescaped = re.sub(r"\\(.)", r"\1", escaped)  # what the markdown parser leaves of the escapes
    for shown in (escaped, unescaped):
        assert not GFM_URL.search(shown) and not GFM_EMAIL.search(shown), shown
    assert unescaped.replace("\u2060", "") == name  # only invisible joiners added: it reads the same


def _figure_strings(fig) -> list[str]:
    out, todo = [], [fig.to_plotly_json()]
    while todo:
        v = todo.pop()
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, dict):
            todo += [*v.keys(), *v.values()]
        elif isinstance(v, (list, tuple)):
            todo += list(v)
        elif isinstance(v, np.ndarray) and v.dtype == object:
            todo += v.ravel().tolist()
    return out


def test_figures_show_names_from_run_files_as_text():
    evil = '<a href="https://evil.example">y</a>'
    rng = np.random.default_rng(0)
    run = {"name": evil, "models": [evil], "split": "test", "tta": "none", "_file": "<b>x</b>.json (uploaded)"}
    metrics = classification_metrics(rng.integers(0, 7, 30), rng.dirichlet(np.ones(7), 30))
    rows = [{"epoch": e, "train_loss": 1 / e, "val_acc": 0.1 * e, "stage": 1 if e < 3 else 2} for e in (1, 2, 3)]
    figs = [
        figures.per_class_figure({text.run_label(run): metrics}, LABELS, ["f1", "recall"]),
        figures.history_figure({evil: rows}),
        figures.memory_figure({evil: [[0, 1.0], [1, 2.0]]}),
        figures.confusion_figure(np.eye(2, dtype=int), [evil, "<i>b"], title=evil),
        figures.comparison_figure({evil: [0.4, 0.6]}, [evil, "b&c"], [0.4, 0.6]),
    ]
    for fig in figs:
        strings = _figure_strings(fig)
        assert not [s for s in strings if "<a" in s.lower() or "<b>" in s or "<i>" in s], strings
        assert any("&lt;a href" in s for s in strings)  # the name is there, as text
    per_class = figs[0]
    assert per_class.data[0].name.startswith("&lt;a href=") and "%{fullData.name}" in per_class.data[0].hovertemplate
    assert list(per_class.data[0].x) == LABELS == list(per_class.layout.xaxis.categoryarray)  # plain names unchanged
    assert text.escape_plotly_text("a < b & c > d") == "a &lt; b &amp; c &gt; d"


def test_read_json_file_refuses_deep_nesting_and_cleans_lone_surrogates(tmp_path):
    deep = tmp_path / "deep.card.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)  # json.loads raises RecursionError on this
    assert jsonfile.read_json_file(deep) is None
    too_deep = tmp_path / "nested.card.json"
    too_deep.write_text("[" * 40 + "]" * 40)  # parses, but deeper than any card: st.json could overflow
    assert jsonfile.read_json_file(too_deep) is None
    (tmp_path / "fine.json").write_text(json.dumps({"a": [[[1]]]}))
    assert jsonfile.read_json_file(tmp_path / "fine.json") == {"a": [[[1]]]}

    lone = tmp_path / "lone.card.json"
    lone.write_text('{"model": "resnet18", "title": "Res\\ud800Net", "\\udfff": ["\\udc80", 1]}')
    raw = tmp_path / "raw.card.json"  # a surrogate encoded as UTF-8 bytes: json.loads(bytes) lets it through
    raw.write_bytes(b'{"title": "x\xed\xa0\x80y"}')
    assert jsonfile.read_json_file(lone) == {"model": "resnet18", "title": "Res\ufffdNet", "\ufffd": ["\ufffd", 1]}
    assert jsonfile.read_json_file(raw) == {"title": "x\ufffdy"}
    found, unreadable = cards.load_model_cards(tmp_path)
    assert set(found) == {"lone.card.json", "raw.card.json"} and unreadable == ["deep.card.json", "nested.card.json"]
    json.dumps(found, ensure_ascii=False).encode("utf-8")  # what Streamlit does with it: no UnicodeEncodeError
    tables.card_rows(found)


def test_reliability_figure_and_calibration_rows(results_dir):
    runs = load_runs(results_dir)
    cal = {results.run_title(r): r["calibration"] for r in runs}
    fig = figures.reliability_figure(cal)
    curves = [t for t in fig.data if t.legendgroup]
    assert len(curves) == 2 * len(runs)  # before and after, per run
    for run, (before, after) in zip(runs, zip(curves[::2], curves[1::2], strict=True), strict=True):
        for trace, part in ((before, "raw"), (after, "calibrated")):
            r = run["calibration"][part]["reliability"]
            assert list(trace.x) == [c for c, n in zip(r["confidence"], r["count"], strict=True) if n]
        assert sum(after.customdata) == run["data"]["n"]  # every image in some bin
        assert f"ECE {run['calibration']['calibrated']['ece']:.3f}" in after.name
    rows = tables.calibration_rows(runs)
    assert len(rows) == len(runs)
    assert rows[0]["ECE after"] == round(runs[0]["calibration"]["calibrated"]["ece"], 4)
    summary = tables.summary_rows(runs)
    assert all(row["ECE"] is not None and row["NLL"] > 0 for row in summary)
    old = {k: v for k, v in runs[0].items() if k != "calibration"}  # a run/1 file
    assert tables.calibration_rows([old]) == [] and tables.summary_rows([old])[0]["ECE"] is None


def test_fer_bench_view_reads_the_stored_side_by_side_run_and_rejects_partial_ones():
    record = json.loads((REPO / "results" / "bench_fer.json").read_text())
    view = tables.fer_bench_view(record)
    assert view["one_face"] == record["ratios"]["one_face_photo"] and view["rss"] == record["ratios"]["rss"]
    assert [r["photo"] for r in view["rows"]] == [p["label"] for p in record["photos"]]
    for row, photo in zip(view["rows"], record["photos"], strict=True):
        assert row["ours / fer"] == round(photo["ours"]["median_ms"] / photo["fer"]["median_ms"], 2)
    assert set(view["precision"]) == set(record["engines"]["ours"]["models"])
    for broken in (
        {**record, "schema": "fer_core.bench/1"},
        {k: v for k, v in record.items() if k != "ratios"},
        {**record, "photos": [{"label": "x"}]},
        None,
    ):
        assert tables.fer_bench_view(broken) is None
