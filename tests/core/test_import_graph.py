"""core/ has no import cycles, counting the imports inside functions (issue 15).

Every `import` and `from ... import` in a module counts, wherever it stands, except those
under `if TYPE_CHECKING:` (never run). Importing `a.b.c` also runs the packages `a.b` and
`a`, so those count too, unless they are the importer's own packages (already running).
"""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "core"


def _modules(root: Path) -> dict[str, Path]:
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the nodes under `if TYPE_CHECKING:`."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(
                node.test, "attr", None)) == "TYPE_CHECKING":
            for child in node.body:
                skipped |= {id(n) for n in ast.walk(child)}
    return skipped


def _imported(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of `modules` that importing module `name` (at `path`) runs."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    skipped = _type_checking_nodes(tree)
    targets: list[str] = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            targets += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*up, *([node.module] if node.module else [])])
            # `from pkg import mod` imports the module pkg.mod; `from mod import name`, mod
            targets += [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                        for a in node.names]
    runs = set()
    for target in targets:
        parts = target.split(".")
        for k in range(1, len(parts) + 1):
            prefix = ".".join(parts[:k])
            if prefix in modules and prefix != name and not name.startswith(prefix + "."):
                runs.add(prefix)
    return runs


def import_cycles(root: Path) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    modules = _modules(root)
    graph = {name: sorted(_imported(name, path, modules)) for name, path in modules.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return sorted(groups)


def test_core_has_no_import_cycles():
    assert len(_modules(CORE)) > 50
    assert import_cycles(CORE) == []


def test_the_check_finds_a_cycle_through_a_function_and_a_package(tmp_path):
    pkg = tmp_path / "core"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from core.sub.b import g\n    return g\n")
    (pkg / "sub" / "__init__.py").write_text("from core.sub.c import h\n")
    (pkg / "sub" / "b.py").write_text("g = 1\n")
    (pkg / "sub" / "c.py").write_text("from core import a\nh = 2\n")
    (pkg / "typed.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                  "    from core.a import f\n")
    # a -> core.sub (the package runs first) -> core.sub.c -> a; typed.py's import never runs
    assert import_cycles(pkg) == [["core.a", "core.sub", "core.sub.c"]]


def test_no_module_is_named_common_shared_daily_or_asof():
    """A module is named for what it holds (issue 15), not for who uses it or when."""
    vague = {"common", "shared", "daily", "asof", "utils", "helpers", "misc"}
    named = [name for name in _modules(CORE) if name.rpartition(".")[2] in vague]
    assert named == []


def test_the_rules_read_only_the_vocabulary():
    """The rules are functions of a course's frames and their thresholds: they never reach
    the store, the configuration or the site's file, the monitor, the pages' views or the
    interfaces (those import the rules, not the other way round)."""
    modules = _modules(CORE)
    allowed = ("core.rules", "core.vocabulary")
    reached = {(name, target) for name, path in modules.items() if name.startswith("core.rules")
               for target in _imported(name, path, modules)
               if not any(target == a or target.startswith(a + ".") for a in allowed)
               and target != "core"}
    assert reached == set()
