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


def test_the_library_the_job_machinery_and_the_figures_never_import_streamlit():
    files = [*(REPO / "quantlib").rglob("*.py"), *(REPO / "ui" / "figures").rglob("*.py"),
             REPO / "ui" / "jobs.py", REPO / "ui" / "result_store.py", REPO / "ui" / "compute" / "reductions.py"]
    drawing = [str(p.relative_to(REPO)) for p in files
               if any(m == "streamlit" or m.startswith("streamlit.") for m in _imports(p, _module_name(p)))]
    assert not drawing, drawing


#: What a compute module may ask of Streamlit: its caches, and its configuration (the upload limit the browser
#: enforces, so the loader enforces the same). Anything else draws, or reads a session or a widget.
CACHE_DECORATORS = {"cache_data", "cache_resource", "get_option"}


def _streamlit_uses(path: Path) -> list[str]:
    """``st.<name>`` uses in ``path`` other than the cache decorators, as ``file:line st.name``."""
    tree = ast.parse(path.read_text())
    aliases = {a.asname or a.name for node in ast.walk(tree) if isinstance(node, ast.Import)
               for a in node.names if a.name == "streamlit"}
    from_imports = [f"{path.name}:{node.lineno} from streamlit import …" for node in ast.walk(tree)
                    if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("streamlit")]
    uses = [f"{path.relative_to(REPO)}:{node.lineno} st.{node.attr}" for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
            and node.attr not in CACHE_DECORATORS]
    return from_imports + uses


def test_compute_modules_only_cache_and_never_draw():
    """``ui/compute/`` reduces; pages, ``ui/widgets.py`` and ``ui/views/`` draw (``st.info``, progress bars,
    session state, callbacks) - so a computation can run in a test, a job or a notebook without a page."""
    found = [u for p in sorted((REPO / "ui" / "compute").rglob("*.py")) for u in _streamlit_uses(p)]
    assert not found, found


def test_the_drawing_rule_sees_a_drawing_call(tmp_path):
    sample = tmp_path / "x.py"
    sample.write_text("import streamlit as st\n@st.cache_data\ndef f():\n    st.info('hi')\n")
    (tmp_path / "ui").mkdir()
    moved = tmp_path / "ui" / "x.py"
    moved.write_text(sample.read_text())
    global REPO
    saved, REPO = REPO, tmp_path
    try:
        assert _streamlit_uses(moved) == ["ui/x.py:4 st.info"]
    finally:
        REPO = saved
