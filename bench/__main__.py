"""Run every benchmark script in bench/ in its own process; print and save their JSON.

Each script prints one JSON object; its "ok" key (when present) says whether the targets
of its issue were met. Results go to bench/results/latest.json.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    wanted = set(argv)
    scripts = sorted(p for p in HERE.glob("*.py") if not p.name.startswith("_"))
    results = {}
    failed = False
    for script in scripts:
        if wanted and script.stem not in wanted:
            continue
        print(f"== {script.stem}", file=sys.stderr, flush=True)
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, str(script)], cwd=HERE.parent,
                              capture_output=True, text=True)
        lines = [ln for ln in proc.stdout.splitlines() if ln.strip().startswith("{")]
        try:
            doc = json.loads(lines[-1]) if lines else {"error": proc.stderr[-2000:]}
        except json.JSONDecodeError:
            doc = {"error": "no JSON output", "stdout": proc.stdout[-2000:]}
        doc["wall_seconds"] = round(time.perf_counter() - started, 2)
        if proc.returncode != 0 or doc.get("ok") is False or "error" in doc:
            failed = True
        results[script.stem] = doc
        print(json.dumps({script.stem: doc}), flush=True)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
