"""Tables and views the pages show: run summaries, references, model cards, benchmark records."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fer_core.registry import get_spec
from fer_core.results import run_title


def summary_rows(runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per run for the sortable summary table (numbers stay numbers, so columns sort)."""
    rows = []
    for run in runs:
        m, weights, timing = run["metrics"], run.get("weights") or [], run.get("timing") or {}
        ips = timing.get("images_per_second")
        rows.append(
            {
                "model": run_title(run),
                "split": run["split"],
                "tta": run["tta"],
                "images": run["data"].get("n"),
                "accuracy %": round(100 * m["accuracy"], 2),
                "macro-F1": round(m["macro"]["f1"], 4),
                "weighted-F1": round(m["weighted"]["f1"], 4),
                **calibration_cells(run),
                "parameters (M)": round(sum(int(w.get("parameters") or 0) for w in weights) / 1e6, 2),
                "weights MB": round(sum(int(w.get("bytes") or 0) for w in weights) / 1e6, 1),
                "images/s": round(ips, 1) if isinstance(ips, (int, float)) else None,
                "file": run.get("_file", ""),
            }
        )
    return rows


def calibration_cells(run: Mapping[str, Any]) -> dict[str, float | None]:
    """ECE, NLL and Brier score of what the run serves (calibrated), and the ECE before; None for a
    run written before calibration (schema run/1)."""
    cal = run.get("calibration")
    if not cal:
        return {"ECE": None, "ECE before": None, "NLL": None, "Brier": None}
    after, before = cal["calibrated"], cal["raw"]
    return {
        "ECE": round(after["ece"], 4),
        "ECE before": round(before["ece"], 4),
        "NLL": round(after["nll"], 4),
        "Brier": round(after["brier"], 4),
    }


