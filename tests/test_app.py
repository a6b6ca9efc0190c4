"""AppTest smoke tests of every page, with the tiny test weights and a results folder built from them.

AppTest (streamlit 1.67) drives `st.file_uploader` for real: `upload()` / `set_value()` register the
bytes with the script runner's in-memory upload manager, so the page reads them back through
`UploadedFile.getvalue()` exactly as it does behind a browser.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from fer_core.registry import list_models, model_title
from ui.text import escape_markdown as escape

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TITLES = [model_title(m) for m in list_models()]


@pytest.fixture
def app_env(monkeypatch, weights_dir, results_dir):
    monkeypatch.setenv("FER_WEIGHTS_DIR", str(weights_dir))
    monkeypatch.setenv("FER_RESULTS_DIR", str(results_dir))


def start(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, at.exception
    if page:
        at.switch_page(page).run()
        assert not at.exception, at.exception
    return at


def markdown(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown]


def model_lines(at: AppTest) -> dict[str, str]:
    """Model title -> its result line ("**ResNet18**: happy · 41%")."""
    return {t: m for m in markdown(at) for t in TITLES if m.startswith(f"**{t}**:")}


def verdicts(at: AppTest) -> list[str]:
    """The verdict cards' first lines ("**Face 1**: **happy** · 92%"), one per face, in order."""
    return [m for m in markdown(at) if m.startswith(("**Face ", "**The image as one face**"))]


def agreement_lines(at: AppTest) -> list[str]:
    return [m for m in markdown(at) if " models read " in m or "the models disagree" in m]


def gray_png() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (240, 180), 128).save(buf, format="PNG")
    return buf.getvalue()


def test_classify_upload_then_garbage_then_upload_again(app_env, astronaut_jpeg):
    at = start()
    assert [u.label for u in at.file_uploader] == ["Photos"]
    assert any("Upload a photo" in i.value for i in at.info)

    at.file_uploader[0].upload("astronaut.jpg", astronaut_jpeg, "image/jpeg")
    at.run()
    assert not at.exception, at.exception
    assert not at.error
    (card,) = verdicts(at)  # one face: its verdict first, before any per-model detail
    assert card.startswith("**Face 1**: **") and card.endswith("%")
    assert len(agreement_lines(at)) == 1  # ... and whether the three models agree
    assert markdown(at).index(card) < min(markdown(at).index(m) for m in model_lines(at).values())
    assert [s.value for s in at.subheader] == ["Face 1: how each model read it"]
    assert set(model_lines(at)) == set(TITLES)  # the three models, side by side
    assert len(at.get("plotly_chart")) == 1  # one chart compares them
    assert len(at.get("download_button")) == 2

    at.file_uploader[0].set_value(("garbage.jpg", b"this is not a photo", "image/jpeg"))
    at.run()
    assert not at.exception, at.exception
    assert len(at.error) == 1
    assert "garbage.jpg" in at.error[0].value and "not an image" in at.error[0].value
    assert not at.get("plotly_chart")

    at.file_uploader[0].set_value(("again.jpg", astronaut_jpeg, "image/jpeg"))
    at.run()
    assert not at.exception, at.exception
    assert not at.error and set(model_lines(at)) == set(TITLES)


def test_classify_no_face_offers_to_read_the_image_as_one_face(app_env):
    at = start()
    at.file_uploader[0].upload("wall.png", gray_png(), "image/png")
    at.run()
    assert not at.exception, at.exception
    assert any("No face found in wall.png" in w.value for w in at.warning)
    assert not at.get("plotly_chart")
    choice = at.radio(key="one-face-0-wall.png")
    assert set(choice.options) >= {"its centre square", "the whole image, padded to a square"}
    choice.set_value("whole").run()
    assert not at.exception, at.exception
    assert [s.value for s in at.subheader] == ["The image as one face: how each model read it"]
    assert set(model_lines(at)) == set(TITLES) and len(at.get("plotly_chart")) == 1
    assert [v.split(":")[0] for v in verdicts(at)] == ["**The image as one face**"]


def test_an_example_photo_and_several_uploads(app_env, astronaut_jpeg):
    at = start()
    at.file_uploader[0].set_value([("a.jpg", astronaut_jpeg, "image/jpeg"), ("b.jpg", b"junk", "image/jpeg")])
    at.get("button_group")[0].set_value("astronaut")  # the first example
    at.run()
    assert not at.exception, at.exception
    assert [h.value for h in at.header] == ["a.jpg", "b.jpg", "astronaut.jpg"]
    assert len(at.error) == 1 and "b.jpg" in at.error[0].value  # one bad file does not stop the others
    assert len(at.get("plotly_chart")) == 2 and len(verdicts(at)) == 2


