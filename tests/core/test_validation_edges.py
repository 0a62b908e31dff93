"""Edge inputs the validator (core/capture/importing/validate) once crashed on, or let through:
each is refused with a row error naming the row, the column and what was expected, and the
database is left as it was; an observation's different value on re-import is a conflict.

CSV cases go through `import_file` (what `python -m core import` runs); the HL7 and FHIR cases
through the prepare function with the frame those receivers build (`pd.DataFrame(records,
dtype=str)`, where an absent unit or value is NaN).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.capture.importing import TABLES, Context, RowError, import_file
from core.capture.importing.legacy import LEGACY_OBSERVATION_CONTENT, same_as_legacy
from core.capture.importing.validate import PREPARE
from core.capture.importing.writing import _hash
from core.store.db import init_db, make_engine
from core.store.models import AuditLog, ImportBatch, Observation, Patient

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
INFUSED = date(2026, 11, 10)
PATIENTS = f"patient_id,infusion_date,product\nP001,{INFUSED},axi-cel\n".encode()
COUNTED = [Patient, ImportBatch, AuditLog, *TABLES.values()]

FINER = ("The time has more than 6 decimal places of seconds; give it to the microsecond at "
         "most, like 2026-11-03T08:30:00.123456.")
NOT_A_DAY = "The day must be a number of days after infusion, like 3 or -5 or 3.5."
FAR_DAY = ("The day is more than 36,525 days from the infusion; give the number of days after "
           "infusion, like 3 or -5.")
WHOLE_DAY = "The day must be a whole day after infusion, like 3 or -2."
CONFLICT = ("A different value is already stored for this patient, item and time. To change "
            "it, correct the stored value with a reason instead of re-importing.")
# the conflict's column comes from core/capture/importing/__init__.py `_check_existing`,
# which names "value" only for a frame with a `value` column (labs); observations get ""
CONFLICT_COLUMN = "value"

LABS = "patient_id,day,analyte,value,unit"
LABS_AT = "patient_id,collected_at,analyte,value,unit"
OBS = "patient_id,day,kind,value"
OBS_AT = "patient_id,observed_at,kind,value"
EPISODES = "patient_id,kind,grade,onset_day"
MISSING = "patient_id,day,analyte,reason"

CSV_CASES = [
    pytest.param(EPISODES, "P001,CRS,2.5,1", "grade", "2.5",
                 "The grade must be a whole number from 0 to 5.", id="episode-grade-2.5"),
    pytest.param(EPISODES, "P001,ICANS,inf,1", "grade", "inf",
                 "The grade must be a whole number from 0 to 5.", id="episode-grade-inf"),
    pytest.param(MISSING, "P001,3.5,ferritin,not_drawn", "day", "3.5", WHOLE_DAY,
                 id="missing-day-3.5"),
    pytest.param(MISSING, "P001,inf,ferritin,not_drawn", "day", "inf", WHOLE_DAY,
                 id="missing-day-inf"),
    pytest.param(MISSING, "P001,1e20,ferritin,not_drawn", "day", "1e20", FAR_DAY,
                 id="missing-day-1e20"),
    pytest.param(LABS_AT, "P001,2026-11-12T08:30:00.1234567,ferritin,800,ng/mL",
                 "collected_at", "2026-11-12T08:30:00.1234567", FINER, id="lab-time-7-decimals"),
    pytest.param(OBS_AT, "P001,2026-11-12T08:30:00.123456789+01:00,temperature,38",
                 "observed_at", "2026-11-12T08:30:00.123456789+01:00", FINER,
                 id="observation-time-9-decimals-with-offset"),
    pytest.param(LABS, "P001,inf,ferritin,800,ng/mL", "day", "inf", NOT_A_DAY, id="lab-day-inf"),
    pytest.param(LABS, "P001,-inf,ferritin,800,ng/mL", "day", "-inf", NOT_A_DAY,
                 id="lab-day-minus-inf"),
    pytest.param(LABS, "P001,1e20,ferritin,800,ng/mL", "day", "1e20", FAR_DAY, id="lab-day-1e20"),
    pytest.param(OBS, "P001,inf,temperature,38", "day", "inf", NOT_A_DAY,
                 id="observation-day-inf"),
    pytest.param("patient_id,kind,grade,onset_day", "P001,CRS,2,1e20", "onset_day", "1e20",
                 FAR_DAY, id="episode-onset-day-1e20"),
    pytest.param(OBS, "P001,1,temperature,nan", "value", "nan",
                 "Temperature must be a number, not 'nan'.", id="observation-value-nan-text"),
    pytest.param(OBS, "P001,1,vasopressors,inf", "value", "inf",
                 "Vasopressors (number, excluding vasopressin) must be a number, not 'inf'.",
                 id="observation-integer-value-inf"),
    pytest.param(OBS, "P001,1,temperature,", "value", "",
                 "A value is required: Temperature is a number in °C.",
                 id="observation-value-blank"),
]


def counts(engine: Engine) -> dict[str, int]:
    with Session(engine) as s:
        return {m.__name__: s.execute(select(func.count()).select_from(m)).scalar_one()
                for m in COUNTED}


def run(engine: Engine, data: bytes):  # noqa: ANN201 - ImportReport
    return import_file(engine, data, "edge.csv", now=NOW)


@pytest.fixture(scope="module")
def ward(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """A real SQLite file with one patient (the CSV cases are all refused: it stays so)."""
    path: Path = tmp_path_factory.mktemp("edges") / "ward.db"
    engine = make_engine(f"sqlite:///{path}")
    init_db(engine)
    assert run(engine, PATIENTS).ok
    return engine


@pytest.mark.parametrize(("header", "row", "column", "value", "message"), CSV_CASES)
def test_a_bad_csv_cell_is_a_row_error_and_nothing_is_written(
        ward: Engine, header: str, row: str, column: str, value: str, message: str) -> None:
    before = counts(ward)
    report = run(ward, f"{header}\n{row}\n".encode())
    assert report.errors == [RowError(2, column, value, message)]
    assert not report.written
    assert counts(ward) == before


def test_a_day_finer_than_a_microsecond_is_kept_to_the_nearest_microsecond(
        tmp_path: Path) -> None:
    """A decimal day is valid input (design.md): its float fraction rarely falls on a whole
    microsecond, so the time is rounded to one (it crashed); re-importing adds nothing."""
    engine = make_engine(f"sqlite:///{tmp_path / 'day.db'}")
    init_db(engine)
    assert run(engine, PATIENTS).ok
    data = f"{LABS}\nP001,2.345678901,ferritin,800,ng/mL\n".encode()
    first = run(engine, data)
    assert first.errors == [] and first.rows_new == 1
    with Session(engine) as s:
        stored = s.execute(select(TABLES["labs"].collected_at)).scalar_one()
    # 2.345678901 days = 2 days 8:17:46.6570464 -> .657046
    assert stored.replace(tzinfo=None) == datetime(2026, 11, 12, 8, 17, 46, 657046)
    again = run(engine, data)
    assert again.errors == [] and (again.rows_new, again.rows_already_present) == (0, 1)


# HL7 (core.capture.hl7.check._validated) and FHIR (core.capture.fhir.plan._frame) build their
# frames with pd.DataFrame(records, dtype=str): an absent unit or value arrives as NaN
def _lab(analyte: str, unit: object, when: str = "2026-11-12T08:30:00+00:00",
         value: str = "2") -> dict:
    return {"patient_id": "P001", "collected_at": when, "analyte": analyte, "value": value,
            "unit": unit, "qualifier": "", "ref_low": "", "ref_high": "", "loinc": ""}


def _obs(value: object, when: str = "2026-11-12T08:30:00+00:00") -> dict:
    return {"patient_id": "P001", "observed_at": when, "kind": "temperature", "value": value,
            "unit": "°C", "note": ""}


FRAME_CASES = [
    pytest.param("labs", [_lab("fibrinogen", None)], "unit",
                 "The unit is missing: give the unit Fibrinogen was measured in (accepted: "
                 "mg/dL, g/L, or another UCUM unit of the same kind).", id="fibrinogen-no-unit"),
    pytest.param("labs", [_lab("hemoglobin", float("nan"))], "unit",
                 "The unit is missing: give the unit Hemoglobin was measured in (accepted: "
                 "g/dL, g/L, mmol/L, or another UCUM unit of the same kind).",
                 id="hemoglobin-no-unit"),
    pytest.param("labs", [_lab("platelets", None)], "unit",
                 "The unit is missing: give the unit Platelets was measured in (accepted: "
                 "10^9/L, 10^3/µL, /µL, K/µL, thou/µL, cells/µL, cells/mm3, or another UCUM "
                 "unit of the same kind).", id="platelets-no-unit"),
    pytest.param("observations", [_obs(None)], "value",
                 "A value is required: Temperature is a number in °C.",
                 id="observation-value-missing"),
]


def _prepare(engine: Engine, kind: str, records: list[dict],
             tz: str = "UTC") -> tuple[pd.DataFrame, Context]:
    ctx = Context(tz=tz, now=NOW, patients={"P001": (1, INFUSED)})
    before = counts(engine)
    prepared = PREPARE[kind](pd.DataFrame(records, dtype=str), ctx)
    assert counts(engine) == before
    return prepared, ctx


def test_a_unitless_ratio_needs_no_unit_from_hl7_or_fhir_either(ward: Engine) -> None:
    """INR accepts an empty unit in a CSV: an absent one (NaN) is read the same way, and a
    value past its limits is refused with the limit's sentence (a unit mix-up check on the
    absent unit crashed)."""
    prepared, ctx = _prepare(ward, "labs", [_lab("inr", None, value="1.3")])
    assert ctx.errors == [] and list(prepared["value"]) == [1.3]
    _prepared, ctx = _prepare(ward, "labs", [_lab("inr", None, value="25")])
    assert [(e.row, e.column, e.value) for e in ctx.errors] == [(2, "value", "25")]
    assert "INR" in ctx.errors[0].message and "typing or unit error" in ctx.errors[0].message


@pytest.mark.parametrize(("kind", "records", "column", "message"), FRAME_CASES)
def test_an_absent_cell_from_hl7_or_fhir_is_a_row_error(
        ward: Engine, kind: str, records: list[dict], column: str, message: str) -> None:
    _prepared, ctx = _prepare(ward, kind, records)
    assert ctx.errors == [RowError(2, column, "", message)]


TIMES = [
    # (time cells, ward zone, the UTC times expected): unstripped, with an offset, beside a
    # local time (pandas said "Already tz-aware" or "Mixed timezones")
    pytest.param(["2026-11-12T08:30+01:00 "], "UTC", ["2026-11-12 07:30"], id="offset-space"),
    pytest.param(["2026-11-12T08:30+01:00 ", "2026-11-12T09:30"], "Europe/Berlin",
                 ["2026-11-12 07:30", "2026-11-12 08:30"], id="offset-space-beside-local"),
    pytest.param([" 2026-11-12T08:30Z", "2026-11-12T10:30+01", "2026-11-12T11:30"],
                 "Europe/Berlin", ["2026-11-12 08:30", "2026-11-12 09:30", "2026-11-12 10:30"],
                 id="short-offset-beside-local"),
]


@pytest.mark.parametrize(("cells", "tz", "expected"), TIMES)
@pytest.mark.parametrize("kind", ["labs", "observations"])
def test_a_time_with_an_offset_and_spaces_is_read_with_its_offset(
        ward: Engine, kind: str, cells: list[str], tz: str, expected: list[str]) -> None:
    records = [_lab("ferritin", "ng/mL", when=c, value="800") if kind == "labs"
               else _obs("38", when=c) for c in cells]
    prepared, ctx = _prepare(ward, kind, records, tz=tz)
    assert ctx.errors == []
    column = "collected_at" if kind == "labs" else "observed_at"
    assert list(prepared[column]) == [pd.Timestamp(e, tz="UTC") for e in expected]


# --- observations: a different value on re-import is a conflict (SQLite and PostgreSQL) ---

def _observation(kind: str, value: str) -> bytes:
    return f"{OBS}\nP001,1,{kind},{value}\n".encode()


@pytest.mark.parametrize(("kind", "first", "other"), [
    pytest.param("temperature", "38.5", "39.5", id="number"),
    pytest.param("oxygen_device", "low_flow_nc", "high_flow_nc", id="choice"),
    pytest.param("hypotension", "yes", "no", id="yes-no"),
])
def test_a_different_observation_value_is_refused_and_the_same_adds_nothing(
        store: Engine, kind: str, first: str, other: str) -> None:
    assert run(store, PATIENTS).ok
    added = run(store, _observation(kind, first))
    assert added.errors == [] and added.rows_new == 1
    same = run(store, _observation(kind, first))
    assert same.errors == [] and (same.rows_new, same.rows_already_present) == (0, 1)
    before = counts(store)
    changed = run(store, _observation(kind, other))
    assert changed.errors == [RowError(2, CONFLICT_COLUMN, "", CONFLICT)]
    assert not changed.written
    assert counts(store) == before


def test_an_observation_stored_with_the_old_hash_is_compared_by_value(store: Engine) -> None:
    """Rows written before the value key was fixed all carry one content hash: a re-import
    compares with their values (core.capture.importing.legacy): the same value is no conflict."""
    assert run(store, PATIENTS).ok
    assert run(store, _observation("temperature", "38.5")).rows_new == 1
    with Session(store) as s:
        s.execute(update(Observation).values(content_hash=LEGACY_OBSERVATION_CONTENT))
        s.commit()
        pk = s.execute(select(Patient.id)).scalar_one()
        same = []
        for value in ("38.5", "39.5"):
            ctx = Context(tz="UTC", now=NOW, patients={"P001": (pk, INFUSED)})
            frame = pd.DataFrame([{"patient_id": "P001", "day": "1", "kind": "temperature",
                                   "value": value}], dtype=str)
            prepared = PREPARE["observations"](frame, ctx)
            assert ctx.errors == []
            prepared["_row_key"] = _hash("observations", prepared["_natural"])
            stored_differs = pd.Series(True, index=prepared.index)
            same += list(same_as_legacy(s, "observations", prepared, stored_differs))
    assert same == [True, False]


def test_a_re_import_over_an_old_hash_row_is_judged_by_its_value(store: Engine) -> None:
    """Through the import itself: over a row stored with the old hash, the same value is
    already present and a different one is refused on its value column."""
    assert run(store, PATIENTS).ok
    assert run(store, _observation("temperature", "38.5")).rows_new == 1
    with Session(store) as s:
        s.execute(update(Observation).values(content_hash=LEGACY_OBSERVATION_CONTENT))
        s.commit()
    same = run(store, _observation("temperature", "38.5"))
    assert same.errors == [] and (same.rows_new, same.rows_already_present) == (0, 1)
    before = counts(store)
    changed = run(store, _observation("temperature", "39.5"))
    assert changed.errors == [RowError(2, "value", "", CONFLICT)]
    assert counts(store) == before
