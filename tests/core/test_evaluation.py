"""evaluate / replay over a real database: the design.md JSON contract, alerts, runs, locks."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import func, text
from sqlmodel import select

from core.config import Settings
from core.monitoring.alerts import SCREENING_NOTE
from core.monitoring.evaluation import (
    EVALUATE_LOCK_KEY,
    finding_json,
    iso_z,
    run_evaluate,
    run_replay,
    text_report,
)
from core.rules.base import (
    Citation,
    EvidenceItem,
    Finding,
    Rule,
    Severity,
    Status,
    Threshold,
)
from core.rules.engine import evaluate_courses
from core.store.db import init_db, make_engine, session_scope
from core.store.loading import load_courses
from core.store.models import (
    Alert,
    AlertEvent,
    AuditLog,
    EvaluationRun,
    LabResult,
    Observation,
    Patient,
)
from core.vocabulary.units import Evidence
from tests.rule_toys import course_rule

INFUSION = date(2026, 3, 1)
TZ = "Europe/Berlin"


def _ferritin_high(course, t) -> Finding:  # type: ignore[no-untyped-def]
    labs = course.series("ferritin")
    if labs.empty:
        return Finding("ferritin_high", Status.NOT_EVALUABLE, missing=["ferritin"])
    high = labs[labs["value"] > t["ferritin"]]
    if high.empty:
        return Finding("ferritin_high", Status.NOT_MET)
    first = high.iloc[0]
    return Finding("ferritin_high", Status.MET, since_day=float(first["day"]),
                   evidence=[EvidenceItem(why=f"> {t['ferritin']:g}", analyte="ferritin",
                                          day=first["day"], value=first["value"],
                                          unit="ng/mL")])


def _fever_grade(course, t) -> Finding:  # type: ignore[no-untyped-def]
    temps = course.observations[course.observations["kind"] == "temperature"]
    if temps.empty:
        return Finding("fever_grade", Status.NOT_EVALUABLE, missing=["temperature"])
    grade = int(temps["value_num"].max() >= t["fever_c"])
    return Finding("fever_grade", Status.MET if grade else Status.NOT_MET, grade=grade,
                   since_day=float(temps["day"].min()) if grade else None)


def _rule(rule_id: str, severity: Severity, thresholds: tuple[Threshold, ...],
          graded: bool = False) -> Rule:
    return Rule(id=rule_id, title=f"Test rule {rule_id}", version="1",
                citation=Citation("test", "§0"), evidence=Evidence.DESIGN, severity=severity,
                thresholds=thresholds, inputs=(), graded=graded)


SPECS = (
    course_rule(_rule("ferritin_high", Severity.SEVERE,
                   (Threshold("ferritin", 1000.0, "ng/mL", Evidence.DESIGN, "high", ">"),)),
             _ferritin_high),
    course_rule(_rule("fever_grade", Severity.WARNING,
                   (Threshold("fever_c", 38.0, "degC", Evidence.DESIGN, "fever", ">="),),
                   graded=True),
             _fever_grade),
)
AS_OF = datetime(2026, 3, 10, 7, 0, tzinfo=UTC)  # 08:00 in Berlin on day 9


def at(day: float, hour: int = 6) -> datetime:
    return datetime(2026, 3, 1, hour, tzinfo=UTC) + timedelta(days=day)


def ferritin(pk: int, when: datetime, value: float) -> LabResult:
    return LabResult(patient_pk=pk, analyte="ferritin", collected_at=when, value=value,
                     unit="ng/mL", original_value=f"{value:g}", original_unit="ng/mL")


@pytest.fixture
def settings(engine) -> Settings:  # type: ignore[no-untyped-def]
    return Settings(database_url=str(engine.url), ward_tz=TZ)


@pytest.fixture
def ward(add):  # type: ignore[no-untyped-def]
    p1, p2, p3 = add(
        Patient(patient_id="P001", product="axi-cel", infusion_date=INFUSION),
        Patient(patient_id="P002", product="tisa-cel", infusion_date=INFUSION),
        Patient(patient_id="P003", product="cilta-cel", infusion_date=INFUSION,
                status="discharged"),
    )
    add(
        ferritin(p1.id, at(2), 600.0), ferritin(p1.id, at(8), 9500.0),
        Observation(patient_pk=p1.id, kind="temperature", observed_at=at(3), value_num=38.4),
        ferritin(p2.id, at(8), 400.0),
        Observation(patient_pk=p2.id, kind="temperature", observed_at=at(3), value_num=37.0),
        ferritin(p3.id, at(8), 9999.0),
    )
    return p1, p2, p3


def count(engine, model) -> int:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        return int(s.exec(select(func.count()).select_from(model)).one())


def test_evaluate_returns_the_design_json_document(engine, settings, ward) -> None:
    doc = run_evaluate(engine, settings, as_of=AS_OF, specs=SPECS)
    assert json.loads(json.dumps(doc)) == doc  # plain JSON, no NaN or numpy
    assert set(doc) == {"as_of", "patients"}
    assert doc["as_of"] == "2026-03-10T07:00:00Z"
    assert [p["patient_id"] for p in doc["patients"]] == ["P001", "P002"]  # active only
    for p in doc["patients"]:
        assert set(p) == {"patient_id", "day", "findings"}
        assert p["day"] == 9 and isinstance(p["day"], int)
        for f in p["findings"]:
            assert {"rule", "status", "since_day", "grade", "score", "evidence",
                    "missing"} <= set(f)
            assert f["status"] in {"met", "not_met", "not_evaluable"}
    p1 = {f["rule"]: f for f in doc["patients"][0]["findings"]}
    p2 = {f["rule"]: f for f in doc["patients"][1]["findings"]}
    assert p1["ferritin_high"]["status"] == "met"
    assert math.floor(p1["ferritin_high"]["since_day"]) == 8
    assert p1["ferritin_high"]["evidence"][0] == {
        "why": "> 1000", "analyte": "ferritin", "day": p1["ferritin_high"]["since_day"],
        "value": 9500.0, "unit": "ng/mL"}
    assert (p1["fever_grade"]["status"], p1["fever_grade"]["grade"]) == ("met", 1)
    assert (p2["fever_grade"]["status"], p2["fever_grade"]["grade"]) == ("not_met", 0)
    assert type(p2["fever_grade"]["grade"]) is int  # graded: an integer, 0 meaning none
    assert p2["ferritin_high"]["grade"] is None and p2["ferritin_high"]["score"] is None


def test_evaluate_creates_alerts_once_and_records_each_run(engine, settings, ward) -> None:
    for hours in (0, 1, 2):
        run_evaluate(engine, settings, as_of=AS_OF + timedelta(minutes=hours * 30),
                     specs=SPECS, actor="cron")
    with session_scope(engine) as s:
        rows = list(s.exec(select(Alert).order_by(Alert.rule_id)))
        runs = list(s.exec(select(EvaluationRun).order_by(EvaluationRun.id)))
    assert [(a.rule_id, a.state, a.fire_count) for a in rows] == [
        ("ferritin_high", "firing", 1), ("fever_grade", "firing", 1)]
    assert SCREENING_NOTE in rows[0].message
    assert len(runs) == 3
    assert all(r.patients == 2 and r.findings == 2 and r.actor == "cron" for r in runs)
    assert all(r.finished_at is not None and r.finished_at >= r.started_at for r in runs)
    assert runs[0].as_of == AS_OF


def test_evaluate_as_of_sees_only_what_was_known_then(engine, settings, ward) -> None:
    doc = run_evaluate(engine, settings, as_of=at(5), specs=SPECS)
    p1 = {f["rule"]: f for f in doc["patients"][0]["findings"]}
    assert p1["ferritin_high"]["status"] == "not_met"
    assert doc["patients"][0]["day"] == 5


def test_evaluate_one_patient_and_an_unknown_one(engine, settings, ward) -> None:
    doc = run_evaluate(engine, settings, as_of=AS_OF, patient_id="P002", specs=SPECS)
    assert [p["patient_id"] for p in doc["patients"]] == ["P002"]
    with pytest.raises(LookupError, match="no patient 'NOPE'"):
        run_evaluate(engine, settings, as_of=AS_OF, patient_id="NOPE", specs=SPECS)


def test_evaluate_escalates_severe_then_follows_corrections(engine, settings, ward) -> None:
    run_evaluate(engine, settings, as_of=AS_OF, specs=SPECS)
    doc = run_evaluate(engine, settings, as_of=AS_OF + timedelta(hours=3), specs=SPECS)
    assert doc["patients"][0]["patient_id"] == "P001"
    with session_scope(engine) as s:
        states = {a.rule_id: a.state for a in s.exec(select(Alert))}
    assert states == {"ferritin_high": "escalated", "fever_grade": "firing"}
    # P001's only temperature and its high ferritin are marked entered in error
    with session_scope(engine) as s:
        s.exec(select(Observation).where(Observation.value_num == 38.4)).one().status = \
            "entered_in_error"
        s.exec(select(LabResult).where(LabResult.value == 9500.0)).one().status = \
            "entered_in_error"
    run_evaluate(engine, settings, as_of=AS_OF + timedelta(hours=4), specs=SPECS)
    with session_scope(engine) as s:
        states = {a.rule_id: a.state for a in s.exec(select(Alert))}
    assert states["ferritin_high"] == "resolved"  # not met any more
    assert states["fever_grade"] == "firing"  # not evaluable now: left open, not resolved


def test_evaluate_resolves_open_alerts_of_discharged_patients(engine, settings, ward) -> None:
    run_evaluate(engine, settings, as_of=AS_OF, specs=SPECS)
    with session_scope(engine) as s:
        s.exec(select(Patient).where(Patient.patient_id == "P001")).one().status = "discharged"
    run_evaluate(engine, settings, as_of=AS_OF + timedelta(hours=1), specs=SPECS)
    with session_scope(engine) as s:
        assert {a.state for a in s.exec(select(Alert))} == {"resolved"}


def test_evaluate_applies_site_threshold_overrides(engine, ward, tmp_path) -> None:
    site = tmp_path / "site.toml"
    site.write_text("[thresholds.ferritin_high]\nferritin = 10000\n", encoding="utf-8")
    settings = Settings(database_url=str(engine.url), ward_tz=TZ, site_config=site)
    doc = run_evaluate(engine, settings, as_of=AS_OF, specs=SPECS)
    p1 = {f["rule"]: f for f in doc["patients"][0]["findings"]}
    assert p1["ferritin_high"]["status"] == "not_met"


def test_replay_reports_every_day_and_never_touches_alerts(engine, settings, ward) -> None:
    run_evaluate(engine, settings, as_of=AS_OF, specs=SPECS)
    before = [count(engine, m) for m in (Alert, AlertEvent, AuditLog, EvaluationRun)]
    with session_scope(engine) as s:
        snapshot = [(a.id, a.state, a.last_seen_at) for a in s.exec(select(Alert))]
    doc = run_replay(engine, settings, as_of=AS_OF + timedelta(days=1), specs=SPECS)
    assert [count(engine, m) for m in (Alert, AlertEvent, AuditLog, EvaluationRun)] == before
    with session_scope(engine) as s:
        assert [(a.id, a.state, a.last_seen_at) for a in s.exec(select(Alert))] == snapshot
    assert json.loads(json.dumps(doc)) == doc
    assert set(doc) == {"as_of", "patients"}
    # replay is a backtest of the whole cohort, discharged patients included
    assert [p["patient_id"] for p in doc["patients"]] == ["P001", "P002", "P003"]
    p1 = doc["patients"][0]
    assert set(p1) == {"patient_id", "day", "findings", "days"}
    days = [d["day"] for d in p1["days"]]
    assert days == list(range(days[0], days[-1] + 1)) and all(type(d) is int for d in days)
    by_day = {d["day"]: {f["rule"]: f["status"] for f in d["findings"]} for d in p1["days"]}
    assert by_day[7]["ferritin_high"] == "not_met" and by_day[8]["ferritin_high"] == "met"


def test_replay_of_one_patient(engine, settings, ward) -> None:
    doc = run_replay(engine, settings, patient_id="P003", specs=SPECS)
    assert [p["patient_id"] for p in doc["patients"]] == ["P003"]
    with pytest.raises(LookupError):
        run_replay(engine, settings, patient_id="NOPE", specs=SPECS)


def test_text_report_lists_met_findings_under_one_screening_note(engine, settings, ward) -> None:
    report = text_report(run_evaluate(engine, settings, as_of=AS_OF, specs=SPECS))
    lines = report.splitlines()
    assert lines[0] == SCREENING_NOTE and report.count(SCREENING_NOTE) == 1
    met = [line for line in lines if line.startswith("P00")]
    assert len(met) == 2
    assert any("ferritin_high" in line and "ferritin 9500" in line and "since day 8" in line
               for line in met)
    assert any("fever_grade" in line and "grade 1" in line for line in met)


def test_text_report_of_a_quiet_ward_and_of_a_replay(engine, settings, ward) -> None:
    assert "No rule is met." in text_report({"as_of": "x", "patients": []})
    report = text_report(run_replay(engine, settings, patient_id="P001", specs=SPECS))
    assert "P001 replay, first met: fever_grade day 3, ferritin_high day 8" in report


def test_iso_z() -> None:
    assert iso_z(datetime(2026, 11, 21, 9, 0, 0, 123, tzinfo=UTC)) == "2026-11-21T09:00:00Z"
    assert iso_z(datetime(2026, 11, 21, 9, 0)) == "2026-11-21T09:00:00Z"  # naive is UTC


@pytest.mark.postgres
def test_a_second_concurrent_evaluate_refuses_on_postgresql(pg_server) -> None:  # type: ignore[no-untyped-def]
    url = pg_server.new_database()
    engine = make_engine(url)
    init_db(engine)
    settings = Settings(database_url=url, ward_tz=TZ)
    try:
        with engine.connect() as holder:
            holder.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": EVALUATE_LOCK_KEY})
            with pytest.raises(RuntimeError, match="another evaluate is running"):
                run_evaluate(engine, settings, as_of=AS_OF, specs=SPECS)
            holder.rollback()
        assert run_evaluate(engine, settings, as_of=AS_OF, specs=SPECS)["patients"] == []
        with session_scope(engine) as s:  # the refused run left nothing behind
            assert len(list(s.exec(select(EvaluationRun)))) == 1
    finally:
        engine.dispose()


def test_on_sqlite_the_rules_run_without_holding_the_write_lock(engine, settings, ward) -> None:
    import sqlite3

    path = engine.url.database
    writable: list[bool] = []

    def probe(course, t) -> Finding:  # type: ignore[no-untyped-def]
        other = sqlite3.connect(path, timeout=0.05, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
            writable.append(True)
        except sqlite3.OperationalError:
            writable.append(False)
        finally:
            other.close()
        return Finding("probe", Status.NOT_MET)

    probe_spec = course_rule(_rule("probe", Severity.INFO, ()), probe)
    run_evaluate(engine, settings, as_of=AS_OF, specs=(*SPECS, probe_spec))
    assert writable and all(writable)  # every call (each course-day) could have written


GRADED_PREFIXES = ("crs_grade", "icans_grade", "icaht_", "ticaht_", "ctcae_")


def test_evaluate_with_the_real_catalogue_keeps_the_json_contract(engine, settings, ward) -> None:
    from core.rules.catalog import all_specs

    doc = run_evaluate(engine, settings, as_of=AS_OF)
    assert json.loads(json.dumps(doc, allow_nan=False)) == doc
    ids = {s.rule.id for s in all_specs()}
    for p in doc["patients"]:
        assert {f["rule"] for f in p["findings"]} == ids
        for f in p["findings"]:
            assert f["status"] in {"met", "not_met", "not_evaluable"}
            if f["rule"].startswith(GRADED_PREFIXES) and f["status"] != "not_evaluable":
                assert type(f["grade"]) is int, f
                assert (f["status"] == "met") == (f["grade"] >= 1), f
    replay = run_replay(engine, settings, patient_id="P001", as_of=AS_OF)
    assert json.loads(json.dumps(replay, allow_nan=False)) == replay


def test_finding_json_is_json_safe_and_leaves_the_finding_as_it_was():
    """numpy scalars become Python numbers, NaN null, times ISO text, a whole-number grade an
    int; what the finding holds (its extra, its evidence) is not changed."""
    breakdown = {"items": [np.float64(1.5), np.int64(2), float("nan")], 3: np.bool_(True)}
    finding = Finding("r", Status.MET, since_day=2.0, grade=np.float64(3.0),
                      score=np.float64(4.5), missing=["a ferritin result"],
                      evidence=[EvidenceItem("why", "ferritin", np.float64(2.5),
                                             float("nan"), "ug/L")],
                      extra={"probability": np.float64(0.25), "breakdown": breakdown,
                             "at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)})
    out = finding_json(finding)
    assert json.loads(json.dumps(out, allow_nan=False)) == out
    assert out == {
        "rule": "r", "status": "met", "since_day": 2.0, "grade": 3, "score": 4.5,
        "evidence": [{"why": "why", "analyte": "ferritin", "day": 2.5, "value": None,
                      "unit": "ug/L"}],
        "missing": ["a ferritin result"], "probability": 0.25,
        "breakdown": {"items": [1.5, 2, None], "3": True}, "at": "2026-01-02T03:04:05Z"}
    assert [type(out[k]) for k in ("grade", "score", "probability")] == [int, float, float]
    assert type(out["evidence"][0]["day"]) is float
    assert type(breakdown["items"][0]) is np.float64 and 3 in breakdown
    assert type(finding.extra["probability"]) is np.float64
    assert math.isnan(finding.evidence[0].value)


def test_evaluate_reads_the_cited_lab_rows_fields_as_a_whole_read_has_them(store) -> None:
    """evaluate reads the ward without the lab fields only evidence shows (qualifier, value
    and unit as received, verified) and then reads them for the rows its findings cite: on
    SQLite and PostgreSQL, its findings are those of every rule over the courses read whole."""
    def lab(pk: int, analyte: str, day: float, value: float, unit: str, **kw: object) -> LabResult:
        kw.setdefault("original_value", f"{value:g}")
        kw.setdefault("original_unit", unit)
        return LabResult(patient_pk=pk, analyte=analyte, collected_at=at(day), value=value,
                         unit=unit, **kw)

    with session_scope(store) as s:
        p1, p2 = (Patient(patient_id=i, product="axi-cel", infusion_date=INFUSION)
                  for i in ("P001", "P002"))
        s.add_all([p1, p2])
        s.flush()
        s.add_all([
            lab(p1.id, "ferritin", -2, 600.0, "ng/mL"),
            lab(p1.id, "ferritin", 8, 9500.0, "ng/mL", original_value="9.5",
                original_unit="ug/mL", verified_by="nurse", verified_at=at(8, 9)),
            lab(p1.id, "alt", -2, 30.0, "U/L"),
            lab(p1.id, "alt", 8, 5.0, "U/L", qualifier="<", original_value="<5"),
            lab(p1.id, "fibrinogen", 8, 150.0, "mg/dL", original_value="1.5",
                original_unit="g/L"),
        ])
    settings = Settings(database_url=str(store.url), ward_tz=TZ)
    doc = run_evaluate(store, settings, as_of=AS_OF)
    with session_scope(store) as s:
        courses = load_courses(s, TZ, as_of=AS_OF)
    whole = [[finding_json(f) for f in found] for found in evaluate_courses(courses)]
    assert [p["findings"] for p in doc["patients"]] == whole
    latest = {e["analyte"]: e for f in whole[0] for e in f["evidence"]
              if math.floor(e.get("day", 0)) == 8}
    assert {"value": 9500.0, "original_value": "9.5", "original_unit": "ug/mL",
            "verified": True}.items() <= latest["ferritin"].items()
    assert {"value": "<5", "original_value": "<5", "verified": False}.items() <= latest[
        "alt"].items()
    assert latest["fibrinogen"]["original_unit"] == "g/L"
