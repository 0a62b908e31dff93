"""Benchmark: `evaluate` for one ward, 60 active patients with ~30 days of data each.

    .venv/bin/python bench/evaluate_ward.py [--patients 60] [--days 30] [--runs 3]

Builds a fresh SQLite file (the synthetic courses of bench/replay_rules.py, bulk inserted as
in bench/replay_vs_read.py), runs `run_evaluate` once cold (it opens the alerts), then times
`--runs` warm runs (same process, alerts already in line: the scheduled job's steady state).
Prints one JSON line {cold_seconds, warm_seconds (best), warm_median, peak_mb, ok};
target: warm <= 0.2 s (issue 15). The data are synthetic, not clinical.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.replay_rules import build_courses  # noqa: E402
from bench.replay_vs_read import write_db  # noqa: E402
from core.config import Settings  # noqa: E402
from core.monitoring.evaluation import run_evaluate  # noqa: E402
from core.store.db import make_engine  # noqa: E402

WARM_TARGET_S = 0.2


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--patients", type=int, default=60)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="cartwatch-bench-"))
    db = tmp / "ward.db"
    # infused `days` days ago: each patient has ~`days` days of data up to today
    rows = write_db(db, build_courses(args.patients, args.days, seed=2),
                    date.today() - timedelta(days=args.days))
    url = f"sqlite:///{db}"
    engine, settings = make_engine(url), Settings(database_url=url)

    t0 = time.perf_counter()
    doc = run_evaluate(engine, settings)
    cold = time.perf_counter() - t0
    warm = []
    for _ in range(args.runs):
        t = time.perf_counter()
        run_evaluate(engine, settings)
        warm.append(time.perf_counter() - t)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    engine.dispose()
    for f in tmp.iterdir():
        f.unlink()
    tmp.rmdir()

    best = min(warm)
    print(json.dumps({
        "patients": len(doc["patients"]), "days": args.days, "rows": rows,
        "findings": sum(len(p["findings"]) for p in doc["patients"]),
        "cold_seconds": round(cold, 3), "warm_seconds": round(best, 3),
        "warm_median": round(statistics.median(warm), 3), "warm_target": WARM_TARGET_S,
        "peak_mb": round(peak_mb, 1), "ok": best <= WARM_TARGET_S,
    }))


if __name__ == "__main__":
    main()
