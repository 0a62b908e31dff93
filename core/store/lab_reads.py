"""The single-patient and raw lab reads, and the query pieces the course loader shares.

- `read_lab_frame`: every final lab row (of some patients) in one query, as stored: the
  baseline the loader's benchmark compares against;
- `lab_corrections`, `preliminary_labs`: what the patient page shows beside the plots;
- `use_preliminary` (the site setting `inbound.rules_use_preliminary`), `final_rows` (a
  clinical table's final rows), `pk_subquery` and `empty_frame`, also used by the course
  loader (core.store.loading). Times come back as UTC.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import DateTime, String, select, type_coerce
from sqlalchemy.sql import Select
from sqlmodel import Session, SQLModel, col

from core.store.db import IN_CHUNK, table_of
from core.store.models import LabResult, Patient, PatientStatus, RecordStatus, SiteSetting

FINAL = RecordStatus.FINAL.value
PRELIMINARY_SETTING = "inbound.rules_use_preliminary"
RAW_LAB_COLUMNS = [
    "patient_pk", "lab_id", "analyte", "collected_at", "value", "unit", "qualifier", "ref_low",
    "ref_high", "original_value", "original_unit", "verified_at",
]


def pk_subquery(patient_ids: list[str] | None, active_only: bool) -> Select | None:
    """The patients' primary keys as a subquery, or None for every patient."""
    if patient_ids is None and not active_only:
        return None
    p = table_of(Patient).c  # Core columns: the same SQL as the model's, built faster
    stmt = select(p.id)
    if patient_ids is not None:
        stmt = stmt.where(p.patient_id.in_(patient_ids))
    if active_only:
        stmt = stmt.where(p.status == PatientStatus.ACTIVE.value)
    return stmt


def empty_frame(columns: list[str]) -> pd.DataFrame:
    # from one empty 2-D array: a tenth of the cost of empty Series (a load makes several)
    return pd.DataFrame(np.empty((0, len(columns)), dtype=object), columns=columns)


def _read(session: Session, stmt: Select, columns: list[str]) -> pd.DataFrame:
    """One query into a frame, the rows taken straight from the DBAPI cursor.

    SQLAlchemy compiles the statement and binds its parameters; its per-row Row objects
    (which cost more than the query at 100,000 rows) are skipped: the selected columns need
    no result processing (time columns come as text or aware datetimes, see `_raw_times`).
    """
    result = session.connection().execute(stmt)
    try:
        names = list(result.keys())
        rows = result.cursor.fetchall()
    finally:
        result.close()
    if not rows:
        return empty_frame(columns)
    return pd.DataFrame.from_records(rows, columns=names, coerce_float=True)


def _utc(col: pd.Series) -> pd.Series:
    # SQLite hands back naive UTC text/datetimes, PostgreSQL aware ones: both become UTC.
    return pd.to_datetime(col, utc=True, format="ISO8601")


def _is_time(col: object) -> bool:
    kind = getattr(col, "type", None)
    impl = getattr(kind, "impl", kind)  # UTCDateTime is a TypeDecorator over DateTime
    return isinstance(impl, DateTime) or isinstance(kind, DateTime)


def _raw_times(cols: list[Any], sqlite: bool) -> list[Any]:
    """Time columns without SQLModel's per-row UTC processor: `_utc` parses them in bulk.

    That processor costs more than the query itself on large reads; SQLite stores naive
    UTC text and PostgreSQL returns aware datetimes, both of which `_utc` understands.
    """
    out = []
    for c in cols:
        if _is_time(c):
            c = type_coerce(c, String() if sqlite else DateTime(timezone=True)).label(c.key)
        out.append(c)
    return out


LAB_NAMES = ["id", "analyte", "collected_at", "value", "unit", "qualifier", "ref_low",
             "ref_high", "original_value", "original_unit", "verified_at"]


