"""The package's shape: wings with one job each, a short top level, and no import circle among modules."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "benchmark"
WINGS = {"execution", "data", "training", "attacking", "gan", "leaderboard", "stages", "reader_study"}
ENTRY_FOLDERS = {"benchmark.models": "models", "benchmark.attacks": "attacks", "benchmark.defenses": "defenses",
                 "benchmark.datasets": "datasets"}


def _modules() -> dict[str, Path]:
    """Every benchmark.* module, by dotted name, with the entry folders installed under the engine's namespace."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    for dotted, folder in ENTRY_FOLDERS.items():
        for path in (ROOT / folder).glob("*.py"):
            out[dotted if path.stem == "__init__" else f"{dotted}.{path.stem}"] = path
    return out


def _top_level_imports(path: Path, name: str, known: set[str]) -> set[str]:
    """The benchmark modules a module imports when it is imported (not inside functions or TYPE_CHECKING)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, (ast.If, ast.Try)):
                visit(node.body + node.orelse + getattr(node, "finalbody", []))
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                found.add(base)
                found.update(f"{base}.{a.name}" for a in node.names)

    visit(ast.parse(path.read_text()).body)
    return {m for m in found if m in known and m != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _top_level_imports(path, name, set(modules)) for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, as the modules along it, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for other in sorted(graph[node]):
            if state.get(other) == 1:
                return stack[stack.index(other):] + [other]
            if other not in state and (found := walk(other)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := walk(node)):
            return found
    return None


def test_no_import_circle_among_benchmark_modules() -> None:
    assert _cycle(_graph()) is None, " -> ".join(_cycle(_graph()) or [])


def test_the_circle_finder_finds_one() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_stage_imports_another_stage() -> None:
    graph = _graph()
    for name, uses in graph.items():
        if name.startswith("benchmark.stages."):
            others = {u for u in uses if u.startswith("benchmark.stages.") and u != "benchmark.stages.context"}
            assert not others, f"{name} imports {sorted(others)}: read other stages' artifacts through " \
                               "benchmark.execution.artifacts"


def test_the_top_level_is_short_and_the_wings_exist() -> None:
    top = sorted(p.stem for p in PACKAGE.glob("*.py"))
    wings = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert wings == WINGS, f"packages under benchmark/: {sorted(wings)}"
    assert len(top) <= 20, f"{len(top)} modules at benchmark/'s top level: {top}"
    for wing in WINGS:
        assert len(list((PACKAGE / wing).glob("*.py"))) <= 15, f"benchmark/{wing} has grown past 15 modules"
