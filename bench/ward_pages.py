"""Benchmark: script time of the huddle screen (40 patients) and the ward overview (60).

    .venv/bin/python bench/ward_pages.py [--huddle 40] [--overview 60] [--days 30]

Builds a synthetic SQLite DB per size (random-walk labs, evaluated once so alerts exist),
then runs the real app through AppTest: a cold run (empty caches) and warm runs (cached
loader, as the page sees on every refresh). Prints one JSON line; the budget is 0.5 s warm.
The data are synthetic, not clinical.
"""

from __future__ import annotations

import argparse
import json
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
from core.store.models import LabResult, Patient  # noqa: E402

LABS = {"ferritin": (600.0, "ng/mL"), "fibrinogen": (320.0, "mg/dL"), "ast": (30.0, "U/L"),
        "alt": (35.0, "U/L"), "bilirubin": (0.7, "mg/dL"), "creatinine": (0.9, "mg/dL"),
        "wbc": (5.0, "10^9/L"), "anc": (3.0, "10^9/L"), "alc": (1.0, "10^9/L"),
        "hemoglobin": (11.0, "g/dL"), "platelets": (180.0, "10^9/L")}
BUDGET_S = 0.5


def build(path: Path, patients: int, days: int, seed: int = 1) -> tuple[str, float]:
    """A synthetic ward of `patients` active patients; returns (url, seconds to evaluate)."""
    from core.monitoring.evaluation import run_evaluate

    rng = random.Random(seed)
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    init_db(engine)
    now = datetime.now(UTC)
    with session_scope(engine) as s:
        for i in range(patients):
            on_day = rng.randint(3, days)
            infusion = (now - timedelta(days=on_day)).date()
            p = Patient(patient_id=f"BENCH-{i:04d}", initials="XY", bed=f"B{i:03d}",
                        product=rng.choice(["axi-cel", "tisa-cel", "cilta-cel"]),
                        infusion_date=infusion, lymphodepletion_start=infusion - timedelta(5),
                        birth_year=1960, is_synthetic=True)
            s.add(p)
            s.flush()
            start = datetime.combine(infusion, datetime.min.time(), UTC)
            for analyte, (typical, unit) in LABS.items():
                value = typical
                for d in range(-5, on_day + 1):
                    value = max(0.01, value * rng.lognormvariate(0, 0.2))
                    s.add(LabResult(patient_pk=p.id, analyte=analyte,
                                    collected_at=start + timedelta(days=d, hours=6),
                                    value=round(value, 2), unit=unit,
                                    original_value=str(round(value, 2)), original_unit=unit))
    t = time.perf_counter()
    run_evaluate(engine, Settings(database_url=url))
    engine.dispose()
    return url, time.perf_counter() - t


def script_times(url: str, page: str, runs: int = 5) -> dict:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    os.environ["CARTWATCH_DATABASE_URL"] = url
    st.cache_data.clear()
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=120)
    at.run()
    at.switch_page(page)
    t = time.perf_counter()
    at.run()
    cold = time.perf_counter() - t
    assert not at.exception, at.exception
    warm = []
    for _ in range(runs):
        t = time.perf_counter()
        at.run()
        warm.append(time.perf_counter() - t)
    return {"cold_s": round(cold, 3), "warm_median_s": round(statistics.median(warm), 3),
            "warm_max_s": round(max(warm), 3)}


def core_time(url: str) -> float:
    from core.views.huddle import huddle_tiles
    from core.views.ward import ward_summary

    engine = make_engine(url)
    with session_scope(engine) as s:
        t = time.perf_counter()
        ward_summary(s, "UTC")
        huddle_tiles(s, "UTC")
        return round(time.perf_counter() - t, 3)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--huddle", type=int, default=40)
    ap.add_argument("--overview", type=int, default=60)
    ap.add_argument("--days", type=int, default=30)
    args = ap.parse_args()
    out: dict = {"budget_warm_s": BUDGET_S, "date": date.today().isoformat()}
    with tempfile.TemporaryDirectory() as tmp:
        for name, n, page in (("huddle", args.huddle, "pages/huddle.py"),
                              ("overview", args.overview, "pages/overview.py")):
            url, evaluate_s = build(Path(tmp) / f"{name}.db", n, args.days)
            times = script_times(url, page)
            out[name] = {"patients": n, **times, "core_summary_and_tiles_s": core_time(url),
                         "evaluate_setup_s": round(evaluate_s, 2),
                         "within_budget": times["warm_max_s"] <= BUDGET_S}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
