"""Run every benchmark script in bench/ in its own process; print and save their JSON.

Each script prints one JSON object; its "ok" key (when present) says whether the targets
of its issue were met. Results go to bench/results/latest.json, merged with the results
already there, so `python -m bench NAME` updates that one entry. A script's stderr (progress
of the long ones, such as pg_scale) is shown as it runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import deque
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
        proc = subprocess.Popen([sys.executable, str(script)], cwd=HERE.parent,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        tail: deque[str] = deque(maxlen=40)

        def echo(stream=proc.stderr, tail=tail) -> None:  # type: ignore[no-untyped-def]
            for line in stream:
                tail.append(line)
                print(line, end="", file=sys.stderr, flush=True)

        shown = threading.Thread(target=echo, daemon=True)
        shown.start()
        stdout = proc.stdout.read()  # type: ignore[union-attr]
        proc.wait()
        shown.join()
        lines = [ln for ln in stdout.splitlines() if ln.strip().startswith("{")]
        try:
            doc = json.loads(lines[-1]) if lines else {"error": "".join(tail)[-2000:]}
        except json.JSONDecodeError:
            doc = {"error": "no JSON output", "stdout": stdout[-2000:]}
        doc["wall_seconds"] = round(time.perf_counter() - started, 2)
        if proc.returncode != 0 or doc.get("ok") is False or "error" in doc:
            failed = True
        results[script.stem] = doc
        print(json.dumps({script.stem: doc}), flush=True)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    latest = out / "latest.json"
    try:
        merged = json.loads(latest.read_text()) if latest.exists() else {}
    except json.JSONDecodeError:
        merged = {}
    merged.update(results)
    latest.write_text(json.dumps(dict(sorted(merged.items())), indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
