"""The README's results table is printed from stored runs, with their figures."""

from __future__ import annotations

from fer_core.report import results_table
from fer_core.results import load_runs


def test_results_table_has_one_row_per_model_with_the_run_figures(results_dir):
    runs = load_runs(results_dir)
    table = results_table(runs).splitlines()
    assert len(table) == 2 + len({(r["name"], r["tta"]) for r in runs})
    resnet = next(line for line in table if line.startswith("| ResNet18 |"))
    run = next(r for r in runs if r["name"] == "resnet18")
    assert f"{100 * run['metrics']['accuracy']:.2f} %" in resnet
    assert f"{run['metrics']['macro']['f1']:.3f}" in resnet
    assert table[-1].startswith("| Ensemble of EfficientNetV2-S + ResNet18 + VGG16-BN |")  # ensemble last


def test_write_replaces_only_the_table(results_dir, tmp_path):
    from fer_core.report import main

    readme = tmp_path / "README.md"
    old = "| model | TTA | PublicTest acc | PublicTest macro-F1 | PrivateTest acc | PrivateTest macro-F1 | best epoch |"
    readme.write_text(f"# Title\n\ntext before\n\n{old}\n|---|\n| Old | none | 1 % |\n\ntext after\n")
    assert main(["--results", str(results_dir), "--write", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("# Title\n\ntext before\n\n") and text.endswith("\n\ntext after\n")
    assert results_table(load_runs(results_dir)) in text and "| Old |" not in text
