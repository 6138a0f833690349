"""The house rules of the imports, read from the source (AST), function-level imports included."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("ui", "quantlib", "sample_models", "serving", "deploy")


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, name: str) -> set[str]:
    """Modules of this repo that ``path`` imports, anywhere in it (inside functions too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    return found


def _graph() -> dict[str, set[str]]:
    paths = [p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")]
    names = {_module_name(p): p for p in paths}
    return {n: {m for m in _imports(p, n) if m in names and m != n} for n, p in names.items()}


def test_no_module_imports_itself_through_others():
    graph = _graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append([*path[path.index(dep):], dep])
            elif dep not in state:
                visit(dep, [*path, dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    # A package importing its own submodules (quantlib/__init__ -> quantlib.spec -> quantlib.formats …) is how
    # packages work; a cycle between two plain modules is not.
    real = [c for c in cycles if not any(graph.get(m) is not None and REPO.joinpath(*m.split("."), "__init__.py").exists()
                                         for m in c)]
    assert not real, "import cycles: " + "; ".join(" -> ".join(c) for c in real)


def test_the_library_and_the_job_machinery_never_import_streamlit():
    graph_files = [*(REPO / "quantlib").rglob("*.py"), REPO / "ui" / "jobs.py", REPO / "ui" / "result_store.py",
                   REPO / "ui" / "reductions.py"]
    drawing = [str(p.relative_to(REPO)) for p in graph_files
               if any(m == "streamlit" or m.startswith("streamlit.") for m in _imports(p, _module_name(p)))]
    assert not drawing, drawing