def calibration_rows(runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per calibrated run: temperatures, and ECE, NLL, Brier before -> after, accuracy before and after."""
    rows = []
    for run in runs:
        cal = run.get("calibration")
        if not cal:
            continue
        before, after = cal["raw"], cal["calibrated"]
        temps = dict(cal["temperatures"])
        if cal.get("ensemble_temperature") is not None:
            temps["ensemble"] = cal["ensemble_temperature"]
        rows.append(
            {
                "model": run_title(run),
                "split": run["split"],
                "tta": run["tta"],
                "temperature": ", ".join(f"{t:.3f}" for t in temps.values()),
                "bend": ", ".join(f"{b:.3f}" for b in (cal.get("bends") or {}).values()) or "–",
                "ECE before": round(before["ece"], 4),
                "ECE after": round(after["ece"], 4),
                "NLL before": round(before["nll"], 4),
                "NLL after": round(after["nll"], 4),
                "Brier before": round(before["brier"], 4),
                "Brier after": round(after["brier"], 4),
                "accuracy before %": round(100 * before["accuracy"], 2),
                "accuracy after %": round(100 * after["accuracy"], 2),
            }
        )
    return rows


def _weights_key(run: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(sorted(str(w.get("sha256")) for w in run.get("weights") or []))


def _twin(runs: Sequence[Mapping[str, Any]], run: Mapping[str, Any], split: str, tta: str) -> Mapping[str, Any] | None:
    """The run of the same weights on another split or TTA, if there is one."""
    key = _weights_key(run)
    return next((r for r in runs if r["split"] == split and r["tta"] == tta and _weights_key(r) == key), None)


def leaderboard_rows(runs: Sequence[Mapping[str, Any]], split: str = "test", tta: str = "none") -> list[dict[str, Any]]:
    """One row per model and ensemble on `split` with `tta` (the app's default view), best accuracy
    first, with the same weights' PublicTest accuracy and their accuracy with the mirror (TTA flip)."""
    picked = sorted(
        (r for r in runs if r["split"] == split and r["tta"] == tta), key=lambda r: -r["metrics"]["accuracy"]
    )
    rows = []
    for rank, run in enumerate(picked, start=1):
        val, flip = _twin(runs, run, "val", tta), _twin(runs, run, split, "flip")
        rows.append(
            {
                "rank": rank,
                "model": run_title(run) + (" (uploaded)" if run.get("_uploaded") else ""),
                f"{split} accuracy %": round(100 * run["metrics"]["accuracy"], 2),
                "macro-F1": round(run["metrics"]["macro"]["f1"], 3),
                "ECE": calibration_cells(run)["ECE"],
                "val accuracy %": round(100 * val["metrics"]["accuracy"], 2) if val else None,
                "with the mirror %": round(100 * flip["metrics"]["accuracy"], 2) if flip else None,
            }
        )
    return rows


def headline(runs: Sequence[Mapping[str, Any]], references: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The answer at a glance, for the app's default view (PrivateTest, one view per face): the best
    ensemble, each single model best first, and the `fer` package's figure where references give it.
    None if no test run without TTA is stored."""
    picked = sorted(
        (r for r in runs if r["split"] == "test" and r["tta"] == "none" and not r.get("_uploaded")),
        key=lambda r: -r["metrics"]["accuracy"],
    )
    if not picked:
        return None
    singles = [r for r in picked if len(r.get("models") or [r["name"]]) == 1]
    ensembles = [r for r in picked if len(r.get("models") or [r["name"]]) > 1]

    def entry(run: Mapping[str, Any]) -> dict[str, Any]:
        m = run["metrics"]
        n_models = len(run.get("models") or [run["name"]])
        return {
            "title": run_title(run),
            "accuracy": m["accuracy"],
            "macro_f1": m["macro"]["f1"],
            "n": run["data"]["n"],
            "models": n_models,
        }

    fer = next((ref for ref in references if "`fer`" in str(ref.get("source"))), None)
    fer_acc = None
    if fer is not None:
        try:
            fer_acc = float(fer["accuracy %"]) / 100
        except (TypeError, ValueError):
            fer_acc = None
    return {
        "ensemble": entry(ensembles[0]) if ensembles else None,
        "models": [entry(r) for r in singles],
        "fer": None if fer_acc is None else {"accuracy": fer_acc, "macro_f1": fer.get("macro-F1")},
    }


MEASURED, REPORTED, UPLOADED = "measured here", "reported elsewhere", "uploaded, not checked by us"


def reference_rows(runs: Sequence[Mapping[str, Any]], references: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Our test-split runs (measured here) followed by the literature figures
    (`fer_core.report.load_references`), in one table."""
    ours = [
        {
            "source": "uploaded file" if run.get("_uploaded") else "this project",
            "model": run_title(run),
            "test set": f"FER2013 {run['split']}/ ({run['data'].get('n', 0):,} images)",
            "accuracy %": round(100 * run["metrics"]["accuracy"], 1),
            "macro-F1": round(run["metrics"]["macro"]["f1"], 2),
            "notes": f"TTA {run['tta']}; checkpoint selected on val/",
            "kind": UPLOADED if run.get("_uploaded") else MEASURED,
        }
        for run in runs
        if run["split"] == "test"
    ]
    # The file is written for the README's markdown ("`fer` pip package"); a table cell shows it plain.
    theirs = [{**ref, "source": str(ref.get("source", "")).replace("`", ""), "kind": REPORTED} for ref in references]
    # Mixed "73.1 / 73.0" and 73.3 in one column: strings throughout, so the table has one type.
    return [{**r, "accuracy %": str(r["accuracy %"])} for r in [*ours, *theirs]]


def card_rows(cards: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One summary row per model card (`read_model_cards`): training and single-view results."""
    rows = []
    for card in cards.values():
        try:
            training, results = card.get("training") or {}, card.get("results") or {}
            scores = {}
            for split, name in (("val", "PublicTest"), ("test", "PrivateTest")):
                run = (results.get(split) or {}).get("none") or {}
                acc, f1 = run.get("accuracy"), run.get("macro_f1")
                scores[f"{name} acc %"] = None if acc is None else round(100 * acc, 2)
                scores[f"{name} macro-F1"] = None if f1 is None else round(f1, 3)
            rows.append(
                {
                    "model": card.get("title") or card["model"],
                    "epochs": training.get("epochs"),
                    "best epoch (PublicTest)": training.get("best_epoch"),
                    "CPU-hours": (training.get("cost") or {}).get("cpu_hours"),
                    **scores,
                    "command": training.get("command"),
                }
            )
        except (AttributeError, KeyError, TypeError):
            continue  # not a card: the raw JSON is still shown below the table
    return rows


def checkpoint_text(meta: Mapping[str, Any], card: Mapping[str, Any] | None = None) -> str | None:
    """Which checkpoint ships, counted over the model's whole training. A model trained in stages
    (each `train --init` went on from the best checkpoint of the stage before) is described by its
    card's stages; the ONNX file's own history holds only the last stage."""
    best = meta.get("best") or {}
    if not isinstance(best.get("value"), (int, float)):
        return None
    score = f"{best.get('metric', 'accuracy')} {best['value']:.4f} on {meta.get('selected_on') or 'val'}"
    training = (card or {}).get("training") or {}
    stages = [s.get("epochs") for s in training.get("stages") or [] if isinstance(s.get("epochs"), int)]
    if isinstance(training.get("epochs"), int) and isinstance(training.get("best_epoch"), int):
        text = f"epoch {training['best_epoch']} of {training['epochs']}"
        if len(stages) > 1:
            text += f", trained in {len(stages)} stages ({' + '.join(map(str, stages))} epochs)"
        return f"{text}; {score}"
    last = len(meta.get("history") or [])
    if meta.get("init"):
        return f"epoch {best.get('epoch')} of the last stage's {last} (it went on from an earlier checkpoint); {score}"
    return f"epoch {best.get('epoch')} of {last}; {score}"


def describe_models(
    metas: Mapping[str, Mapping[str, Any]], cards: Mapping[str, Mapping[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """What each model is: the registry spec stored in its ONNX file (else the registry's own),
    plus which checkpoint ships (`checkpoint_text`, from its card where there is one). `metas` maps a
    model name to its ONNX metadata ({} if the weights are not loaded); `cards` are the model cards
    as `fer_core.cards.load_model_cards` reads them (any keys; each names its model)."""
    by_model = {c.get("model"): c for c in (cards or {}).values() if isinstance(c, Mapping)}
    out = []
    for name, meta in metas.items():
        spec = dict(meta.get("spec") or get_spec(name).to_dict())
        out.append(
            {
                "name": name,
                "title": spec.get("title", name),
                "torchvision": spec.get("torchvision_name"),
                "parameters": int(meta.get("parameters") or spec.get("parameters") or 0),
                "input": f"{spec.get('input_size', 48)}x{spec.get('input_size', 48)} gray",
                "head": spec.get("head"),
                "adaptations": list(spec.get("adaptations") or []),
                "selected": checkpoint_text(meta, by_model.get(name)),
                "loaded": bool(meta),
            }
        )
    return out


def series_points(points: Any) -> list[tuple[float, float]] | None:
    """[[seconds, MB], ...] as stored by the load and batch runs, or None if it is not that."""
    if not isinstance(points, list):
        return None
    out = []
    for p in points:
        if not (isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(v, (int, float)) for v in p)):
            return None
        out.append((float(p[0]), float(p[1])))
    return out


def fer_bench_view(record: Any) -> dict[str, Any] | None:
    """What the Benchmarks page shows of results/bench_fer.json (python -m fer_core bench-fer): the
    ratios of our time, start-up and memory to the `fer` package's, and one row per photo; None if
    the file is not a complete side-by-side run."""
    if not isinstance(record, dict) or record.get("schema") != "fer_core.bench_fer/1":
        return None
    try:
        r = record["ratios"]
        rows = [
            {
                "photo": str(p["label"]),
                "faces": int(p["faces"]),
                "ours, ms": round(float(p["ours"]["median_ms"]), 1),
                "fer, ms": round(float(p["fer"]["median_ms"]), 1),
                "ours / fer": round(float(p["ratio"]), 2),
            }
            for p in record["photos"]
        ]
        ours = record.get("engines", {}).get("ours", {})
        return {
            "one_face": float(r["one_face_photo"]),
            "one_face_max": float(r["one_face_photo_max"]),
            "cold_start": float(r["cold_start"]),
            "rss": float(r["rss"]),
            "rows": rows,
            "rounds": int(record["rounds"]),
            "precision": {str(k): str(v) for k, v in (ours.get("precision") or {}).items()},
            "fer_version": record.get("engines", {}).get("fer", {}).get("version"),
            "created_utc": record.get("created_utc"),
        }
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def bench_view(record: Any) -> dict[str, Any] | None:
    """What the Benchmarks page shows of results/bench_app.json (python -m fer_core bench), or
    None if the file is not a complete benchmark."""
    if not isinstance(record, dict) or record.get("schema") != "fer_core.bench/1":
        return None
    try:
        lat, cold, mem = record["latency"], record["cold_start"], record["memory"]
        photo, env = record.get("photo") or {}, record.get("environment") or {}
        flip = record.get("latency_flip")  # absent from benchmarks made before the mirror toggle
        return {
            "models": [str(m) for m in record["models"]],
            "ready_s": float(cold["ready_s"]),
            "median_ms": float(lat["median_ms"]),
            "p95_ms": float(lat["p95_ms"]),
            "flip_median_ms": float(flip["median_ms"]) if flip is not None else None,
            "runs": int(lat["runs"]),
            "faces": int(lat["faces"]),
            "stages_ms": {str(k): float(v) for k, v in (lat.get("stages_median_ms") or {}).items()},
            "rss_mb": float(mem["rss_mb"]),
            "photo": f"{photo.get('file')} ({photo.get('width')}×{photo.get('height')})",
            "cpus": env.get("cpus"),
            "created_utc": record.get("created_utc"),
        }
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def load_run_view(record: Any) -> dict[str, Any] | None:
    """What the Benchmarks page shows of results/loadrun.json (tools/loadrun.py), or None if the
    file is not a load run."""
    if not isinstance(record, dict) or record.get("schema") != "fer_core.loadrun/1":
        return None
    try:
        lat, rss, cfg = record["latency_ms"], record["rss_mb"], record["config"]
        return {
            "clients": int(cfg["clients"]),
            "seconds": float(cfg["seconds"]),
            "photos": int(record["photos"]),
            "p50_ms": lat.get("p50"),
            "p95_ms": lat.get("p95"),
            "first_photo_ms": lat.get("first_photo_median"),
            "errors": int(record["errors"]),
            "leaks": int(record["leaks"]),
            "rss_max_mb": rss.get("max"),
            "levelled": rss.get("levelled"),
            "series": {"server": series_points(rss.get("series")) or []},
            "server_cpu_ms_per_photo": (record.get("cpu") or {}).get("server_ms_per_photo"),
            "server_cpu_share": (record.get("cpu") or {}).get("server_share"),
            "note": record.get("note"),
            "created_utc": record.get("created_utc"),
        }
    except (KeyError, TypeError, ValueError):
        return None


def batch_run_view(record: Any) -> dict[str, Any] | None:
    """What the Benchmarks page shows of results/batchrun.json (tools/batchrun.py), or None if the
    file is not a batch run. The memory of the resumed leg is drawn after the killed one."""
    if not isinstance(record, dict) or record.get("schema") != "fer_core.batchrun/1":
        return None
    try:
        out, legs = record["output"], record["legs"]
        series: dict[str, list[tuple[float, float]]] = {}
        offset = 0.0
        for i, leg in enumerate(legs):
            name = "killed run" if leg.get("killed") else ("resumed run" if i else "run")
            series[name] = [(t + offset, mb) for t, mb in series_points(leg["rss_mb"].get("series")) or []]
            offset += float(leg["wall_s"])
        return {
            "images": int(record["images"]),
            "images_per_second": record.get("images_per_second"),
            "wall_s": record.get("predict_wall_s"),
            "errors_reported": int(out["errors_reported"]),
            "errors_expected": int(out["errors_expected"]),
            "missing": int(out["missing"]),
            "duplicated": int(out["misnumbered_or_duplicated"]),
            "peak_rss_mb": record.get("peak_rss_mb"),
            "levelled": legs[-1]["rss_mb"].get("levelled"),
            "resumed": record.get("resumed"),
            "passed": bool(record.get("passed")),
            "series": series,
            "note": record.get("note"),
            "created_utc": record.get("created_utc"),
        }
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        return None


def track_summaries(frames: Sequence[Any], max_tracks: int) -> list[dict[str, Any]]:
    """Per track of a clip (`fer_core.predict.VideoFrame`s), the most seen first, at most
    `max_tracks`: when it was seen, its expression in most frames, how often the models agreed, and
    the series the page plots (times, ensemble probabilities, each model's probabilities)."""
    tracks: dict[int, dict[str, Any]] = {}
    for frame in frames:
        for track, face in zip(frame.tracks, frame.faces, strict=True):
            t = tracks.setdefault(track, {"track": track, "times": [], "ensemble": [], "models": {}, "labels": []})
            t["times"].append(frame.time_s)
            t["ensemble"].append(list(face.ensemble))
            t["labels"].append(face.label)
            t.setdefault("agree", 0)
            t["agree"] += int(face.agree)
            for model, p in face.probabilities.items():
                t["models"].setdefault(model, []).append(list(p))
            t["face"] = t.get("face", face.face)  # the first crop, for the card
            t["label_names"] = face.labels
    out = sorted(tracks.values(), key=lambda t: (-len(t["times"]), t["track"]))[:max_tracks]
    for t in out:
        n = len(t["times"])
        top = max(set(t["labels"]), key=lambda lab: (t["labels"].count(lab), lab))
        t.update(n=n, start=t["times"][0], end=t["times"][-1], label=top, share=t["labels"].count(top) / n)
        t["agree_share"] = t.pop("agree") / n
    return out
