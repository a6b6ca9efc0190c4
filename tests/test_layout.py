"""The package's shape: no import cycle inside fer_core (lazy imports inside functions count too),
and no UI framework (streamlit, plotly, the app's ui/ package) in the core."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "fer_core"


def _imports(path: Path) -> set[str]:
    """The fer_core modules and the top-level packages a module imports, wherever in it."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                if node.module:
                    found.add("fer_core." + node.module.split(".")[0])
                else:  # from . import x
                    found.update(f"fer_core.{a.name}" for a in node.names)
            elif node.module:
                parts = node.module.split(".")
                found.add(".".join(parts[:2]) if parts[0] == "fer_core" else parts[0])
        elif isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                found.add(".".join(parts[:2]) if parts[0] == "fer_core" else parts[0])
    return found


def _graph() -> dict[str, set[str]]:
    modules = {f"fer_core.{p.stem}": p for p in PACKAGE.glob("*.py")}
    modules["fer_core"] = modules.pop("fer_core.__init__")
    return {m: {i for i in _imports(p) if i in modules and i != m} for m, p in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return path[path.index(n) :] + [n]
            if n not in state and (found := visit(n)):
                return found
        state[m] = 2
        path.pop()
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_no_import_cycle_inside_fer_core():
    graph = _graph()
    assert len(graph) > 20 and "fer_core.train" in graph["fer_core.bench_train"]  # the walk sees imports
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_the_core_imports_no_ui_framework():
    """Streamlit and Plotly belong to the app (app_state.py, pages/, ui/), never to fer_core."""
    for framework in ("streamlit", "plotly"):
        users = {p.stem for p in PACKAGE.glob("*.py") if framework in _imports(p)}
        assert not users, (framework, users)
    ui_users = {p.stem for p in PACKAGE.glob("*.py") if "ui" in _imports(p)}
    assert not ui_users, ui_users
    assert "plotly" in set().union(*(_imports(p) for p in (PACKAGE.parent / "ui").glob("*.py")))  # the walk sees it
