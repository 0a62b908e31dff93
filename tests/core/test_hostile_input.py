"""Hostile text in every free-text field of every import kind and of the entry form: HTML and
script tags, SQL fragments, spreadsheet formula prefixes, unicode (emoji, RTL override,
combining marks) are stored verbatim as text; text longer than its column is refused with a
sentence naming the limit. Files over the upload limit are refused before reading. SQLite and
PostgreSQL."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from core.capture.entry import enter_day
from core.capture.importing import MAX_UPLOAD_BYTES, TABLES, import_file
from core.store.models import AuditLog, CourseEvent, Episode, Patient

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)

HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '"><svg/onload=alert(1)>',
    "'; DROP TABLE patient; --",
    "Robert'); DELETE FROM labresult WHERE ('1'='1",
    "1 OR 1=1",
    '=HYPERLINK("http://evil.example","click")',
    "=1+1", "+1+1", "-1+1", "@SUM(A1:A9)",
    "Zoë 😀 中文 עברית",
    "\u202eevil\u202c",  # right-to-left override
    "e\u0301\u0301\u0301",  # combining marks
    "a,b;c\"d'e",  # CSV metacharacters
    "<b>x</b>", "<i>", "';--", "=A1", "@x", "😀",
]

BASE = {
    "patients": {"patient_id": "P1", "infusion_date": "2026-11-01", "product": "axi-cel"},
    "observations": {"patient_id": "P1", "kind": "temperature", "value": "38.1"},
    "episodes": {"patient_id": "P1", "kind": "CRS", "grade": "1"},
    "treatments": {"patient_id": "P1", "drug": "tocilizumab", "dose": "8",
                   "dose_unit": "mg/kg", "route": "IV"},
    "events": {"patient_id": "P1", "kind": "progression"},
}
TIME_COLUMN = {"observations": "day", "episodes": "onset_day", "treatments": "day",
               "events": "day"}
# every free-text column a file may carry (the others are numbers, dates or vocabularies)
FIELDS = [("patients", c) for c in ("patient_id", "product", "initials", "bed", "sex",
                                    "disease", "ward")] + [
    ("observations", "note"), ("episodes", "note"), ("treatments", "dose_unit"),
    ("treatments", "route"), ("events", "note")]


def _limit(kind: str, column: str) -> int:
    model = Patient if kind == "patients" else TABLES[kind]
    return int(model.__table__.columns[column].type.length)  # type: ignore[attr-defined]


def _csv(rows: list[dict[str, str]]) -> bytes:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue().encode()


def _rows(kind: str, column: str, values: list[str]) -> list[dict[str, str]]:
    rows = []
    for i, v in enumerate(values):
        row = dict(BASE[kind])
        if kind == "patients" and column != "patient_id":
            row["patient_id"] = f"Q{i}"
        if kind in TIME_COLUMN:
            row[TIME_COLUMN[kind]] = str(1 + i / 2)
        row[column] = v
        rows.append(row)
    return rows


@pytest.fixture
def ward(store):  # type: ignore[no-untyped-def]
    assert import_file(store, _csv([BASE["patients"]]), "p.csv", now=NOW).ok
    return store


@pytest.mark.parametrize(("kind", "column"), FIELDS, ids=[f"{k}.{c}" for k, c in FIELDS])
def test_hostile_text_is_stored_verbatim(ward, kind: str, column: str) -> None:  # type: ignore[no-untyped-def]
    limit = _limit(kind, column)
    values = [h for h in HOSTILE if len(h) <= limit]
    assert len(values) >= 8
    if kind == "patients" and column == "patient_id":
        values = [v for v in values if v != "P1"]
    report = import_file(ward, _csv(_rows(kind, column, values)), "hostile.csv", kind=kind,
                         now=NOW)
    assert report.ok, [str(e) for e in report.errors]
    assert report.rows_new == len(values)
    model = Patient if kind == "patients" else TABLES[kind]
    with ward.connect() as c:
        stored = set(c.execute(select(getattr(model, column))).scalars())
    assert set(values) <= stored  # byte for byte, nothing escaped, stripped or executed
    with ward.connect() as c:  # the SQL fragments did nothing
        assert c.execute(select(func.count()).select_from(Patient)).scalar_one() >= 1


@pytest.mark.parametrize(("kind", "column"), FIELDS, ids=[f"{k}.{c}" for k, c in FIELDS])
def test_text_longer_than_its_column_is_refused_with_the_limit(ward, kind: str,
                                                               column: str) -> None:  # type: ignore[no-untyped-def]
    limit = _limit(kind, column)
    long = ("<script>" + "é" * limit)[:limit + 1]
    report = import_file(ward, _csv(_rows(kind, column, ["ok", long])), "long.csv", kind=kind,
                         now=NOW)
    assert not report.ok and not report.written
    errors = [e for e in report.errors if e.row == 3 and e.column == column]
    assert errors, [str(e) for e in report.errors]
    assert any("longer than" in e.message or f"at most {limit:,}" in e.message
               for e in errors), [str(e) for e in errors]
    assert len(errors) == 1  # one sentence per cell


def test_entry_notes_and_correction_reasons_keep_hostile_text(ward) -> None:  # type: ignore[no-untyped-def]
    from core.capture.corrections import correct

    note = "<script>alert('x')</script> =1+1 '; DROP TABLE episode; -- 😀"
    res = enter_day(ward, "P1", datetime(2026, 11, 3, 8), labs=[("crp", "12", "mg/L")],
                    episodes=[{"kind": "CRS", "grade": "1", "onset": datetime(2026, 11, 2, 8),
                               "note": note}],
                    events=[{"kind": "progression", "note": "@" + note}],
                    user="<b>nurse</b>", now=NOW)
    assert res.ok, [str(e) for e in res.errors]
    new_id = correct(ward, "labs", res.ids["labs"][0], {"value": "13"}, f"other: {note}",
                     "=evil()", now=NOW)
    with ward.connect() as c:
        assert c.execute(select(Episode.note)).scalar_one() == note
        assert c.execute(select(CourseEvent.note)).scalar_one() == "@" + note
        from core.store.models import LabResult

        row = c.execute(select(LabResult.correction_reason, LabResult.entered_by)
                        .where(LabResult.id == new_id)).one()
        assert row == (f"other: {note}", "=evil()")
        reasons = set(c.execute(select(AuditLog.reason)).scalars())
    assert f"other: {note}" in reasons


def test_an_overlong_entry_note_is_refused_with_a_sentence(ward) -> None:  # type: ignore[no-untyped-def]
    res = enter_day(ward, "P1", datetime(2026, 11, 3, 8),
                    events=[{"kind": "progression", "note": "x" * 1001}], user="n", now=NOW)
    assert not res.ok and not res.written
    assert "at most 1,000" in str(res.errors[0]), res.errors


def test_a_file_over_the_upload_limit_is_refused_before_reading(ward) -> None:  # type: ignore[no-untyped-def]
    data = b"patient_id,day,analyte,value,unit\n" + b"P1,1,crp,5,mg/L\n" * (
        MAX_UPLOAD_BYTES // 16 + 1)
    assert len(data) > MAX_UPLOAD_BYTES == 50 * 2**20
    report = import_file(ward, data, "huge.csv", now=NOW)
    assert not report.ok and not report.written
    assert "the largest file accepted is 50 MB" in report.errors[0].message
    assert "nothing was saved" in report.errors[0].message
    assert "rejected" in report.summary()


# ---------------------------------------------------------------------------- CSV exports

FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cells_are_inert(text: str) -> int:
    """Every cell that a spreadsheet would run as a formula is a plain number; returns the
    number of neutralised (quote-prefixed) cells."""
    quoted = 0
    for row in csv.reader(io.StringIO(text)):
        for cell in row:
            if cell.startswith("'") and cell[1:2] in FORMULA:
                quoted += 1
            elif cell.startswith(FORMULA):
                float(cell)  # only a negative or signed number may start like this
    return quoted


def test_csv_exports_neutralise_formula_injection(store) -> None:  # type: ignore[no-untyped-def]
    from core.store.audit_trail import audit_csv, audit_log
    from core.views.exporting import export_patient_csv

    pid = '=HYPERLINK("http://evil.example","x")'
    patients = _csv([{**BASE["patients"], "patient_id": pid, "disease": "@SUM(A1)"}])
    assert import_file(store, patients, "p.csv", now=NOW, user="+cmd|' /C calc'!A0").ok
    labs = _csv([{"patient_id": pid, "day": "-2", "analyte": "crp", "value": "12",
                  "unit": "mg/L"}])
    assert import_file(store, labs, "=labs.csv", now=NOW, user="-2+3").ok
    exported = export_patient_csv(store, pid, "UTC")
    assert "'" + pid.replace('"', '""') in exported
    assert _cells_are_inert(exported) >= 1
    trail = audit_csv(audit_log(store))
    assert _cells_are_inert(trail) >= 2  # the two actors
    assert "'+cmd|" in trail and "'-2+3" in trail