def final_rows(sqlite: bool, model: type[SQLModel], names: list[str], pks: Select | None,
                time_col: str | None = None, until: datetime | None = None,
                preliminary: bool = True) -> Select:
    """patient_pk and the named columns ("id" read as "lab_id") of a clinical table's final
    rows: of the patients `pks` (None: all), up to `until` (by `time_col`), lab results
    marked preliminary only if `preliminary`. Built from Core columns: the same SQL as the
    model attributes give, at half the cost."""
    c = table_of(model).c
    cols = [c.id.label("lab_id") if n == "id" else c[n] for n in names]
    stmt = select(c.patient_pk, *_raw_times(cols, sqlite)).where(c.status == FINAL)
    if pks is not None:
        stmt = stmt.where(c.patient_pk.in_(pks))
    if time_col is not None and until is not None:
        stmt = stmt.where(c[time_col] <= until)
    if not preliminary:
        stmt = stmt.where(c.preliminary.is_(False))
    return stmt


def setting_on(value: object) -> bool:
    if isinstance(value, str):  # a JSON value read without its column type
        import json

        value = json.loads(value)
    return isinstance(value, dict) and value.get("value") is True


def use_preliminary(session: Session) -> bool:
    """Whether the rules read preliminary lab results (HL7 OBX-11 P, FHIR preliminary): the
    site setting `inbound.rules_use_preliminary`, off unless an admin turns it on."""
    row = session.get(SiteSetting, PRELIMINARY_SETTING)
    return row is not None and setting_on(row.value)


def read_lab_frame(
    session: Session, patient_ids: list[str] | None = None, until: datetime | None = None
) -> pd.DataFrame:
    """Every final lab row (of the given patients) in one query, as stored.

    Columns: RAW_LAB_COLUMNS (collected_at as UTC). The query `load_courses` reads labs with,
    into a frame as stored: the baseline its benchmark compares against.
    """
    stmt = final_rows(session.get_bind().dialect.name == "sqlite", LabResult, LAB_NAMES,
                      pk_subquery(patient_ids, active_only=False), "collected_at", until,
                      use_preliminary(session))
    frame = _read(session, stmt, RAW_LAB_COLUMNS)
    if len(frame):
        frame["collected_at"] = _utc(frame["collected_at"])
        frame["verified_at"] = _utc(frame["verified_at"])
    return frame


def recorded_lab_fields(session: Session, lab_ids: Collection[int]) -> dict[int, tuple[Any, ...]]:
    """lab_id -> the row's fields a finding's evidence records (EvidenceItem.record):
    qualifier, original value, original unit, verified; for the rows a ward read "cited"
    left them out of."""
    c, ids, out = table_of(LabResult).c, sorted(lab_ids), {}
    for i in range(0, len(ids), IN_CHUNK):
        stmt = select(c.id, c.qualifier, c.original_value, c.original_unit,
                      c.verified_at.is_not(None)).where(c.id.in_(ids[i:i + IN_CHUNK]))
        out.update({int(row[0]): tuple(row[1:]) for row in session.execute(stmt)})
    return out


def lab_corrections(session: Session, patient_id: str) -> dict[int, str]:
    """lab_id -> correction reason, for the patient's final labs that replaced an earlier row."""
    L = LabResult
    stmt = (select(col(L.id), col(L.correction_reason))
            .join(Patient, col(Patient.id) == col(L.patient_pk))
            .where(col(Patient.patient_id) == patient_id, col(L.status) == FINAL,
                   col(L.supersedes_id).is_not(None)))
    return {int(i): (reason or "corrected") for i, reason in session.execute(stmt).all()}


def preliminary_labs(session: Session, patient_id: str) -> tuple[pd.DataFrame, bool]:
    """The patient's preliminary lab results still waiting for the final value (newest
    first), and whether the rules read them (`inbound.rules_use_preliminary`). Shown on the
    patient page either way: a value that arrived is never out of sight."""
    L = LabResult
    stmt = (select(col(L.analyte), col(L.collected_at), col(L.value), col(L.unit),
                   col(L.qualifier), col(L.source))
            .join(Patient, col(Patient.id) == col(L.patient_pk))
            .where(col(Patient.patient_id) == patient_id, col(L.status) == FINAL,
                   col(L.preliminary).is_(True))
            .order_by(col(L.collected_at).desc()))
    frame = pd.DataFrame(session.execute(stmt).all(),
                         columns=["analyte", "collected_at", "value", "unit", "qualifier",
                                  "source"])
    if len(frame):
        frame["collected_at"] = _utc(frame["collected_at"])
    return frame, use_preliminary(session)
