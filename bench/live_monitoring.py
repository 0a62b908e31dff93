"""Benchmark (issue 13): the live monitor's costs, measured side by side in one run.

    .venv/bin/python bench/live_monitoring.py [--patients 60] [--days 30] [--entries 30]
                                              [--import-rows 100000]

On a fresh SQLite file holding a synthetic ward (bench/replay_rules.py courses):
- entry_to_alert: a nurse's hand entry of a critical platelet count for a random patient,
  timed from the call to its return; the alert row is written in the same transaction, so
  the alert exists when the entry's commit returns (checked each time). Target p95 <= 0.5 s.
- monitor_cycle: CPU seconds (process_time) of one warm `run_cycle` for the ward (evaluate
  every active patient, deliver nothing, heartbeat). Target <= 1 s CPU (median of --cycles).
- import_follow: a 100,000-row lab import for 60 patients; the evaluation it triggers is
  timed from core.store.unit_of_work's debug log line, and set against the rest of the import in
  the same call. Target: the evaluation adds <= 15 % to the import.
Prints one JSON line. The data are synthetic, not clinical.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import random
import re
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import select  # noqa: E402

from bench.import_100k import TYPICAL  # noqa: E402
from bench.replay_rules import build_courses  # noqa: E402
from bench.replay_vs_read import write_db  # noqa: E402
from core.capture.entry import enter_day  # noqa: E402
from core.capture.importing import import_file  # noqa: E402
from core.config import Settings  # noqa: E402
from core.monitoring.evaluation import run_evaluate  # noqa: E402
from core.monitoring.monitor import run_cycle  # noqa: E402
from core.store.db import init_db, make_engine, session_scope  # noqa: E402
from core.store.models import Alert, Patient  # noqa: E402

P95_TARGET_S = 0.5
CYCLE_CPU_TARGET_S = 1.0
FOLLOW_SHARE_TARGET = 0.15


class _FollowTimes(logging.Handler):
    """Collects the seconds of core.store.unit_of_work's "evaluated ... after a write" lines."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seconds: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        m = re.search(r"seconds=([0-9.]+)", record.getMessage())
        if m:
            self.seconds.append(float(m.group(1)))


def entry_latency(engine, n: int, rng: random.Random) -> list[float]:  # noqa: ANN001
    with session_scope(engine) as s:
        ids = list(s.scalars(select(Patient.patient_id)))
    times = []
    for i in range(n):
        pid = rng.choice(ids)
        when = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=5 + i)
        t = time.perf_counter()
        res = enter_day(engine, pid, when, labs=[("platelets", "8", "10^9/L")],
                        user="bench.nurse")
        times.append(time.perf_counter() - t)
        assert res.ok, [str(e) for e in res.errors]
        with session_scope(engine) as s:
            alert = s.scalar(select(Alert).join(Patient, Patient.id == Alert.patient_pk).where(
                Patient.patient_id == pid, Alert.rule_id == "ctcae_platelets",
                Alert.grade == 4))
        assert alert is not None, f"no platelet alert for {pid} after the entry"
    return times


def import_files(patients: int, rows: int, seed: int = 3) -> tuple[bytes, bytes]:
    rng = random.Random(seed)
    days = -(-rows // (patients * len(TYPICAL)))
    infusion = date.today() - timedelta(days=days)
    pts = "patient_id,infusion_date,product\n" + "".join(
        f"I{i:03d},{infusion.isoformat()},axi-cel\n" for i in range(patients))
    labs = io.StringIO()
    labs.write("patient_id,day,analyte,value,unit\n")
    n = 0
    for day in range(days):
        for i in range(patients):
            for analyte, (unit, typical) in TYPICAL.items():
                if n < rows:
                    value = round(typical * rng.lognormvariate(0, 0.15), 2)
                    labs.write(f"I{i:03d},{day + 0.25},{analyte},{value},{unit}\n")
                    n += 1
    return pts.encode(), labs.getvalue().encode()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--patients", type=int, default=60)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--entries", type=int, default=30)
    p.add_argument("--cycles", type=int, default=3)
    p.add_argument("--import-rows", type=int, default=100_000)
    args = p.parse_args(argv)
    rng = random.Random(7)
    follow = _FollowTimes()
    logger = logging.getLogger("core.store.unit_of_work")
    logger.addHandler(follow)
    logger.setLevel(logging.DEBUG)

    with tempfile.TemporaryDirectory(prefix="cartwatch-bench-") as tmp:
        db = Path(tmp) / "ward.db"
        write_db(db, build_courses(args.patients, args.days, seed=2),
                 date.today() - timedelta(days=args.days))
        url = f"sqlite:///{db}"
        engine, settings = make_engine(url), Settings(database_url=url)
        run_evaluate(engine, settings)  # the ward's alerts in line, as the monitor keeps them
        print("ward ready; timing hand entries", file=sys.stderr, flush=True)
        entries = entry_latency(engine, args.entries, rng)
        cpu = []
        for _ in range(args.cycles):
            t = time.process_time()
            report = run_cycle(engine, settings, worker="bench:1")
            cpu.append(time.process_time() - t)
            assert report.error is None and report.patients >= args.patients, report.line()
        engine.dispose()

        print("timing the import", file=sys.stderr, flush=True)
        engine = make_engine(f"sqlite:///{Path(tmp) / 'import.db'}")
        init_db(engine)
        pts, labs = import_files(args.patients, args.import_rows)
        assert import_file(engine, pts, "patients.csv", user="bench").ok
        follow.seconds.clear()
        t = time.perf_counter()
        rep = import_file(engine, labs, "labs.csv", user="bench")
        total = time.perf_counter() - t
        assert rep.ok and rep.written, [str(e) for e in rep.errors[:3]]
        engine.dispose()
    follow_s = sum(follow.seconds)
    share = follow_s / (total - follow_s)
    p95 = statistics.quantiles(entries, n=20)[18] if len(entries) >= 2 else entries[0]
    cycle_cpu = statistics.median(cpu)
    print(json.dumps({
        "patients": args.patients, "days": args.days,
        "entry_to_alert_p50": round(statistics.median(entries), 3),
        "entry_to_alert_p95": round(p95, 3), "entry_to_alert_max": round(max(entries), 3),
        "entry_p95_target": P95_TARGET_S,
        "monitor_cycle_cpu_seconds": [round(c, 3) for c in cpu],
        "monitor_cycle_target_cpu": CYCLE_CPU_TARGET_S,
        "import_rows": rep.rows_in_file, "import_seconds": round(total, 2),
        "import_follow_seconds": round(follow_s, 3),
        "import_follow_share": round(share, 3), "import_follow_target": FOLLOW_SHARE_TARGET,
        "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "ok": p95 <= P95_TARGET_S and cycle_cpu <= CYCLE_CPU_TARGET_S
              and share <= FOLLOW_SHARE_TARGET,
    }))


if __name__ == "__main__":
    main()