def test_each_example_is_one_click_from_a_result(app_env):
    from ui.examples import EXAMPLES, FILE_NAMES

    at = start()
    (gallery,) = at.get("button_group")
    assert list(gallery.options) == list(EXAMPLES.values())  # shown by what they are
    faces = {}
    for key in EXAMPLES:
        gallery.set_value(key).run()
        assert not at.exception and not at.error, (key, at.exception)
        assert [h.value for h in at.header] == [escape(FILE_NAMES[key])]
        faces[key] = len(verdicts(at))
    assert faces == {"astronaut": 1, "group": 4, "tilted": 1}


def test_camera_photo_with_small_faces_search(app_env, astronaut_jpeg):
    at = start()
    at.toggle[0].set_value(True).run()  # "Use the camera"
    assert not at.exception, at.exception
    assert len(at.camera_input) == 1 and any("Upload a photo" in i.value for i in at.info)  # nothing yet
    at.camera_input[0].set_value(("shot.jpg", astronaut_jpeg, "image/jpeg"))
    at.toggle[1].set_value(True)  # "Find small faces"
    at.run()
    assert not at.exception, at.exception
    assert [h.value for h in at.header] == ["camera photo"]
    assert len(verdicts(at)) == 1 and len(agreement_lines(at)) == 1
    assert set(model_lines(at)) == set(TITLES)
    assert any(c.value.startswith("512×512 px · decode") for c in at.caption)


def test_mirror_toggle_reads_each_face_with_its_mirror(app_env, astronaut_jpeg):
    at = start()
    at.file_uploader[0].upload("astronaut.jpg", astronaut_jpeg, "image/jpeg").run()
    assert set(model_lines(at)) == set(TITLES) and not any("mirror" in c.value for c in at.caption)
    at.toggle[2].set_value(True).run()  # "Read the mirror too"
    assert not at.exception, at.exception
    # the caption reads Analysis.tta, so it says what analyze() was asked for (test_predict checks the numbers)
    assert any(c.value.endswith("· each face read with its mirror") for c in at.caption)
    assert set(model_lines(at)) == set(TITLES)


def test_saliency_toggle_shows_each_models_map_with_its_cost(app_env, astronaut_jpeg):
    at = start()
    at.file_uploader[0].upload("astronaut.jpg", astronaut_jpeg, "image/jpeg").run()
    assert not any(": why " in c for i in at.get("image") for c in i.captions)  # computed only when asked
    at.toggle[3].set_value(True).run()  # "Show where models looked"
    assert not at.exception, at.exception
    why = [c for i in at.get("image") for c in i.captions if ": why " in c]
    assert sorted(c.split(":")[0] for c in why) == sorted(TITLES)  # one map per model for the one face
    assert any(c.value.startswith("Saliency maps: ") and c.value.endswith("ms for 1 face.") for c in at.caption)


def test_more_photos_than_the_cap_say_so(app_env):
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 200, 200)).save(buf, format="PNG")
    files = [(f"p{i:02d}.png", buf.getvalue(), "image/png") for i in range(12)]
    at = start()
    at.file_uploader[0].set_value(files[:10]).run()  # exactly the cap: all shown, no warning
    assert [h.value for h in at.header] == [f"p{i:02d}.png" for i in range(10)]
    assert not [w for w in at.warning if "photos uploaded" in w.value]  # (each gray square: "no face found")
    at.file_uploader[0].set_value(files).run()
    assert not at.exception, at.exception
    assert [h.value for h in at.header] == [f"p{i:02d}.png" for i in range(10)]
    assert any("12 photos uploaded; the first 10 are shown" in w.value for w in at.warning)


