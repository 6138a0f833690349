"""The README's notebook example is real code: it runs, and its two set-up commands are the documented ones."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"## {title}")
    nxt = text.find("\n## ", start + 3)
    return text[start : nxt if nxt != -1 else len(text)]


def test_readme_notebook_example_runs(capsys):
    code = re.search(r"```python\n(.*?)```", _section("Using quantlib in a notebook"), re.S).group(1)
    exec(compile(code, "README notebook example", "exec"), {})
    out = capsys.readouterr().out
    assert "SQNR at 4 bits per-channel" in out and "top-1 agreement" in out


def test_readme_has_the_two_setup_commands():
    setup = _section("Set up")
    assert "python -m pip install -r requirements.txt && streamlit run app.py" in setup
    assert "python -m pip install -r requirements-dev.txt && python -m pytest" in setup


def test_ci_runs_the_readme_test_command():
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert "python -m pip install -r requirements-dev.txt && python -m pytest" in ci
