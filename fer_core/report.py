"""The README's results and references tables, printed from results/ (so no figure in them is typed by hand).

python -m fer_core report [--results results] [--write README.md]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .atomic import write_bytes_atomic
from .jsonfile import read_json_file
from .results import load_runs, run_title

_SPLIT = {"val": "PublicTest (val/)", "test": "PrivateTest (test/)"}
_ORDER = {"efficientnet_v2_s": 0, "resnet18": 1, "vgg16": 2, "ensemble": 3}


REFERENCES_FILE = "references.json"  # in the results folder: the one copy of the literature figures
REFERENCES_SCHEMA = "fer_core.references/1"
REFERENCE_FIELDS = ("source", "model", "test set", "accuracy %", "macro-F1", "notes")


def load_references(results: str | Path = "results") -> list[dict[str, Any]]:
    """The published (or elsewhere measured) figures in `results/references.json`, each a dict of
    REFERENCE_FIELDS; [] if the file is missing or not a references file."""
    doc = read_json_file(Path(results) / REFERENCES_FILE)
    if not isinstance(doc, dict) or doc.get("schema") != REFERENCES_SCHEMA:
        return []
    rows = doc.get("references")
    if not isinstance(rows, list):
        return []
    return [{k: row.get(k) for k in REFERENCE_FIELDS} for row in rows if isinstance(row, dict) and row.get("source")]


def references_table(refs: Sequence[dict[str, Any]]) -> str:
    """Markdown: the literature figures, as the README shows them."""
    lines = ["| reference | model | test set | accuracy % | how it was obtained |", "|---|---|---|---:|---|"]
    for ref in refs:
        f1 = ref.get("macro-F1")
        acc = str(ref.get("accuracy %")) + (f" (macro-F1 {f1})" if f1 is not None else "")
        cells = [ref["source"], ref.get("model") or "", ref.get("test set") or "", acc, ref.get("notes") or ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def results_table(runs: list[dict[str, Any]]) -> str:
    """Markdown: one row per model and TTA, PublicTest and PrivateTest side by side, and the
    PrivateTest expected calibration error of the served (calibrated) probabilities."""
    rows: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for run in runs:
        rows.setdefault((run["name"], run["tta"]), {})[run["split"]] = run
    lines = [
        "| model | TTA | PublicTest acc | PublicTest macro-F1 | PrivateTest acc | PrivateTest macro-F1 "
        "| PrivateTest ECE | best epoch |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for (_name, tta), by_split in sorted(rows.items(), key=lambda kv: (_ORDER.get(kv[0][0], 9), kv[0][1] != "none")):
        cells = []
        for split in ("val", "test"):
            run = by_split.get(split)
            if run is None:
                cells += ["", ""]
            else:
                m = run["metrics"]
                cells += [f"{100 * m['accuracy']:.2f} %", f"{m['macro']['f1']:.3f}"]
        test_cal = (by_split.get("test") or {}).get("calibration")
        cells.append(f"{test_cal['calibrated']['ece']:.3f}" if test_cal else "")
        any_run = next(iter(by_split.values()))
        epochs = ", ".join(
            f"{sel.get('epoch')}/{len(any_run['history'].get(m, []))}" for m, sel in any_run["selection"].items()
        )
        lines.append(f"| {run_title(any_run)} | {tta} | " + " | ".join(cells) + f" | {epochs} |")
    return "\n".join(lines)


def replace_table(text: str, table: str) -> str:
    """`text` (a README) with the table that has `table`'s header row (the block of lines from the table's header row to
    the next line that is not a table row) replaced by `table`."""
    lines = text.splitlines(keepends=True)
    header = table.splitlines()[0]
    start = next((i for i, line in enumerate(lines) if line.rstrip("\n") == header), None)
    if start is None:
        raise ValueError(f"no table to replace: its header row {header!r} was not found")
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return "".join(lines[:start]) + table + "\n" + "".join(lines[end:])


def readme_tables(results: str | Path = "results") -> list[str]:
    """The README's tables, from the runs and references in `results`: results first, then the
    references (when the folder has a references file)."""
    refs = load_references(results)
    return [results_table(load_runs(results))] + ([references_table(refs)] if refs else [])


def write_tables(readme: str | Path, tables: Sequence[str]) -> Path:
    """Replace each of `tables` in the file `readme` (found by its header row), atomically."""
    path = Path(readme)
    text = path.read_text()
    for table in tables:
        text = replace_table(text, table)
    write_bytes_atomic(path, text.encode())
    return path