def test_the_hostile_corpus_through_the_page(app_env, astronaut_jpeg):
    """Every broken file gets its own message, every odd but valid photo its face, no exception;
    the page then answers the next upload normally."""
    from test_hostile import _corpus

    corpus = list(_corpus().items())
    at = start()
    for start_at in range(0, len(corpus), 10):  # the page shows 10 photos per run
        chunk = corpus[start_at : start_at + 10]
        at.file_uploader[0].set_value([(name, raw, "image/png") for name, (raw, _) in chunk]).run()
        assert not at.exception, at.exception
        assert [h.value for h in at.header] == [escape(name) for name, _ in chunk]
        bad = [(name, fragment) for name, (_, fragment) in chunk if fragment]
        assert len(at.error) == len(bad)
        for err, (name, fragment) in zip(at.error, bad, strict=True):
            assert escape(name) in err.value and fragment in err.value, err.value
        faces = sum(s.value.startswith("Face 1:") for s in at.subheader)
        assert faces == len(chunk) - len(bad)
    at.file_uploader[0].set_value([("next.jpg", astronaut_jpeg, "image/jpeg")]).run()
    assert not at.exception and not at.error
    assert set(model_lines(at)) == set(TITLES)


def test_a_tiff_renamed_jpg_is_refused_by_the_page(app_env):
    buf = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buf, format="TIFF")
    at = start()
    at.file_uploader[0].set_value([("scan.jpg", buf.getvalue(), "image/jpeg")]).run()
    assert not at.exception, at.exception
    assert len(at.error) == 1 and "is a TIFF file; accepted here" in at.error[0].value


