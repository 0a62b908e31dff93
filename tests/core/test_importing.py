"""CSV import on SQLite and PostgreSQL: every bad input is refused with row, column and a
sentence, and the database is left exactly as it was."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import MetaData, select, text

from core.capture.importing import import_file
from core.store.models import LabResult, Patient

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)

PATIENTS = b"""patient_id,infusion_date,product,initials,bed,birth_year,lymphodepletion_start
P001,2026-11-10,axi-cel,AB,12,1960,2026-11-05
P002,2026-11-01,tisa-cel,CD,14,2018,
"""


def run(engine, data: bytes, **kw):
    kw.setdefault("now", NOW)
    return import_file(engine, data, "test.csv", **kw)


def snapshot(engine) -> dict[str, list]:
    meta = MetaData()
    meta.reflect(engine)
    with engine.connect() as c:
        return {t.name: sorted(map(repr, c.execute(select(t)).all()))
                for t in meta.sorted_tables if t.name != "alembic_version"}


@pytest.fixture
def ward(store):
    report = run(store, PATIENTS)
    assert report.ok, report.errors
    return store


def labs(*rows: str, header: str = "patient_id,day,analyte,value,unit") -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


BAD_FILES = [
    pytest.param(b"", None, 0, "", "empty", id="empty-file"),
    pytest.param(b"   \n", None, 0, "", "empty", id="blank-file"),
    pytest.param(b"patient_id,day,analyte,value,unit\n", None, 0, "", "no data rows",
                 id="header-only"),
    pytest.param("patient_id,day,analyte,value,unit\nP001,1,ferritin,800,µg/L\n"
                 .encode("latin-1"), None, 2, "", "not UTF-8", id="not-utf8"),
    pytest.param(b"patient_id;day;analyte;value;unit\nP001;1;ferritin;800;ng/mL\n", None, 1, "",
                 "semicolons", id="semicolon-separated"),
    pytest.param(labs("P001,1,800,ng/mL", header="patient_id,day,value,unit"), "labs", 1,
                 "analyte", "Required column 'analyte' is missing", id="missing-column"),
    pytest.param(labs("P404,1,ferritin,800,ng/mL"), None, 2, "patient_id",
                 "No patient with study ID 'P404'", id="unknown-patient"),
    pytest.param(labs("P001,1,ferritine,800,ng/mL"), None, 2, "analyte", "Unknown analyte",
                 id="unknown-analyte"),
    pytest.param(labs("P001,1,crp,5,mmol/L"), None, 2, "unit", "not a unit accepted for CRP",
                 id="unit-not-accepted"),
    pytest.param(labs("P001,1,anc,0.5,g/L"), None, 2, "unit", "not a unit accepted for ANC",
                 id="count-in-mass-unit"),
    pytest.param(labs("P001,1,ferritin,lots,ng/mL"), None, 2, "value", "must be a number",
                 id="non-numeric-value"),
    pytest.param(labs("P001,1,ferritin,,ng/mL"), None, 2, "value", "value is required",
                 id="empty-value"),
    pytest.param(labs("P001,1,ferritin,-3,ng/mL"), None, 2, "value",
                 "outside the possible range", id="negative-value"),
    pytest.param(labs("P001,1,ferritin,5000000,ng/mL"), None, 2, "value",
                 "5,000,000 ng/mL is outside the possible range", id="beyond-hard-limit"),
    pytest.param(labs("P001,1,fibrinogen,2.1,mg/dL"), None, 2, "value", "was it g/L?",
                 id="unit-mixup-fibrinogen"),
    pytest.param(labs("P001,1,hemoglobin,95,g/dL"), None, 2, "value", "was it g/L?",
                 id="unit-mixup-hemoglobin"),
    pytest.param(labs("P001,1,ferritin,300000,ng/mL"), None, 2, "value",
                 "--confirm-unusual", id="soft-limit-needs-confirmation"),
    pytest.param(labs("P001,2026-13-40,ferritin,800,ng/mL",
                      header="patient_id,collected_at,analyte,value,unit"), None, 2,
                 "collected_at", "Not a date", id="unparseable-date"),
    pytest.param(labs("P001,soon,ferritin,800,ng/mL"), None, 2, "day",
                 "must be a number of days", id="unparseable-day"),
    pytest.param(labs("P001,2026-12-24,ferritin,800,ng/mL",
                      header="patient_id,collected_at,analyte,value,unit"), None, 2,
                 "collected_at", "in the future", id="future-time"),
    pytest.param(labs("P001,30,ferritin,800,ng/mL"), None, 2, "day", "in the future",
                 id="future-day"),
    pytest.param(labs("P001,-61,ferritin,800,ng/mL"), None, 2, "day",
                 "more than 60 days before the infusion", id="too-long-before-infusion"),
    pytest.param(labs("P001,,ferritin,800,ng/mL"), None, 2, "collected_at or day",
                 "A time is required", id="no-time"),
    pytest.param(labs("P001,1,ferritin,800,ng/mL", "P001,2,crp,5,mg/L",
                      "P001,1,ferritin,800,ng/mL"),
                 None, 4, "analyte", "Duplicate of row 2", id="duplicate-in-file"),
    pytest.param(labs("P001,1,ferritin,800,ng/mL,>>",
                      header="patient_id,day,analyte,value,unit,qualifier"), None, 2,
                 "qualifier", "must be < or >", id="bad-qualifier"),
    pytest.param(labs("P001,1,ferritin,800,ng/mL,1742-6",
                      header="patient_id,day,analyte,value,unit,loinc"), None, 2, "loinc",
                 "not a code for ferritin", id="loinc-disagrees"),
    pytest.param(b"patient_id,observed_at,kind,value\nP001,2026-11-12,temperature,98.6\n",
                 None, 2, "value", "outside the possible range", id="temperature-in-F"),
    pytest.param(b"patient_id,day,kind,value\nP001,1,mood,good\n", "observations", 2, "kind",
                 "Unknown observation kind", id="unknown-observation"),
    pytest.param(b"patient_id,kind,grade,onset_day,resolved_day\nP001,CRS,2,5,3\n", None, 2,
                 "resolved_day", "resolves before it starts", id="episode-ends-before-start"),
    pytest.param(b"patient_id,kind,grade,onset_day\nP001,CRS,7,2\n", None, 2, "grade",
                 "from 0 to 5", id="episode-grade-out-of-range"),
    pytest.param(b"patient_id,day,drug\nP001,2,aspirin-ish\n", None, 2, "drug",
                 "Unknown drug", id="unknown-drug"),
    pytest.param(b"patient_id,kind,day\nP001,relapse,8\n", None, 2, "kind",
                 "Event kind must be one of", id="unknown-event"),
    pytest.param(b"patient_id,infusion_date,product\nP003,2026-02-30,axi-cel\n", None, 2,
                 "infusion_date", "must be a date", id="patient-bad-date"),
    pytest.param(b"patient_id,infusion_date,product\nP001,2026-11-11,axi-cel\n", None, 2,
                 "patient_id", "already registered", id="patient-conflicts"),
]


@pytest.mark.parametrize(("data", "kind", "row", "column", "message"), BAD_FILES)
def test_bad_file_is_refused_with_row_column_and_sentence_and_nothing_changes(
        ward, data, kind, row, column, message):
    before = snapshot(ward)
    report = run(ward, data, kind=kind)
    assert not report.ok and not report.written
    hits = [e for e in report.errors if message in e.message]
    assert hits, [str(e) for e in report.errors]
    assert hits[0].row == row
    assert hits[0].column == column
    assert snapshot(ward) == before


def test_a_file_with_one_bad_row_writes_none_of_its_good_rows(ward):
    before = snapshot(ward)
    report = run(ward, labs("P001,1,ferritin,800,ng/mL", "P001,2,ferritin,x,ng/mL"))
    assert [e.row for e in report.errors] == [3]
    assert snapshot(ward) == before


def test_units_are_converted_exactly_and_originals_kept(ward):
    report = run(ward, labs(
        "P001,1,fibrinogen,1.4,g/L", "P001,1,anc,700,/uL", "P001,1,platelets,45,x10^9/L",
        "P001,1,bilirubin,34.2,µmol/L", "P001,1,hemoglobin,85,g/L", "P001,1,crp,4.0,mg/dL",
        "P001,1,wbc,1.2,10*9/L", "P001,1,alc,0.3,K/uL"))
    assert report.ok, report.errors
    with ward.connect() as c:
        rows = {r.analyte: r for r in c.execute(select(LabResult))}
    assert rows["fibrinogen"].value == pytest.approx(140)
    assert rows["fibrinogen"].unit == "mg/dL"
    assert (rows["fibrinogen"].original_value, rows["fibrinogen"].original_unit) == ("1.4", "g/L")
    assert rows["anc"].value == pytest.approx(0.7)
    assert rows["platelets"].value == pytest.approx(45)
    assert rows["bilirubin"].value == pytest.approx(2.0)
    assert rows["hemoglobin"].value == pytest.approx(8.5)
    assert rows["crp"].value == pytest.approx(40)
    assert rows["wbc"].value == pytest.approx(1.2)
    assert rows["alc"].value == pytest.approx(0.3)


def test_reimporting_the_same_file_adds_nothing(ward):
    data = labs("P001,1,ferritin,800,ng/mL", "P001,2,ferritin,>2500,ng/mL")
    first = run(ward, data)
    assert (first.rows_new, first.rows_already_present) == (2, 0)
    before = snapshot(ward)
    second = run(ward, data)
    assert second.ok and (second.rows_new, second.rows_already_present) == (0, 2)
    assert snapshot(ward) == before


def test_a_different_value_for_a_stored_time_is_refused(ward):
    assert run(ward, labs("P001,1,ferritin,800,ng/mL")).ok
    before = snapshot(ward)
    report = run(ward, labs("P001,1,ferritin,900,ng/mL"))
    assert not report.ok and "correct the stored value" in report.errors[0].message
    assert snapshot(ward) == before


def test_dry_run_validates_and_writes_nothing(ward):
    before = snapshot(ward)
    report = run(ward, labs("P001,1,ferritin,800,ng/mL"), dry_run=True)
    assert report.ok and report.rows_new == 1 and not report.written
    assert snapshot(ward) == before


def test_censored_values_keep_their_qualifier(ward):
    assert run(ward, labs("P001,3,ferritin,>100000,ng/mL")).ok
    with ward.connect() as c:
        row = c.execute(select(LabResult)).one()
    assert (row.value, row.qualifier, row.original_value) == (100000, ">", ">100000")


def test_day_and_datetime_forms_and_a_bom_are_accepted(ward):
    data = ("\ufeffpatient_id,collected_at,day,analyte,value,unit\n"
            "P001,2026-11-12T08:30:00+01:00,,crp,12,mg/L\nP001,,2.5,crp,15,mg/L\n"
            "P001,2026-11-14,,2276-4,700,ug/L\n").encode()
    report = run(ward, data)
    assert report.ok, report.errors
    with ward.connect() as c:
        times = sorted(r.collected_at for r in c.execute(select(LabResult)))
    got = [t.replace(tzinfo=UTC) if t.tzinfo is None else t for t in times]
    assert got == [datetime(2026, 11, 12, 7, 30, tzinfo=UTC),
                   datetime(2026, 11, 12, 12, 0, tzinfo=UTC),
                   datetime(2026, 11, 14, 0, 0, tzinfo=UTC)]


def test_soft_limit_values_are_accepted_when_confirmed_and_flagged(ward):
    report = run(ward, labs("P001,1,ferritin,300000,ng/mL"), confirm_unusual=True)
    assert report.ok
    with ward.connect() as c:
        assert c.execute(select(LabResult.confirmed_unusual)).scalar_one() is True


def test_an_import_is_audited_with_who_and_which_file(ward):
    assert run(ward, labs("P001,1,ferritin,800,ng/mL"), user="nurse.kim").ok
    with ward.connect() as c:
        rows = c.execute(text("select actor, action, table_name from auditlog")).all()
    assert ("nurse.kim", "import", "labs") in [tuple(r) for r in rows]


def test_other_kinds_import_and_a_last_followup_discharges(ward):
    assert run(ward, b"patient_id,day,kind,value\nP001,1,temperature,38.6\n"
                     b"P001,1,oxygen_device,low flow nc\nP001,1,hemophagocytosis,no\n").ok
    assert run(ward, b"patient_id,kind,grade,onset_day,resolved_day\nP001,CRS,2,1,4\n").ok
    assert run(ward, b"patient_id,day,drug,dose,dose_unit\nP001,2,tocilizumab,8,mg/kg\n").ok
    assert run(ward, b"patient_id,kind,day\nP002,last_followup,19\n").ok
    with ward.connect() as c:
        status = dict(c.execute(select(Patient.patient_id, Patient.status)).all())
    assert status == {"P001": "active", "P002": "discharged"}
