"""Benchmark: the patient timeline page for one patient with 120 days x 17 analytes.

    .venv/bin/python bench/timeline_page.py [--days 120] [--runs 7]

Builds a temporary SQLite database with one synthetic patient (every analyte of
core.vocabulary.units.ANALYTES drawn daily from day -7, observations, treatments and a CRS episode;
not
clinical data), evaluates it, then times AppTest runs of the page. The first run is cold
(course load, findings, replay for suggested windows, figure); the rest are warm (caches hit),
and their median is the number that matters (target: <= 0.5 s). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.config import Settings  # noqa: E402
from core.store.db import init_db, make_engine, session_scope  # noqa: E402
from core.store.models import Episode, LabResult, Observation, Patient, Treatment  # noqa: E402
from core.vocabulary.course import at_day  # noqa: E402
from core.vocabulary.units import ANALYTES  # noqa: E402

TYPICAL = {"ferritin": 600, "fibrinogen": 320, "ast": 30, "alt": 35, "bilirubin": 0.7,
           "ldh": 220, "triglycerides": 140, "crp": 20, "il6": 10, "scd25": 1500,
           "creatinine": 0.9, "wbc": 5, "anc": 3, "alc": 1, "hemoglobin": 11, "platelets": 180,
           "ddimer": 0.8, "inr": 1.1}


def build(path: Path, days: int, seed: int = 1) -> tuple[str, str, int]:
    rng = random.Random(seed)
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    init_db(engine)
    today = datetime.now(UTC).date()
    infusion = today - timedelta(days=days - 8)
    tz = __import__("zoneinfo").ZoneInfo("UTC")
    n = 0
    with session_scope(engine) as s:
        p = Patient(patient_id="BENCH-001", product="axi-cel", infusion_date=infusion,
                    lymphodepletion_start=infusion - timedelta(days=5), bed="B-1",
                    birth_year=1960, sex="F", is_synthetic=True)
        s.add(p)
        s.flush()
        level = dict(TYPICAL)
        rows = []
        for d in range(-7, days - 7):
            when = at_day(d + 0.25, infusion, tz)
            for code, a in ANALYTES.items():
                level[code] = math.exp(0.8 * math.log(level[code])
                                       + 0.2 * math.log(TYPICAL[code]) + rng.gauss(0, 0.15))
                v = round(level[code], 2)
                rows.append(LabResult(patient_pk=p.id, analyte=code, collected_at=when, value=v,
                                      unit=a.unit, original_value=f"{v:g}", original_unit=a.unit,
                                      ref_low=a.ref_low, ref_high=a.ref_high, source="csv"))
            for kind, value in (("temperature", 37 + rng.random()), ("ice_score", 10.0)):
                s.add(Observation(patient_pk=p.id, kind=kind, observed_at=when,
                                  value_num=value))
        n = len(rows)
        s.add_all(rows)
        s.add(Episode(patient_pk=p.id, kind="CRS", grade=2,
                      onset=at_day(2, infusion, tz), resolved=at_day(5, infusion, tz)))
        for d in (3.3, 4.1):
            s.add(Treatment(patient_pk=p.id, drug="tocilizumab", given_at=at_day(d, infusion, tz),
                            dose=8, dose_unit="mg/kg", route="IV"))
    from core.monitoring.evaluation import run_evaluate

    run_evaluate(engine, Settings(database_url=url))
    engine.dispose()
    return url, "BENCH-001", n


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=120)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        url, pid, n_labs = build(Path(tmp) / "bench.db", args.days)
        build_s = time.perf_counter() - t0
        os.environ["CARTWATCH_DATABASE_URL"] = url
        from streamlit.testing.v1 import AppTest

        from core.access.accounts import active_account
        from core.access.users import create_user
        from core.store.db import make_engine
        from dashboard.auth import session_values

        engine = make_engine(url)  # a clinician signed in, as the page needs a user
        create_user(engine, "bench.dr", "clinician", "bench-only password")
        account = active_account(engine, "bench.dr")
        engine.dispose()
        assert account is not None
        at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=120)
        for key, value in session_values(account).items():
            at.session_state[key] = value
        at.run()
        at.session_state["patient_id"] = pid
        t = time.perf_counter()
        at.switch_page("pages/patient.py").run()
        cold = time.perf_counter() - t
        assert not at.exception, at.exception
        assert at.get("plotly_chart"), "no chart"
        warm = []
        for _ in range(args.runs):
            at.session_state["patient_id"] = pid
            t = time.perf_counter()
            at.run()
            warm.append(time.perf_counter() - t)
            assert not at.exception, at.exception
        spec_kb = len(at.get("plotly_chart")[0].proto.spec) // 1000
    print(json.dumps({
        "bench": "timeline_page", "days": args.days, "analytes": len(ANALYTES),
        "lab_rows": n_labs, "build_db_s": round(build_s, 2), "cold_run_s": round(cold, 3),
        "warm_runs_s": [round(w, 3) for w in warm], "warm_median_s": round(
            statistics.median(warm), 3), "target_s": 0.5, "figure_kb": spec_kb,
        "ok": statistics.median(warm) <= 0.5, "date": date.today().isoformat(),
    }))


if __name__ == "__main__":
    main()
