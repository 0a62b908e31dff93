"""core/ never imports streamlit (design.md: dependency direction dashboard -> core)."""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "core"


def _streamlit_imports(path: Path, root: Path = CORE.parent) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    hits = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(
                node.func, "attr", "")) in ("import_module", "__import__") and node.args and \
                isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            names = [node.args[0].value]
        hits += [f"{path.relative_to(root)}:{node.lineno} {n}" for n in names
                 if n == "streamlit" or n.startswith("streamlit.")]
    return hits


def test_core_never_imports_streamlit():
    files = sorted(CORE.rglob("*.py"))
    assert files
    hits = [h for f in files for h in _streamlit_imports(f)]
    assert not hits, hits


def test_the_check_catches_a_streamlit_import(tmp_path):
    bad = tmp_path / "probe.py"
    bad.write_text("import os\nfrom streamlit import session_state\nimport streamlit.components"
                   "\n", encoding="utf-8")
    assert _streamlit_imports(bad, tmp_path) == ["probe.py:2 streamlit",
                                                 "probe.py:3 streamlit.components"]
