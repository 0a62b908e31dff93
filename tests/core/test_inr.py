"""INR (criteria §9): a unitless ratio in the catalogue, imported from CSV and FHIR, never
converted, refused with a sentence when its unit or value is wrong."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core.capture.fhir import import_fhir
from core.capture.importing import import_file
from core.store.models import LabResult
from core.vocabulary.units import (
    ANALYTES,
    LOINC_TO_ANALYTE,
    Evidence,
    accepted_units,
    check_plausibility,
    conversion_factor,
    resolve_analyte,
)
from tests.core.test_fhir import bundle, obs, patient
from tests.core.test_importing import NOW, PATIENTS, labs

INR = ANALYTES["inr"]


def test_inr_is_a_unitless_ratio_with_the_criteria_numbers():
    assert (INR.name, INR.unit, INR.panel) == ("INR", "ratio", "coagulation")
    assert (INR.ref_low, INR.ref_high, INR.ref_evidence) == (0.8, 1.2, Evidence.UNCONFIRMED)
    lim = INR.limits
    assert (lim.hard_low, lim.hard_high, lim.soft_low, lim.soft_high) == (0.5, 20, None, 10)
    # both codes are [UNCONFIRMED] in criteria §9: kept apart from the confirmed ones
    assert INR.loinc == () and INR.loinc_unconfirmed == ("6301-6", "34714-6")
    assert {LOINC_TO_ANALYTE["6301-6"], LOINC_TO_ANALYTE["34714-6"]} == {"inr"}
    assert resolve_analyte("6301-6") is INR and resolve_analyte("INR") is INR


@pytest.mark.parametrize(
    ("unit", "factor"),
    [
        pytest.param("", 1.0, id="blank"),
        pytest.param("ratio", 1.0, id="ratio"),
        pytest.param("{INR}", 1.0, id="ucum-annotation"),
        pytest.param("INR", 1.0, id="INR"),
        pytest.param(" {ratio} ", 1.0, id="ucum-ratio-padded"),
        pytest.param("s", None, id="pt-seconds-refused"),
        pytest.param("sec", None, id="pt-sec-refused"),
        pytest.param("%", None, id="pt-percent-refused"),
        pytest.param("mg/dL", None, id="mass-unit-refused"),
    ],
)
def test_inr_units_are_one_to_one_and_pt_units_are_refused(unit, factor):
    assert conversion_factor(INR, unit) == factor


def test_accepted_units_lists_spellings_that_convert_back():
    shown = accepted_units(INR)
    assert shown == ["ratio", "{ratio}", "INR", "{INR}"]
    assert all(conversion_factor(INR, u) == 1.0 for u in shown)
    assert INR.unit in shown  # the entry form presets the canonical unit


@pytest.mark.parametrize(
    ("value", "ok", "confirm"),
    [
        pytest.param(0.49, False, False, id="0.49-refused"),
        pytest.param(0.5, True, False, id="0.5-accepted"),
        pytest.param(10, True, False, id="10-accepted"),
        pytest.param(10.1, True, True, id="10.1-needs-confirmation"),
        pytest.param(20, True, True, id="20-needs-confirmation"),
        pytest.param(20.1, False, False, id="20.1-refused"),
    ],
)
def test_inr_plausibility_limits(value, ok, confirm):
    p = check_plausibility(INR, value)
    assert (p.ok, p.needs_confirmation) == (ok, confirm)


@pytest.fixture
def ward(engine):
    report = import_file(engine, PATIENTS, "patients.csv", now=NOW)
    assert report.ok, report.errors
    return engine


def _stored(engine):
    with engine.connect() as c:
        return [(r.analyte, r.value, r.unit, r.original_unit, r.loinc)
                for r in c.execute(select(LabResult).order_by(LabResult.id))]


def test_csv_accepts_inr_by_short_code_or_loinc_and_keeps_the_value(ward):
    data = labs("P001,1,inr,1.3,", "P001,2,6301-6,1.6,{INR}", "P001,3,INR,2.2,ratio",
                "P001,4,inr,1.1,INR")
    report = import_file(ward, data, "labs.csv", now=NOW)
    assert report.ok, [str(e) for e in report.errors]
    assert [(a, v, u) for a, v, u, _o, _l in _stored(ward)] == [
        ("inr", 1.3, "ratio"), ("inr", 1.6, "ratio"), ("inr", 2.2, "ratio"),
        ("inr", 1.1, "ratio")]


def test_csv_loinc_column_must_match_inr(ward):
    data = labs("P001,1,inr,1.3,ratio,34714-6", "P001,2,inr,1.4,ratio,3255-7",
                header="patient_id,day,analyte,value,unit,loinc")
    report = import_file(ward, data, "labs.csv", now=NOW)
    assert [(e.row, e.column) for e in report.errors] == [(3, "loinc")]


@pytest.mark.parametrize(
    ("row", "column", "message"),
    [
        pytest.param("P001,1,inr,14,s", "unit",
                     "'s' is not a unit accepted for INR (accepted: ratio, {ratio}, INR, {INR})",
                     id="pt-seconds"),
        pytest.param("P001,1,inr,0.2,ratio", "value",
                     "INR 0.2 ratio is outside the possible range (0.5–20 ratio)",
                     id="below-hard-limit"),
        pytest.param("P001,1,6301-6,25,{INR}", "value",
                     "INR 25 ratio is outside the possible range", id="above-hard-limit"),
        pytest.param("P001,1,inr,12,ratio", "value", "INR 12 ratio is unusual",
                     id="soft-limit-needs-confirmation"),
    ],
)
def test_csv_refuses_a_bad_inr_with_a_sentence_and_writes_nothing(ward, row, column,
                                                                   message):
    report = import_file(ward, labs(row), "labs.csv", now=NOW)
    assert not report.ok
    assert [(e.row, e.column) for e in report.errors] == [(2, column)]
    assert message in report.errors[0].message, report.errors[0].message
    assert _stored(ward) == []


def test_csv_inr_above_the_soft_limit_is_kept_when_confirmed(ward):
    report = import_file(ward, labs("P001,1,inr,12,ratio"), "labs.csv", now=NOW,
                         confirm_unusual=True)
    assert report.ok, [str(e) for e in report.errors]
    assert [v for _a, v, *_ in _stored(ward)] == [12]


@pytest.mark.parametrize("unit", ["{INR}", "INR", "ratio"])
def test_fhir_accepts_inr_by_loinc(engine, unit):
    data = bundle(patient(), obs("o1", "6301-6", 1.7, unit))
    report = import_fhir(engine, data, "inr.json", now=NOW)
    assert report.ok, [str(e) for e in report.errors]
    assert _stored(engine) == [("inr", 1.7, "ratio", unit, "6301-6")]


def test_fhir_refuses_pt_seconds_sent_under_the_inr_code(engine):
    report = import_fhir(engine, bundle(patient(), obs("o1", "6301-6", 13.2, "s")), "inr.json",
                         now=NOW)
    assert not report.ok
    assert any("not a unit accepted for INR" in e.message for e in report.errors), [
        str(e) for e in report.errors]
    assert _stored(engine) == []
