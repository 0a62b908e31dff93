"""bench/pg_scale.py at toy scale on the suite's PostgreSQL server (issue #7).

The full run (10,000 patients) is `python -m bench pg_scale`; this keeps its code working:
the JSON document's shape, positive timings, exact row counts, and courses read back from
PostgreSQL equal to the generated ones (the COPY text path loses nothing).
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from bench import pg_scale
from bench.replay_rules import DAILY_LABS, synthetic_course
from core.store.db import make_engine, session_scope
from core.store.loading import load_courses

pytestmark = pytest.mark.postgres

PLAN = pg_scale.Plan(patients=30, active=6, days=12, active_days=8, seed=3)


def _days(i: int) -> int:
    return PLAN.active_days if i < PLAN.active else PLAN.days


def test_pg_scale_toy_run_reports_every_number(pg_server):
    url = pg_server.new_database()
    doc = pg_scale.run(url, PLAN, runs=2, sample=10, progress=None)
    assert json.loads(json.dumps(doc)) == doc  # one JSON line, nothing unserialisable

    per_day = len(DAILY_LABS)
    labs = sum((_days(i) + 1) * per_day for i in range(PLAN.patients))  # + day -5 baseline
    obs = sum(_days(i) * 6 for i in range(PLAN.patients))
    assert doc["rows"]["patient"] == PLAN.patients
    assert doc["rows"]["labresult"] == labs
    assert doc["rows"]["observation"] == obs
    assert doc["rows"]["treatment"] > 0
    assert doc["rows_total"] == sum(doc["rows"].values())
    assert doc["indexes_rebuilt"] > 0  # dropped for the COPY, then rebuilt

    ev = doc["evaluate"]
    assert ev["patients"] == PLAN.active and ev["findings"] > 0
    assert ev["cold_seconds"] > 0 and ev["warm_seconds"] > 0
    assert ev["warm_median"] >= ev["warm_seconds"]

    alone = doc["evaluate_ward_alone"]  # the control: the same ward in its own database
    assert alone["patients"] == PLAN.active and alone["findings"] == ev["findings"]
    assert alone["cold_seconds"] > 0 and alone["warm_seconds"] > 0

    rp = doc["replay"]
    assert rp["patients"] == 10 and rp["patient_days"] > 0
    for key in ("read_seconds", "replay_seconds", "patient_days_per_s",
                "replay_only_patient_days_per_s", "read_patient_days_per_s"):
        assert rp[key] > 0, key
    assert rp["patient_days_per_s"] < rp["replay_only_patient_days_per_s"]  # read included
    for key in ("copy_seconds", "load_seconds", "db_size_mb", "peak_mb", "seconds"):
        assert doc[key] > 0, key
    assert isinstance(doc["ok"], bool)


def test_pg_scale_courses_read_back_equal_the_generated_ones(pg_server):
    url = pg_server.new_database()
    engine = make_engine(url)
    try:
        from core.store.db import init_db

        init_db(engine)
        pg_scale.load_cohort(url, PLAN, progress=None)
        with session_scope(engine) as session:
            loaded = {c.patient.patient_id: c
                      for c in load_courses(session, "UTC", active_only=False)}
        with session_scope(engine) as session:
            active = load_courses(session, "UTC")
    finally:
        engine.dispose()
    assert len(loaded) == PLAN.patients
    assert len(active) == PLAN.active

    rng = random.Random(PLAN.seed)
    for i in range(PLAN.patients):
        want = synthetic_course(i, _days(i), rng)
        got = loaded[want.patient.patient_id]
        for name, key in (("labs", "analyte"), ("observations", "kind"),
                          ("treatments", "drug")):
            a = getattr(want, name).sort_values(["day", key], kind="stable")
            b = getattr(got, name).sort_values(["day", key], kind="stable")
            assert list(a[key]) == list(b[key]), (i, name)
            assert np.allclose(a["day"], b["day"], atol=1e-6), (i, name)
        assert list(want.labs.sort_values(["day", "analyte"])["value"]) == \
            list(got.labs.sort_values(["day", "analyte"])["value"])
        wo = want.observations.sort_values(["day", "kind"])
        go = got.observations.sort_values(["day", "kind"])
        assert np.allclose(wo["value_num"], go["value_num"], equal_nan=True)
        assert list(wo["value_text"].fillna("")) == list(go["value_text"].fillna(""))
