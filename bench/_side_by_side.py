"""Run one benchmark of bench/ side by side: a base git revision against the working tree.

    .venv/bin/python bench/_side_by_side.py evaluate_ward --base 5835b85 [--rounds 2] [-- ARGS]

The base is checked out into a temporary git worktree; the script then runs alternately from
the base's tree (its copy of the script and its code) and from the working tree, each in a
fresh interpreter, --rounds times each (base, new, base, new, ...), as this kind of VM's
speed drifts within minutes. (Named with a leading underscore: `python -m bench` runs every
other script of bench/ without arguments.)
Prints each run's JSON line and one summary line {script, base, base_runs, new_runs,
<metric>_ratio (base / new, the speed-up) for every numeric metric in common}.
The worktree is removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(tree: Path, script: str, args: list[str]) -> dict:
    """One run of bench/<script>.py from `tree` (its own code), its last JSON line."""
    proc = subprocess.run([sys.executable, str(tree / "bench" / f"{script}.py"), *args],
                          cwd=tree, capture_output=True, text=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip().startswith("{")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{script} failed in {tree} (exit {proc.returncode}):\n"
                         f"{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("script", help="a bench/ script name, e.g. evaluate_ward")
    p.add_argument("--base", required=True, help="git revision to compare against")
    p.add_argument("--rounds", type=int, default=2)
    argv = sys.argv[1:] if argv is None else argv
    cut = argv.index("--") if "--" in argv else len(argv)
    a, args = p.parse_args(argv[:cut]), argv[cut + 1:]  # after "--": the script's own
    with tempfile.TemporaryDirectory(prefix="cartwatch-base-") as tmp:
        base = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q",
                        str(base), a.base], check=True)
        try:
            (base / ".venv").symlink_to(ROOT / ".venv")
            runs: dict[str, list[dict]] = {"base": [], "new": []}
            for i in range(a.rounds):
                for side, tree in (("base", base), ("new", ROOT)):
                    doc = _run(tree, a.script, args)
                    runs[side].append(doc)
                    print(json.dumps({"round": i + 1, "side": side, **doc}), flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                            str(base)], check=False)
    summary: dict[str, object] = {"script": a.script, "base": a.base, "rounds": a.rounds}
    for key, value in runs["new"][0].items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        olds = [r[key] for r in runs["base"] if isinstance(r.get(key), int | float)]
        news = [r[key] for r in runs["new"]]
        summary[f"{key}_base"] = round(statistics.median(olds), 4) if olds else None
        summary[f"{key}_new"] = round(statistics.median(news), 4)
        if olds and statistics.median(news):
            summary[f"{key}_ratio"] = round(statistics.median(olds) / statistics.median(news),
                                            2)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
