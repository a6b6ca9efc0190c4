"""The README's results table is printed from stored runs, with their figures."""

from __future__ import annotations

from conftest import REPO

from fer_core.report import load_references, readme_tables, references_table, results_table
from fer_core.results import load_runs


def test_results_table_has_one_row_per_model_with_the_run_figures(results_dir):
    runs = load_runs(results_dir)
    table = results_table(runs).splitlines()
    assert len(table) == 2 + len({(r["name"], r["tta"]) for r in runs})
    resnet = next(line for line in table if line.startswith("| ResNet18 |"))
    run = next(r for r in runs if r["name"] == "resnet18")
    assert f"{100 * run['metrics']['accuracy']:.2f} %" in resnet
    assert f"{run['metrics']['macro']['f1']:.3f}" in resnet
    assert table[-1].startswith("| Ensemble (EfficientNetV2-S + ResNet18 + VGG16-BN) |")  # ensemble last


def test_write_replaces_only_the_table(results_dir, tmp_path):
    from fer_core.cli import main

    readme = tmp_path / "README.md"
    old = results_table([]).splitlines()[0]
    old_refs = references_table([]).splitlines()[0]
    readme.write_text(
        f"# Title\n\ntext before\n\n{old}\n|---|\n| Old | none | 1 % |\n\n"
        f"between\n\n{old_refs}\n| Old ref |\n\ntext after\n"
    )
    assert main(["report", "--results", str(results_dir), "--write", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("# Title\n\ntext before\n\n") and text.endswith("\n\ntext after\n")
    assert "\n\nbetween\n\n" in text
    assert results_table(load_runs(results_dir)) in text and "| Old |" not in text
    assert references_table(load_references(results_dir)) in text and "| Old ref |" not in text


def test_the_readme_tables_are_the_reports():
    """The README's results and references tables are printed from results/, not typed: after a
    change to results/, `python -m fer_core report --write README.md` brings them back in line."""
    readme = (REPO / "README.md").read_text()
    tables = readme_tables(REPO / "results")
    assert len(tables) == 2
    for table in tables:
        assert table in readme


def test_references_are_one_file_of_rows(tmp_path):
    refs = load_references(REPO / "results")
    assert refs and all(r["source"] and r["accuracy %"] for r in refs)
    assert references_table(refs).count("\n") == len(refs) + 1
    (tmp_path / "references.json").write_text('{"schema": "something else", "references": [{"source": "x"}]}')
    assert load_references(tmp_path) == [] and load_references(tmp_path / "missing") == []
