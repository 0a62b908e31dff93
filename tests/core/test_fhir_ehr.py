"""A mixed EHR bundle (labs, vitals, drugs, things we do not monitor) on SQLite and
PostgreSQL: what it stores, what it skips, and that the temperatures change the CRS grade
that `python -m core evaluate --json` prints."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from core import cli
from core.store.models import LabResult, Observation, Treatment
from tests.core.test_fhir import bundle, med, obs, patient, run, vital
from tests.core.test_importing import snapshot

ENCOUNTER = {"resourceType": "Encounter", "id": "e1", "status": "in-progress",
             "subject": {"reference": "Patient/p1"}}
UNKNOWN = {**vital("x1", "8302-2", 172, "cm"), "category": []}  # body height: not monitored
MIXED = bundle(
    patient(),
    obs("o1", "3255-7", 1.4, "g/L", "2026-11-12T08:00:00Z"),
    obs("o2", "2276-4", 2500, "ug/L", "2026-11-12T08:00:00Z"),
    vital("t1", "8310-5", 39.2, "Cel", "2026-11-19T08:00:00Z"),
    vital("t2", "8310-5", 102.5, "[degF]", "2026-11-19T14:00:00Z"),
    vital("s1", "59408-5", 95, "%", "2026-11-19T08:00:00Z"),
    med("m1", "Tocilizumab 20 mg/mL injection", "2026-11-20T09:00:00Z"),
    med("m2", "Norepinephrine 4 mg/250 mL infusion", "2026-11-20T10:00:00Z",
        status="in-progress", dose=(0.05, "ug/kg/min")),
    ENCOUNTER,
    UNKNOWN,
)


def crs(engine, as_of: str, capsys) -> dict:
    """The crs_grade finding of F001, from `python -m core evaluate --json` (in process)."""
    url = engine.url.render_as_string(hide_password=False)
    capsys.readouterr()
    assert cli.main(["--db", url, "evaluate", "--json", "--as-of", as_of,
                     "--patient", "F001"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (finding,) = [f for f in doc["patients"][0]["findings"] if f["rule"] == "crs_grade"]
    return finding


def test_a_mixed_ehr_bundle_imports_skips_what_we_do_not_monitor_and_grades_crs(
        store, capsys):
    assert run(store, bundle(patient())).ok  # registered first: "before the import"
    fever_day, pressor_day = "2026-11-19T20:00:00Z", "2026-11-20T20:00:00Z"
    before = crs(store, fever_day, capsys)
    assert before["status"] == "not_evaluable" and before["grade"] is None

    report = run(store, MIXED, user="nurse.kim")
    assert report.ok and report.written, [str(e) for e in report.errors]
    assert dict(report.skipped) == {"Encounter: resource type not monitored": 1,
                                    "Observation: code not monitored": 1}
    # 2 labs, 3 vitals, 1 treatment, 1 vasopressor count; the patient was registered
    assert (report.rows_new, report.rows_already_present) == (7, 1)
    assert "skipped 2 resource(s)" in report.summary()
    with store.connect() as c:
        labs = c.execute(select(LabResult.analyte, LabResult.source_record_id)).all()
        vitals = c.execute(select(Observation.kind, Observation.value_num, Observation.unit,
                                  Observation.source_record_id, Observation.note)
                           .order_by(Observation.observed_at, Observation.kind)).all()
        drugs = c.execute(select(Treatment.drug, Treatment.dose, Treatment.dose_unit,
                                 Treatment.route, Treatment.source_record_id)).all()
    assert sorted(labs) == [("ferritin", "o2"), ("fibrinogen", "o1")]
    assert [(k, round(v, 2), u, s) for k, v, u, s, _n in vitals] == [
        ("spo2", 95, "%", "s1"), ("temperature", 39.2, "°C", "t1"),
        ("temperature", 39.17, "°C", "t2"),
        ("vasopressors", 1, None, "MedicationAdministration/m2")]
    assert "102.5 [degF]" in vitals[2][4]
    assert "norepinephrine (MedicationAdministration/m2)" in vitals[3][4]
    assert drugs == [("tocilizumab", 560, "mg", "Intravenous", "m1")]

    after = crs(store, fever_day, capsys)
    assert (after["status"], after["grade"]) == ("met", 1)
    assert any("39.17 °C" in e["why"] for e in after["evidence"]), after["evidence"]
    pressors = crs(store, pressor_day, capsys)
    assert pressors["grade"] == 3
    assert any("one vasopressor" in e["why"] for e in pressors["evidence"])

    state = snapshot(store)
    again = run(store, MIXED)
    assert again.ok and again.rows_new == 0 and not again.written
    assert again.rows_already_present == 8
    assert snapshot(store) == state


def test_the_issue_reproduction_a_ferritin_and_a_body_temperature_both_import(engine):
    data = bundle(patient(), obs("o1", "2276-4", 800, "ug/L"),
                  vital("t1", "8310-5", 38.4, "Cel", "2026-11-12T09:00:00Z"))
    report = run(engine, data)
    assert report.ok, [str(e) for e in report.errors]
    assert report.rows_new == 3 and not report.skipped
    with engine.connect() as c:
        assert c.execute(select(LabResult.analyte, LabResult.value)).all() == [
            ("ferritin", 800)]
        assert c.execute(select(Observation.kind, Observation.value_num)).all() == [
            ("temperature", 38.4)]


@pytest.mark.parametrize(("loinc", "value", "unit", "kind", "stored"), [
    ("8310-5", 37.9, "Cel", "temperature", 37.9),
    ("8310-5", 100.4, "[degF]", "temperature", 38.0),
    ("8310-5", 98.6, "degF", "temperature", 37.0),
    ("8867-4", 112, "/min", "heart_rate", 112),
    ("8867-4", 112, "{beats}/min", "heart_rate", 112),
    ("9279-1", 24, "/min", "respiratory_rate", 24),
    ("8480-6", 84, "mm[Hg]", "systolic_bp", 84),
    ("8462-4", 45, "mm[Hg]", "diastolic_bp", 45),
    ("59408-5", 91, "%", "spo2", 91),
    ("2708-6", 88, "%", "spo2", 88),
    ("3151-8", 4, "L/min", "oxygen_flow", 4),
])
def test_each_vital_sign_becomes_its_observation_kind_in_its_unit(engine, loinc, value, unit,
                                                                  kind, stored):
    report = run(engine, bundle(patient(), vital("v1", loinc, value, unit)))
    assert report.ok, [str(e) for e in report.errors]
    with engine.connect() as c:
        (row,) = c.execute(select(Observation.kind, Observation.value_num)).all()
    assert row[0] == kind and row[1] == pytest.approx(stored, abs=0.01)


def test_a_blood_pressure_panel_gives_both_pressures(engine):
    panel = {"resourceType": "Observation", "id": "bp1", "status": "final",
             "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
             "subject": {"reference": "Patient/p1"},
             "effectiveDateTime": "2026-11-19T08:00:00Z",
             "component": [
                 {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
                  "valueQuantity": {"value": 82, "unit": "mmHg", "code": "mm[Hg]"}},
                 {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
                  "valueQuantity": {"value": 40, "unit": "mmHg", "code": "mm[Hg]"}}]}
    report = run(engine, bundle(patient(), panel))
    assert report.ok, [str(e) for e in report.errors]
    with engine.connect() as c:
        rows = c.execute(select(Observation.kind, Observation.value_num,
                                Observation.source_record_id)
                         .order_by(Observation.kind)).all()
    assert rows == [("diastolic_bp", 40, "bp1#8462-4"), ("systolic_bp", 82, "bp1#8480-6")]


def test_the_site_code_map_serves_local_lab_and_bedside_codes(engine):
    from core.capture.codemap import map_code

    map_code(engine, system="urn:local:lab", code="FERR", target_kind="analyte",
             target="ferritin", unit="ng/mL", user="admin", reason="our ferritin code")
    map_code(engine, system="urn:local:flowsheet", code="PRESSOR-YN", target_kind="observation",
             target="vasopressin", user="admin", reason="vasopressin running row")
    lab = obs("l1", value=1200, unit="NG/ML-LOCAL")
    lab["code"] = {"coding": [{"system": "urn:local:lab", "code": "FERR"}]}
    flag = {k: v for k, v in vital("f1").items() if k != "valueQuantity"}
    flag["code"] = {"coding": [{"system": "urn:local:flowsheet", "code": "PRESSOR-YN"}]}
    flag["valueBoolean"] = True
    report = run(engine, bundle(patient(), lab, flag))
    assert report.ok, [str(e) for e in report.errors]
    with engine.connect() as c:
        assert c.execute(select(LabResult.analyte, LabResult.value,
                                LabResult.original_unit)).one() == ("ferritin", 1200, "ng/mL")
        assert c.execute(select(Observation.kind, Observation.value_num)).one() == (
            "vasopressin", 1)