def test_missing_weights_say_how_to_get_them(monkeypatch, tmp_path, results_dir):
    monkeypatch.setenv("FER_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("FER_RESULTS_DIR", str(results_dir))
    at = start()
    assert len(at.error) == 1
    assert "python -m fer_core train" in at.error[0].value and "python -m fer_core export" in at.error[0].value
    assert not at.file_uploader
    at.switch_page("pages/about.py").run()  # About still explains the models, from the registry
    assert not at.exception, at.exception
    assert len(at.expander) == len(TITLES)


def test_benchmarks_page(app_env, results_dir):
    at = start("pages/benchmarks.py")
    assert not at.error
    assert len(at.get("plotly_chart")) >= 4  # confusion matrix, per-class scores, reliability, training curves
    assert "Calibration: does 70 % mean 70 %?" in [h.value for h in at.header]
    board, summary, calibration, references, side_by_side = at.dataframe
    assert list(side_by_side.value["photo"])[0] == "one face, 425x521 px"  # the fer comparison, one row a photo
    assert list(board.value["rank"]) == [1, 2] and "ResNet18" in list(board.value["model"])  # one row a model
    accuracy = list(board.value["test accuracy %"])
    assert accuracy == sorted(accuracy, reverse=True)  # best first
    (lead,) = [m for m in markdown(at) if m.startswith("On FER2013 PrivateTest")]  # the answer, in text
    assert "the ensemble of the 3 models reads" in lead and "58.2%" in lead  # beside the fer package's figure
    assert len(calibration.value) == 2 and "ECE after" in calibration.value
    assert len(summary.value) == 2 and "file" not in summary.value
    assert set(references.value["kind"]) == {"measured here", "reported elsewhere"}
    metrics = {m.label: m.value for m in at.metric}
    assert {"Ensemble", "ResNet18", "fer package"} <= set(metrics) and metrics["fer package"] == "58.2%"
    assert "All models agree" in metrics and "Subset accuracy" in metrics
    assert metrics["Per photo (median)"] == "40 ms"  # from bench_app.json
    assert any("read with its mirror too: 47 ms median" in c.value for c in at.caption)
    versus = json.loads((results_dir / "bench_fer.json").read_text())["ratios"]  # bench_fer.json
    assert metrics["One-face photo vs fer"] == f"{versus['one_face_photo']:.2f}× its time"
    assert metrics["Memory vs fer"] == f"{versus['rss']:.2f}× its RSS"
    assert metrics["Browsers at once"] == "20" and metrics["Per photo (p50 / p95)"] == "4.0 / 9.0 s"  # loadrun.json
    assert metrics["Broken files reported"] == "100 of 100" and metrics["Images"] == "10,000"  # batchrun.json
    assert len(at.get("plotly_chart")) >= 5  # ... and the two memory curves
    assert any("used 500 ms of CPU per photo, 25% of the CPU" in c.value for c in at.caption)

    at.toggle[0].set_value(False).run()  # counts instead of row-normalised
    assert not at.exception, at.exception
    at.multiselect(key="subset").set_value(["resnet18"]).run()
    assert not at.exception, at.exception
    at.multiselect(key="pc-metrics").set_value(["precision", "specificity"]).run()
    assert not at.exception, at.exception

    run_file = next(results_dir.glob("resnet18_*.json"))
    at.file_uploader[0].set_value(
        [("mine.json", run_file.read_bytes(), "application/json"), ("bad.json", b'{"schema": 1}', "application/json")]
    )
    at.run()
    assert not at.exception, at.exception
    assert len(at.error) == 1 and "bad.json" in at.error[0].value and "schema" in at.error[0].value
    assert len(at.dataframe[1].value) == 3  # the valid upload joined the table
    kinds = at.dataframe[3].value.set_index("source")["kind"]
    assert kinds["uploaded file"] == "uploaded, not checked by us"  # never passed off as ours


def test_benchmarks_page_without_runs(monkeypatch, weights_dir, tmp_path):
    monkeypatch.setenv("FER_WEIGHTS_DIR", str(weights_dir))
    monkeypatch.setenv("FER_RESULTS_DIR", str(tmp_path))
    at = start("pages/benchmarks.py")
    assert any("No evaluation runs yet" in i.value for i in at.info)
    assert any("No speed benchmark yet" in i.value for i in at.info)
    assert any("No load run yet" in i.value for i in at.info) and any("No batch run yet" in i.value for i in at.info)
    assert len(at.dataframe) == 1  # the references still show


def test_about_page(app_env):
    at = start("pages/about.py")
    assert not at.error
    assert [e.label.split("**")[1] for e in at.expander if "**" in e.label] == TITLES
    assert any("Do not use this to make decisions about people" in m for m in markdown(at))


def test_classify_survives_an_unexpected_error(app_env, astronaut_jpeg, monkeypatch, caplog):
    """A bug while analysing one photo shows a clear error for that photo only, logs the traceback
    without the photo's name or bytes, and the next upload works."""
    from fer_core.predict import Predictor

    real = Predictor.analyze
    calls = {"n": 0}

    def fails_once(self, image, *args, **kw):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("simulated bug")
        return real(self, image, *args, **kw)

    monkeypatch.setattr(Predictor, "analyze", fails_once)
    at = start()
    with caplog.at_level("ERROR"):
        at.file_uploader[0].set_value(
            [("secret-name.jpg", astronaut_jpeg, "image/jpeg"), ("b.jpg", astronaut_jpeg, "image/jpeg")]
        )
        at.run()
    assert not at.exception, at.exception
    assert len(at.error) == 1
    assert "secret-name.jpg could not be analysed: RuntimeError" in at.error[0].value
    assert len(verdicts(at)) == 1  # the second photo in the same run still works
    logged = [r for r in caplog.records if r.levelname == "ERROR" and r.exc_info]
    assert logged and "simulated bug" in caplog.text
    assert "secret-name" not in caplog.text and "\\xff\\xd8" not in caplog.text  # no name, no bytes

    at.file_uploader[0].set_value(("again.jpg", astronaut_jpeg, "image/jpeg"))
    at.run()
    assert not at.exception, at.exception
    assert not at.error and set(model_lines(at)) == set(TITLES)


def test_classify_with_one_shipped_model_says_which_are_missing(
    monkeypatch, weights_dir, results_dir, astronaut_jpeg, tmp_path
):
    one = tmp_path / "weights"
    one.mkdir()
    (one / "resnet18.onnx").symlink_to(weights_dir / "resnet18.onnx")
    monkeypatch.setenv("FER_WEIGHTS_DIR", str(one))
    monkeypatch.setenv("FER_RESULTS_DIR", str(results_dir))
    at = start()
    (note,) = [i.value for i in at.info if i.value.startswith("Not shipped yet")]
    assert "EfficientNetV2-S" in note and "VGG16-BN" in note and "ResNet18 only" in note
    at.file_uploader[0].upload("astronaut.jpg", astronaut_jpeg, "image/jpeg")
    at.run()
    assert not at.exception, at.exception
    assert list(model_lines(at)) == ["ResNet18"]
    assert len(verdicts(at)) == 1 and not agreement_lines(at)  # one model: no ensemble, nothing to agree


def test_about_page_with_malformed_model_cards(monkeypatch, weights_dir, tmp_path):
    """A card nested 100,000 levels deep (RecursionError in json) is named as unreadable; a card with
    lone surrogates (UnicodeEncodeError when sent to the browser) is shown with U+FFFD instead."""
    weights = tmp_path / "weights"
    weights.mkdir()
    for f in weights_dir.glob("*.onnx"):  # not the cards: writing this test's through a link would change the fixture's
        (weights / f.name).symlink_to(f)
    (weights / "deep.card.json").write_text("[" * 100_000 + "]" * 100_000)
    (weights / "resnet18.card.json").write_text('{"model": "resnet18", "title": "Res\\ud800Net", "\\udfff": "\\udc80"}')
    monkeypatch.setenv("FER_WEIGHTS_DIR", str(weights))
    monkeypatch.setenv("FER_RESULTS_DIR", str(tmp_path / "no-results"))
    at = start("pages/about.py")
    assert not at.exception, at.exception
    (warning,) = at.warning
    assert "deep.card.json" in warning.value and "not a readable model card" in warning.value
    assert "resnet18.card.json (everything it records)" in [e.label for e in at.expander]
    (card,) = at.json
    assert json.loads(card.value) == {"model": "resnet18", "title": "Res\ufffdNet", "\ufffd": "\ufffd"}
    assert at.dataframe[0].value["model"].tolist() == ["Res\ufffdNet"]


def test_benchmarks_uploads_are_bounded_and_parsed_once(app_env, results_dir, monkeypatch):
    """At most MAX_RUN_UPLOADS files are read, each parsed once however often the page reruns, and
    every hostile run file gets its own message with the page still whole."""
    from hostile_corpus import hostile_runs

    import app_state
    from fer_core.results import MAX_RUN_UPLOADS

    calls = []
    real = app_state.parse_run
    monkeypatch.setattr(app_state, "parse_run", lambda raw, name: calls.append(name) or real(raw, name))
    run = json.loads(next(results_dir.glob("resnet18_*.json")).read_text())
    files = []
    for i in range(MAX_RUN_UPLOADS + 1):
        run["created_utc"] = f"2026-01-0{i + 1}T00:00:00Z"  # different bytes, the same kind of run
        files.append((f"mine{i}.json", json.dumps(run).encode(), "application/json"))
    at = start("pages/benchmarks.py")
    at.file_uploader[0].set_value(files).run()
    assert not at.exception, at.exception
    assert len(calls) == MAX_RUN_UPLOADS
    assert any(f"the dashboard reads the first {MAX_RUN_UPLOADS}" in e.value for e in at.error)
    assert len(at.dataframe[1].value) == 2 + MAX_RUN_UPLOADS
    at.toggle[0].set_value(False).run()  # a widget click reruns the page: nothing is parsed again
    assert not at.exception and len(calls) == MAX_RUN_UPLOADS

    hostile = list(hostile_runs(run).items())
    for start_at in range(0, len(hostile), MAX_RUN_UPLOADS):
        chunk = [
            (f"{name}.json", (raw if isinstance(raw, str) else json.dumps(raw)).encode(), "application/json")
            for name, raw in hostile[start_at : start_at + MAX_RUN_UPLOADS]
        ]
        at.file_uploader[0].set_value(chunk).run()
        assert not at.exception, at.exception
        assert len(at.error) == len(chunk)
        assert len(at.dataframe[0].value) == 2  # none joined


def test_bounded_images_through_the_page(app_env):
    from hostile_corpus import flat_webp, progressive_jpeg, strip_png

    files = [
        ("scans.jpg", progressive_jpeg(512, extra_scans=500), "image/jpeg", "scans"),
        ("strip.png", strip_png(1, 50_000), "image/png", "longer than it is wide"),
        ("big.webp", flat_webp(7000, 7000), "image/webp", "WebP is read up to"),
    ]
    at = start()
    at.file_uploader[0].set_value([f[:3] for f in files]).run()
    assert not at.exception, at.exception
    assert len(at.error) == len(files)
    for err, (name, _, _, words) in zip(at.error, files, strict=True):
        assert name in err.value and words in err.value, err.value


def test_video_page_gives_each_person_a_timeline(app_env):
    from clips import moving_face_clip

    at = start("pages/video.py")
    assert any("Upload a clip" in i.value for i in at.info)
    at.file_uploader[0].set_value(("walk.mp4", moving_face_clip(3.0, 10), "video/mp4")).run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    (lead,) = [m for m in markdown(at) if m.startswith("**1 person**")]  # the answer first
    assert "6 frames read" in lead and "**Person 1**: mostly" in lead
    assert [s.value for s in at.subheader] == ["Person 1", "Frames, each person numbered (P1, P2, …)"]
    assert len(at.get("plotly_chart")) == 2  # the ensemble's timeline and the models' lines
    assert len(at.get("download_button")) == 2
    at.file_uploader[0].set_value(("junk.mp4", b"not a clip" * 50, "video/mp4")).run()
    assert not at.exception, at.exception
    assert len(at.error) == 1 and "junk.mp4" in at.error[0].value and "video" in at.error[0].value
