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
    theirs = [{**ref, "kind": REPORTED} for ref in references]
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


def describe_models(metas: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """What each model is: the registry spec stored in its ONNX file (else the registry's own),
    plus how its checkpoint was chosen. `metas` maps a model name to its ONNX metadata ({} if
    the weights are not loaded)."""
    out = []
    for name, meta in metas.items():
        spec = dict(meta.get("spec") or get_spec(name).to_dict())
        best = meta.get("best") or {}
        out.append(
            {
                "name": name,
                "title": spec.get("title", name),
                "torchvision": spec.get("torchvision_name"),
                "parameters": int(meta.get("parameters") or spec.get("parameters") or 0),
                "input": f"{spec.get('input_size', 48)}x{spec.get('input_size', 48)} gray",
                "head": spec.get("head"),
                "adaptations": list(spec.get("adaptations") or []),
                "selected": (
                    f"epoch {best.get('epoch')} of {len(meta.get('history') or [])}, "
                    f"{best.get('metric', 'val accuracy')} {best.get('value'):.4f} on {meta.get('selected_on')}"
                    if isinstance(best.get("value"), (int, float))
                    else None
                ),
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
