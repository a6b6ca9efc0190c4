"""The README's results table, printed from the stored runs (so no figure in it is typed by hand).

python -m fer_core.report [--results results] [--write README.md]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .atomic import write_bytes_atomic
from .registry import get_spec
from .results import load_runs

_SPLIT = {"val": "PublicTest (val/)", "test": "PrivateTest (test/)"}
_ORDER = {"efficientnet_v2_s": 0, "resnet18": 1, "vgg16": 2, "ensemble": 3}


def _title(run: dict[str, Any]) -> str:
    if run["name"] == "ensemble":
        return "Ensemble of " + " + ".join(get_spec(m).title for m in run["models"])
    return get_spec(run["name"]).title


def results_table(runs: list[dict[str, Any]]) -> str:
    """Markdown: one row per model and TTA, PublicTest and PrivateTest side by side."""
    rows: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for run in runs:
        rows.setdefault((run["name"], run["tta"]), {})[run["split"]] = run
    lines = [
        "| model | TTA | PublicTest acc | PublicTest macro-F1 | PrivateTest acc | PrivateTest macro-F1 | best epoch |",
        "|---|---|---:|---:|---:|---:|---|",
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
        any_run = next(iter(by_split.values()))
        epochs = ", ".join(
            f"{sel.get('epoch')}/{len(any_run['history'].get(m, []))}" for m, sel in any_run["selection"].items()
        )
        lines.append(f"| {_title(any_run)} | {tta} | " + " | ".join(cells) + f" | {epochs} |")
    return "\n".join(lines)


def replace_table(text: str, table: str) -> str:
    """`text` (a README) with its results table (the block of lines from the table's header row to
    the next line that is not a table row) replaced by `table`."""
    lines = text.splitlines(keepends=True)
    header = table.splitlines()[0]
    start = next((i for i, line in enumerate(lines) if line.rstrip("\n") == header), None)
    if start is None:
        raise ValueError("no results table to replace (its header row was not found)")
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return "".join(lines[:start]) + table + "\n" + "".join(lines[end:])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fer_core.report", description=__doc__.split("\n")[0])
    parser.add_argument("--results", default="results")
    parser.add_argument("--write", metavar="README", help="replace the results table in this file instead of printing")
    args = parser.parse_args(argv)
    table = results_table(load_runs(args.results))
    if args.write:
        path = Path(args.write)
        write_bytes_atomic(path, replace_table(path.read_text(), table).encode())
        print(f"results table of {path} updated")
    else:
        print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
