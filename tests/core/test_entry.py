"""Hand entry, corrections, verification and the audit trail on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pandas as pd
import pytest
from sqlalchemy import select

from core.capture.corrections import (
    CorrectionRefused,
    correct,
    history,
    mark_entered_in_error,
    verification_queue,
    verify,
)
from core.capture.entry import enter_day, enter_grid, ice_score, save_site_setting, usual_units
from core.store.audit_trail import audit_csv, audit_log
from core.store.db import session_scope
from core.store.loading import load_courses
from core.store.models import LabResult, MissingLab, Observation
from tests.core.test_importing import NOW, run, snapshot

WHEN = datetime(2026, 11, 14, 8, 0)  # day 4 of P001, ward time


@pytest.fixture
def ward(store):
    assert run(store, b"patient_id,infusion_date,product\nP001,2026-11-10,axi-cel\n"
                      b"P002,2026-11-01,tisa-cel\n").ok
    return store


def day(engine, **kw):
    kw.setdefault("user", "nurse.kim")
    kw.setdefault("now", NOW)
    return enter_day(engine, "P001", WHEN, **kw)


def test_a_days_panel_with_observations_and_a_gap_is_saved_and_audited(ward):
    res = day(ward, labs=[("ferritin", "1200", "ng/mL"), ("fibrinogen", "1.9", "g/L"),
                          ("crp", "", "mg/L")],
              observations=[("temperature", "38.9"), ("oxygen_device", "low_flow_nc"),
                            ("ice_score", "10"), ("hemophagocytosis", "")],
              episodes=[{"kind": "CRS", "grade": 1, "onset": WHEN}],
              treatments=[{"drug": "tocilizumab", "dose": 8, "dose_unit": "mg/kg"}],
              missing=[("ldh", "haemolysed")])
    assert res.ok, [str(e) for e in res.errors]
    assert res.added == {"labs": 2, "observations": 3, "episodes": 1, "treatments": 1,
                         "missing": 1}
    with ward.connect() as c:
        fib = c.execute(select(LabResult).where(LabResult.analyte == "fibrinogen")).one()
        gap = c.execute(select(MissingLab)).one()
    assert fib.value == pytest.approx(190) and fib.original_unit == "g/L"
    assert fib.source == "manual" and fib.entered_by == "nurse.kim"
    assert (gap.analyte, gap.day, gap.reason) == ("ldh", 4, "haemolysed")
    log = audit_log(ward, actor="nurse.kim", patient_id="P001")
    assert (log["action"] == "insert").sum() == 8
    with session_scope(ward) as s:
        course = load_courses(s, "UTC", ["P001"])[0]
    assert list(course.missing["analyte"]) == ["ldh"]


def test_saving_the_same_panel_twice_adds_nothing(ward):
    assert day(ward, labs=[("ferritin", "1200", "ng/mL")]).ok
    before = snapshot(ward)
    again = day(ward, labs=[("ferritin", "1200", "ng/mL")])
    assert again.ok and again.added == {"labs": 0} and again.already_present == {"labs": 1}
    assert snapshot(ward) == before


BAD_ENTRIES = [
    pytest.param({"labs": [("fibrinogen", "2.1", "mg/dL")]}, "Fibrinogen", "was it g/L?",
                 False, id="unit-mixup-held-with-a-question"),
    pytest.param({"labs": [("ferritin", "5000000", "ng/mL")]}, "Ferritin",
                 "outside the possible range", False, id="past-hard-limit"),
    pytest.param({"labs": [("ferritin", "300000", "ng/mL")]}, "Ferritin",
                 "tick 'These unusual values are right'", True, id="past-soft-limit"),
    pytest.param({"labs": [("crp", "five", "mg/L")]}, "CRP", "must be a number", False,
                 id="not-a-number"),
    pytest.param({"labs": [("crp", "5", "mmol/L")]}, "CRP", "not a unit accepted", False,
                 id="wrong-unit"),
    pytest.param({"observations": [("temperature", "101")]}, "Temperature",
                 "outside the possible range", False, id="temperature-in-fahrenheit"),
    pytest.param({"observations": [("seizure", "maybe")]}, "Seizure", "must be one of",
                 False, id="bad-choice"),
    pytest.param({"episodes": [{"kind": "CRS", "grade": 9, "onset": WHEN}]}, "CRS episode",
                 "from 0 to 5", False, id="episode-grade"),
    pytest.param({"treatments": [{"drug": "aspirin-ish"}]}, "aspirin-ish", "Unknown drug",
                 False, id="unknown-drug"),
    pytest.param({"missing": [("ldh", "forgot")]}, "LDH not available",
                 "reason must be one of", False, id="bad-missing-reason"),
]


@pytest.mark.parametrize(("values", "item", "message", "confirmable"), BAD_ENTRIES)
def test_a_bad_value_holds_the_whole_panel_with_a_sentence(ward, values, item, message,
                                                           confirmable):
    before = snapshot(ward)
    values = dict(values)  # the parameter is shared by both engines' runs
    res = day(ward, labs=[("crp", "12", "mg/L"), *values.pop("labs", [])], **values)
    assert not res.ok and not res.written
    hits = [e for e in res.errors if message in e.message]
    assert hits, [str(e) for e in res.errors]
    assert hits[0].item == item
    assert res.needs_confirmation is confirmable
    assert snapshot(ward) == before


def test_a_soft_limit_value_is_saved_once_confirmed_and_flagged(ward):
    res = day(ward, labs=[("ferritin", "300000", "ng/mL")], confirm_unusual=True)
    assert res.ok
    with ward.connect() as c:
        assert c.execute(select(LabResult.confirmed_unusual)).scalar_one() is True


def test_a_different_value_for_a_stored_time_asks_for_a_correction(ward):
    assert day(ward, labs=[("ferritin", "1200", "ng/mL")]).ok
    res = day(ward, labs=[("ferritin", "1300", "ng/mL")])
    assert not res.ok and "correct the stored value" in res.errors[0].message


def test_the_grid_back_fills_several_days_and_names_the_bad_cell(ward):
    grid = pd.DataFrame({"date": [date(2026, 11, 11), date(2026, 11, 12)],
                         "ferritin": ["800", "950"], "crp": ["", "abc"]})
    res = enter_grid(ward, "P001", grid, usual_units(ward), user="nurse.kim", now=NOW)
    assert not res.ok and res.errors[0].item == "12 Nov CRP"
    grid.loc[1, "crp"] = "40"
    res = enter_grid(ward, "P001", grid, usual_units(ward), user="nurse.kim", now=NOW)
    assert res.ok and res.added == {"labs": 3}


def test_usual_units_come_from_the_site_setting(ward):
    assert usual_units(ward)["fibrinogen"] == "mg/dL"
    save_site_setting(ward, "usual_units", {"fibrinogen": "g/L"}, "admin")
    assert usual_units(ward)["fibrinogen"] == "g/L"


def test_ice_score_sums_its_ten_points():
    assert ice_score({"orient_year": 1, "orient_month": 1, "orient_city": 1,
                      "orient_hospital": 1, "naming": 3, "commands": 1, "writing": 1,
                      "attention": 1}) == 10
    assert ice_score({"naming": 5, "writing": True}) == 4


def _lab_id(engine, analyte="fibrinogen"):
    with engine.connect() as c:
        return c.execute(select(LabResult.id).where(
            LabResult.analyte == analyte, LabResult.status == "final")).scalar_one()


def test_a_correction_supersedes_with_a_reason_and_keeps_the_history(ward):
    assert day(ward, labs=[("fibrinogen", "1.2", "g/L")]).ok
    old = _lab_id(ward)
    new = correct(ward, "labs", old, {"value": "1.5"}, "typo", "nurse.lee", now=NOW)
    with ward.connect() as c:
        rows = {r.id: r for r in c.execute(select(LabResult))}
    assert rows[old].status == "superseded" and rows[new].status == "final"
    assert rows[new].supersedes_id == old and rows[new].row_key is None
    assert rows[new].value == pytest.approx(150) and rows[new].correction_reason == "typo"
    chain = history(ward, "labs", new)
    assert [h["id"] for h in chain] == [old, new] == [h["id"] for h in history(ward, "labs", old)]
    log = audit_log(ward, table="labs")
    corr = log[log["action"] == "correct"].iloc[0]
    assert corr["before"]["value"] == pytest.approx(120) and corr["after"]["value"] == \
        pytest.approx(150) and corr["reason"] == "typo"
    with session_scope(ward) as s:
        labs = load_courses(s, "UTC", ["P001"])[0].labs
    assert list(labs["value"]) == [pytest.approx(150)]


def test_a_correction_goes_through_the_same_checks(ward):
    assert day(ward, labs=[("fibrinogen", "1.2", "g/L")]).ok
    before = snapshot(ward)
    with pytest.raises(CorrectionRefused, match="was it g/L"):
        correct(ward, "labs", _lab_id(ward), {"unit": "mg/dL", "value": "2.1"}, "wrong_unit",
                "nurse.lee", now=NOW)
    with pytest.raises(CorrectionRefused, match="Explain the reason"):
        correct(ward, "labs", _lab_id(ward), {"value": "1.4"}, "other", "nurse.lee", now=NOW)
    with pytest.raises(CorrectionRefused, match="Nothing changed"):
        correct(ward, "labs", _lab_id(ward), {"value": "1.2"}, "typo", "nurse.lee", now=NOW)
    assert snapshot(ward) == before


def test_wrong_patient_moves_the_value(ward):
    assert day(ward, labs=[("crp", "40", "mg/L")]).ok
    correct(ward, "labs", _lab_id(ward, "crp"), {"patient_id": "P002"}, "wrong_patient",
            "nurse.lee", now=NOW)
    with session_scope(ward) as s:
        c1, c2 = load_courses(s, "UTC", ["P001", "P002"])
    assert len(c1.labs) == 0 and len(c2.labs) == 1


def test_entered_in_error_hides_the_value_but_keeps_it(ward):
    assert day(ward, observations=[("temperature", "39.5")]).ok
    with ward.connect() as c:
        obs_id = c.execute(select(Observation.id)).scalar_one()
    mark_entered_in_error(ward, "observations", obs_id, "wrong_patient", "nurse.lee")
    with session_scope(ward) as s:
        assert len(load_courses(s, "UTC", ["P001"])[0].observations) == 0
    with ward.connect() as c:
        assert c.execute(select(Observation.status)).scalar_one() == "entered_in_error"
    with pytest.raises(CorrectionRefused, match="already entered_in_error"):
        mark_entered_in_error(ward, "observations", obs_id, "typo", "nurse.lee")


def test_verification_needs_a_second_person(ward):
    assert day(ward, labs=[("ferritin", "1200", "ng/mL")]).ok
    queue = verification_queue(ward)
    assert list(queue["analyte"]) == ["ferritin"]
    lab = int(queue["id"][0])
    assert "another person" in verify(ward, [lab], "nurse.kim")[0]
    assert verify(ward, [lab], "dr.ng") == []
    assert verification_queue(ward).empty
    with ward.connect() as c:
        assert c.execute(select(LabResult.verified_by)).scalar_one() == "dr.ng"


def test_audit_export_neutralises_formula_prefixes(ward):
    assert day(ward, labs=[("crp", "40", "mg/L")], user="=cmd|' /C calc'!A0").ok
    text = audit_csv(audit_log(ward))
    assert "'=cmd" in text and "\n=cmd" not in text


def test_audit_filters_by_date_range(ward):
    assert day(ward, labs=[("crp", "40", "mg/L")]).ok
    today = datetime.now(UTC).date()
    assert len(audit_log(ward, start=today, end=today)) >= 1
    assert audit_log(ward, end=date(2000, 1, 1)).empty
