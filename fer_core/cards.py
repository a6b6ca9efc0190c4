"""Model cards: one machine-readable JSON per shipped model, next to its weights.

    python -m fer_core card [--model NAME ...] [--weights weights] [--results results]

A card is assembled only from files a run produced: the ONNX metadata (architecture, registry
spec, training config and history, how the checkpoint was chosen), the evaluation runs in
results/ (PublicTest and PrivateTest accuracy and macro-F1, with and without TTA) and the hashes
of the shipped files. Nothing in it is typed in by hand, so it cannot drift from the weights.
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path
from typing import Any

from .atomic import write_json_atomic
from .calibration import FIT_SPLIT
from .config import recipe_flags
from .jsonfile import plain_json, read_json_file
from .provenance import sha256_file
from .registry import get_spec, list_models
from .results import load_runs, training_chain, training_record
from .serving import OnnxModel

CARD_SCHEMA = "fer_core.card/1"

_RECIPE_FLAGS = recipe_flags()  # the TrainConfig fields that fix a recipe, in command order


def train_command(config: dict[str, Any]) -> str:
    """The command line that repeats a run, from the config stored in its checkpoint."""
    parts = ["python -m fer_core train", f"--model {config['model']}", "--data PATH"]
    for key in _RECIPE_FLAGS:
        value = config.get(key)
        if value is not None:
            parts.append(f"--{key.replace('_', '-')} {value}")
    if config.get("warmup") not in (None, 0.15):  # 0.15: the default every shipped run used
        parts.append(f"--warmup {config['warmup']}")
    if config.get("schedule") == "plateau":
        parts.append(f"--plateau-factor {config['plateau_factor']} --plateau-patience {config['plateau_patience']}")
    if config.get("pretrained"):
        parts.append("--pretrained")
    if config.get("init"):
        parts.append(f"--init {Path(config['init']).name}")
    if config.get("teacher") and config.get("distill"):
        parts.append("--teacher " + " ".join(Path(t).name for t in config["teacher"]))
        parts.append(f"--distill {config['distill']} --distill-temp {config.get('distill_temp', 2.0)}")
    return " ".join(parts)


def training_cost(history: list[dict[str, Any]], threads: int) -> dict[str, Any]:
    """Wall-clock and CPU time of a run from its per-epoch rows.

    Rows written since `cpu_seconds` was recorded give process CPU time directly. Older rows only
    have wall-clock seconds, which include any time the machine was shared or the run paused;
    for those the typical (median) epoch, times the epochs, times the threads, is the estimate.
    """
    wall = sum(r.get("seconds", 0.0) + r.get("eval_seconds", 0.0) for r in history)
    if history and all("cpu_seconds" in r for r in history):
        cpu = sum(r["cpu_seconds"] for r in history)
        method = "sum of per-epoch process CPU time"
    else:
        typical = statistics.median(r.get("seconds", 0.0) + r.get("eval_seconds", 0.0) for r in history)
        cpu = typical * len(history) * threads
        method = f"median epoch wall-clock x {len(history)} epochs x {threads} threads"
    return {
        "wall_clock_hours": round(wall / 3600, 3),
        "cpu_hours": round(cpu / 3600, 3),
        "cpu_hours_method": method,
        "threads": threads,
    }


def training_stages(meta: dict[str, Any]) -> list[dict[str, Any]]:
    """The runs that made a model, oldest first: one from scratch, more when `--init` chained
    them (each later run starts from the checkpoint file of the one before)."""
    stages = []
    for run in training_chain(meta):
        best, start = run.get("best") or {}, run.get("init")
        stages.append(
            {
                "command": train_command(run["config"]),
                "epochs": len(run.get("history") or []),
                "best_epoch": best.get("epoch"),
                "best_val_accuracy": best.get("value"),
                "started_from": {"file": start["file"], "sha256": start["sha256"]} if start else None,
                "distilled_from": run.get("teachers"),
            }
        )
    return stages


def _file_entry(path: Path) -> dict[str, Any]:
    return {"file": path.name, "sha256": sha256_file(path), "bytes": path.stat().st_size}


def _result_entry(run: dict[str, Any]) -> dict[str, Any]:
    m = run["metrics"]
    return {
        "accuracy": m["accuracy"],
        "macro_f1": m["macro"]["f1"],
        "weighted_f1": m["weighted"]["f1"],
        "n": run["data"]["n"],
        **({k: run["calibration"]["calibrated"][k] for k in ("ece", "nll", "brier")} if run.get("calibration") else {}),
        "run_file": run.get("_file"),
        "weights_sha256": {w["model"]: w["sha256"] for w in run["weights"]},
        "backend": run["timing"].get("backend"),
        "git_commit": run.get("git_commit"),
    }


def build_card(
    name: str, weights_dir: str | os.PathLike = "weights", results_dir: str | os.PathLike = "results"
) -> dict[str, Any]:
    """The card of one model, from its shipped files and its stored runs."""
    spec = get_spec(name)
    weights_dir = Path(weights_dir)
    onnx_path = weights_dir / f"{name}.onnx"
    model = OnnxModel(onnx_path, verify=False)  # the card is what records its hash
    meta = model.meta
    config = meta["config"]
    history, best = training_record(meta)  # every stage's epochs, numbered from the first
    threads = int(config.get("threads") or os.cpu_count() or 1)
    results: dict[str, dict[str, Any]] = {}
    sha = model.sha256
    for run in load_runs(results_dir):
        if run["name"] != name:
            continue
        if sha not in {w["sha256"] for w in run["weights"]}:
            continue  # a run of other weights of the same model: not evidence about these
        results.setdefault(run["split"], {})[run["tta"]] = _result_entry(run)
    files = {"onnx": _file_entry(onnx_path)}
    pt = weights_dir / f"{name}.pt"
    if pt.is_file():
        files["pt"] = _file_entry(pt)
    return {
        "schema": CARD_SCHEMA,
        "model": name,
        "title": spec.title,
        "architecture": {
            "torchvision_name": spec.torchvision_name,
            "parameters": meta.get("parameters"),
            "input": meta.get("input"),
            "head": spec.head,
            "adaptations_48x48": list(spec.adaptations),
            # choices beyond the spec (crop, output stride, ...); absent for the network as registered
            **({"variant": dict(meta["arch"])} if meta.get("arch") else {}),
        },
        "training": {
            "command": train_command(config),
            "config": config,
            "data": meta.get("data"),
            "epochs": len(history),
            "best_epoch": best.get("epoch"),
            "selected_on": meta.get("selected_on"),
            "selection": best,
            "stages": training_stages(meta),  # more than one when the run was started with --init
            "cost": training_cost(history, threads),
            "torch_version": meta.get("torch_version"),
            "from_scratch": not any(run["config"].get("pretrained") for run in training_chain(meta)),
        },
        "calibration": {  # weights/calibration.json's temperature for exactly this file (1.0: none fitted)
            "temperature": model.temperature,
            "bend": model.bend,
            "fitted_on": FIT_SPLIT,
            "command": "python -m fer_core calibrate",
        },
        "results": results,
        "files": files,
    }


def write_card(
    name: str, weights_dir: str | os.PathLike = "weights", results_dir: str | os.PathLike = "results"
) -> Path:
    card = build_card(name, weights_dir, results_dir)
    return write_json_atomic(Path(weights_dir) / f"{name}.card.json", card, indent=1)


def shipped_models(weights_dir: str | os.PathLike = "weights") -> list[str]:
    return [m for m in list_models() if (Path(weights_dir) / f"{m}.onnx").is_file()]


def load_model_cards(weights_dir: str | os.PathLike) -> tuple[dict[str, Any], list[str]]:
    """Every `*.card.json` in the weights folder, by file name, and the names of those that could
    not be read (`read_json_file` gave None), so the About page can say so. A file name that is not
    UTF-8 (Linux names are bytes) has its undecodable bytes shown as U+FFFD."""
    cards, unreadable = {}, []
    for f in sorted(Path(weights_dir).glob("*.card.json")):
        card = read_json_file(f)
        name = plain_json(f.name)
        if card is None:
            unreadable.append(name)
        else:
            cards[name] = card
    return cards, unreadable


def read_model_cards(weights_dir: str | os.PathLike) -> dict[str, Any]:
    """Every readable `*.card.json` in the weights folder, by file name (`load_model_cards`)."""
    return load_model_cards(weights_dir)[0]
