"""Benchmark: replaying every rule vs reading the same rows from the database.

    .venv/bin/python bench/replay_vs_read.py [--patients 1000] [--days 100] [--rounds 3]
                                             [--keep]

Builds a fresh SQLite file with N synthetic patients x D days (the courses of
bench/replay_rules.py: daily labs of the monitored analytes, vitals, ICE, CRS treatments),
written with bulk inserts, then measures in the same run, each in a fresh interpreter so each
has its own peak memory:
  (a) read: `load_courses` of every patient at once (all six frames into pandas), and
  (b) replay: `core.monitoring.backtest.backtest` over the database, as the backtesting page
      runs it: the courses read in batches, every rule as of the end of every day, the would-be
      alerts counted. The replay's time includes its own reading.
They alternate, read first and last (read, replay, read, replay, ..., read: --rounds
replays). Each replay is set against the mean of the two reads around it, as this kind of
VM's CPU speed drifts within minutes and a drift then weighs on both sides alike; the ratio
is the median of those per-round ratios (all of them, and every time, are printed).
Prints one JSON line {read_seconds, replay_seconds, ratio, round_ratios, patient_days_per_s,
peak_mb, ok}; targets: ratio (replay / read) <= 3 and replay peak <= 1 GB. A cohort of 200+
patients is replayed by one worker process per core
(core.monitoring.backtest.replay_workers; "workers" in the output); its peak counts the
main process plus the largest worker once per worker.
The data are synthetic.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.replay_rules import synthetic_course  # noqa: E402
from core.rules.catalog import all_specs  # noqa: E402
from core.store.db import init_db, make_engine, session_scope  # noqa: E402
from core.store.loading import load_courses  # noqa: E402
from core.vocabulary.course import Course  # noqa: E402
from core.vocabulary.units import ANALYTES  # noqa: E402

RATIO_TARGET = 3.0
PEAK_TARGET_MB = 1024.0
STAMP = "%Y-%m-%d %H:%M:%S.%f"  # how the ORM stores UTC times in SQLite (naive UTC text)
PROVENANCE = ("source", "entered_by", "entered_at", "status")


def _at(infusion: date, day: float) -> str:
    start = datetime(infusion.year, infusion.month, infusion.day, tzinfo=UTC)
    return (start + timedelta(days=float(day))).strftime(STAMP)


def generate(n: int, days: int, seed: int = 1) -> Iterable[Course]:
    """The courses of `build_courses`, one at a time (so they never all sit in memory)."""
    rng = random.Random(seed)
    return (synthetic_course(i, days, rng) for i in range(n))


def write_db(path: Path, courses: Iterable[Course], infusion: date) -> int:
    """Bulk-insert the courses into a migrated SQLite file; returns the clinical row count."""
    engine = make_engine(f"sqlite:///{path}")
    init_db(engine)
    engine.dispose()
    now = datetime.now(UTC).strftime(STAMP)
    prov = ("bench", "bench", now, "final")
    con = sqlite3.connect(path)
    con.execute("PRAGMA synchronous=OFF")
    rows = 0
    with con:
        for pk, c in enumerate(courses, 1):
            con.execute(
                "INSERT INTO patient (id, patient_id, ward, product, infusion_date, birth_year, "
                "status, is_synthetic, source, entered_by, entered_at) "
                "VALUES (?, ?, 'main', 'axi-cel', ?, ?, 'active', 1, 'bench', 'bench', ?)",
                (pk, c.patient.patient_id, infusion.isoformat(), c.patient.birth_year, now))
            labs = [(pk, a, _at(infusion, d), float(v), ANALYTES[a].unit, f"{v:g}",
                     ANALYTES[a].unit, ANALYTES[a].ref_low, ANALYTES[a].ref_high, *prov)
                    for a, d, v in zip(c.labs["analyte"], c.labs["day"], c.labs["value"],
                                       strict=True)]
            con.executemany(
                "INSERT INTO labresult (patient_pk, analyte, collected_at, value, unit, "
                "original_value, original_unit, ref_low, ref_high, confirmed_unusual, "
                f"{', '.join(PROVENANCE)}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)",
                labs)
            o = c.observations
            obs = [(pk, k, _at(infusion, d), None if isinstance(v, str) else v,
                    v if isinstance(v, str) else None, *prov)
                   for k, d, v in zip(o["kind"], o["day"],
                                      o["value_text"].where(o["value_text"].notna(),
                                                            o["value_num"]), strict=True)]
            con.executemany(
                "INSERT INTO observation (patient_pk, kind, observed_at, value_num, value_text, "
                f"{', '.join(PROVENANCE)}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", obs)
            t = c.treatments
            trs = [(pk, drug, _at(infusion, d), *prov) for drug, d in
                   zip(t["drug"], t["day"], strict=True)]
            con.executemany(
                "INSERT INTO treatment (patient_pk, drug, given_at, "
                f"{', '.join(PROVENANCE)}) VALUES (?, ?, ?, ?, ?, ?, ?)", trs)
            rows += len(labs) + len(obs) + len(trs)
    con.execute("ANALYZE")
    con.close()
    return rows


def _measure(kind: str, db: Path) -> dict:
    """Run one measurement in a fresh interpreter (its own peak memory): read or replay."""
    out = subprocess.run([sys.executable, __file__, "--measure", kind, "--db", str(db)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure_read(db: Path) -> dict:
    """(a) every row of every patient read into pandas, all at once (`load_courses`)."""
    engine = make_engine(f"sqlite:///{db}")
    with session_scope(engine) as s:  # warm the connection, schema and imports
        load_courses(s, "UTC", patient_ids=["S00000"], active_only=False)
    t = time.perf_counter()
    with session_scope(engine) as s:
        courses = load_courses(s, "UTC", active_only=False)
    seconds = time.perf_counter() - t
    engine.dispose()
    return {"seconds": seconds, "patients": len(courses), "peak_mb": _peak_mb()}


def measure_replay(db: Path) -> dict:
    """(b) the cohort replay the backtesting page runs: read in batches, every rule as of
    every day of every course, would-be alerts counted (`core.monitoring.backtest.backtest`)."""
    from core.config import Settings
    from core.monitoring.backtest import backtest, replay_workers

    url = f"sqlite:///{db}"
    engine = make_engine(url)
    with session_scope(engine) as s:  # the same warm-up as the read
        load_courses(s, "UTC", patient_ids=["S00000"], active_only=False)
    t = time.perf_counter()
    result = backtest(engine, Settings(database_url=url, ward_tz="UTC"))
    seconds = time.perf_counter() - t
    engine.dispose()
    workers = replay_workers(result.patients)
    # worker processes (if any) run at the same time: count the largest one once per worker
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    peak = _peak_mb() + (workers * children if workers > 1 else 0.0)
    return {"seconds": seconds, "patients": result.patients,
            "patient_days": result.patient_days, "alerts": result.alerts,
            "workers": workers, "peak_mb": peak}


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--patients", type=int, default=1000)
    p.add_argument("--days", type=int, default=100)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3,
                   help="replays, each between two reads (default 3)")
    p.add_argument("--keep", action="store_true", help="keep the database file")
    p.add_argument("--measure", choices=["read", "replay"], help=argparse.SUPPRESS)
    p.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.measure:  # the child process of _measure
        fn = measure_read if args.measure == "read" else measure_replay
        print(json.dumps(fn(args.db)))
        return

    t0 = time.perf_counter()
    infusion = date.today() - timedelta(days=args.days + 5)
    tmp = Path(tempfile.mkdtemp(prefix="cartwatch-bench-"))
    db = tmp / "replay.db"
    rows = write_db(db, generate(args.patients, args.days, args.seed), infusion)
    build_s = time.perf_counter() - t0
    # Rounds of read, replay, read, ...: each replay's ratio is against the mean of the reads
    # either side of it (this VM's CPU speed drifts by up to ~25 % within minutes, and a drift
    # then weighs on both sides alike), and the ratio is the median of the rounds' ratios (a
    # round disturbed by the machine does not decide alone).
    reads = [_measure("read", db)]
    replays = []
    for _ in range(args.rounds):
        replays.append(_measure("replay", db))
        reads.append(_measure("read", db))
    rounds = [p["seconds"] / ((a["seconds"] + b["seconds"]) / 2)
              for p, a, b in zip(replays, reads[:-1], reads[1:], strict=True)]
    replay = sorted(replays, key=lambda p: p["seconds"])[len(replays) // 2]
    replay["peak_mb"] = max(p["peak_mb"] for p in replays)
    read = {"seconds": statistics.median(r["seconds"] for r in reads),
            "peak_mb": max(r["peak_mb"] for r in reads)}
    if not args.keep:
        for extra in tmp.iterdir():
            extra.unlink()
        tmp.rmdir()

    ratio = statistics.median(rounds)
    print(json.dumps({
        "patients": replay["patients"], "patient_days": replay["patient_days"], "rows": rows,
        "rules": len(all_specs()), "alerts": replay["alerts"], "workers": replay["workers"],
        "read_seconds": round(read["seconds"], 3),
        "read_runs_seconds": [round(r["seconds"], 5) for r in reads],
        "replay_seconds": round(replay["seconds"], 3),
        "replay_runs_seconds": [round(p["seconds"], 5) for p in replays],
        "ratio": round(ratio, 2), "ratio_target": RATIO_TARGET,
        "round_ratios": [round(r, 2) for r in rounds],
        "patient_days_per_s": round(replay["patient_days"] / replay["seconds"], 1),
        "peak_mb": round(replay["peak_mb"], 1), "peak_target_mb": PEAK_TARGET_MB,
        "read_peak_mb": round(read["peak_mb"], 1),
        "build_seconds": round(build_s, 2), "db": str(db) if args.keep else None,
        "ok": ratio <= RATIO_TARGET and replay["peak_mb"] <= PEAK_TARGET_MB,
    }))


if __name__ == "__main__":
    main()
