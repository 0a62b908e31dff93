"""Build `Course` frames from the database: one query per table for every patient at once.

Only `final` rows are read (superseded and entered-in-error rows never reach a rule), and
preliminary lab results only where the site setting `inbound.rules_use_preliminary` is on. Times
come back as UTC; `day` is fractional days since local midnight of the infusion date in the
ward's zone, exactly as `core.vocabulary.course.days_of` computes it, but vectorised over all
patients.

The cost is pandas' per-operation overhead, not the arithmetic (one patient has ~200 rows), so
each table's fetched columns are converted once, as whole arrays, for every patient at once;
one sort and one frame per table are then sliced into the patients' frames (see `_Tables`).
The frames are exactly those pandas would infer from the rows (same dtypes and values).

The query pieces it shares with the single-patient lab reads (final rows of a table, the
patients' primary keys, the preliminary-results setting) are in core.store.lab_reads.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.sql import Select
from sqlmodel import Session, SQLModel, col

from core.store.columns import (
    Column,
    fetch_columns,
    floats,
    inferred,
    objects,
    split_by_patient,
    utc_times,
)
from core.store.lab_reads import (
    LAB_NAMES,
    PRELIMINARY_SETTING,
    empty_frame,
    final_rows,
    pk_subquery,
    setting_on,
)
from core.store.models import (
    CourseEvent,
    Episode,
    LabResult,
    MissingLab,
    Observation,
    Patient,
    PatientStatus,
    SiteSetting,
    Treatment,
)
from core.vocabulary.course import (
    EPISODE_COLUMNS,
    EVENT_COLUMNS,
    LAB_COLUMNS,
    MISSING_COLUMNS,
    OBS_COLUMNS,
    TREATMENT_COLUMNS,
    Course,
    PatientInfo,
    day_of,
)


def _patient_select(patient_ids: list[str] | None, active_only: bool) -> Select:
    stmt = select(Patient)
    if patient_ids is not None:
        stmt = stmt.where(col(Patient.patient_id).in_(patient_ids))
    if active_only:
        stmt = stmt.where(col(Patient.status) == PatientStatus.ACTIVE.value)
    return stmt


FRAME_COLUMNS = {
    "labs": LAB_COLUMNS, "observations": OBS_COLUMNS, "episodes": EPISODE_COLUMNS,
    "treatments": TREATMENT_COLUMNS, "events": EVENT_COLUMNS, "missing": MISSING_COLUMNS,
}


def _pk(p: Patient) -> int:
    assert p.id is not None  # read from the database: the primary key is set
    return p.id


def _info(p: Patient) -> PatientInfo:
    return PatientInfo(
        patient_id=p.patient_id,
        infusion_date=p.infusion_date,
        product=p.product,
        lymphodepletion_start=p.lymphodepletion_start,
        birth_year=p.birth_year,
        sex=p.sex,
        weight_kg=p.weight_kg,
        status=str(p.status),
        initials=p.initials,
        bed=p.bed,
    )


class _Ward:
    """The patients' primary keys in order, with the UTC instant of each one's day 0.0
    (local midnight of the infusion date) and, with `as_of`, each one's as-of day."""

    def __init__(self, patients: list[Patient], zone: ZoneInfo, tz: str,
                 as_of: datetime | None) -> None:
        ordered = sorted(patients, key=_pk)
        self.pks = np.array([_pk(p) for p in ordered], dtype=np.int64)
        starts = [pd.Timestamp(datetime.combine(p.infusion_date, time(0)), tz=zone)
                  for p in ordered]
        self.starts = pd.DatetimeIndex(starts).tz_convert(None).to_numpy()
        self.as_of_days = {} if as_of is None else {
            _pk(p): as_of_day(as_of, p.infusion_date, tz) for p in ordered}
        self.as_of = np.array(list(self.as_of_days.values()), dtype=np.float64)

    def locate(self, pks: Column) -> tuple[np.ndarray, np.ndarray | None]:
        """Each row's patient (index into `pks`), and which rows are these patients' (None:
        all of them; a row of another patient is left out, as the pk subquery would)."""
        keys = np.array(pks, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.pks, keys), len(self.pks) - 1)
        known = self.pks[pos] == keys
        return pos, None if known.all() else known

    def days(self, times: pd.DatetimeIndex, pos: np.ndarray) -> np.ndarray:
        """`days_of` for rows of many patients: the same arithmetic, in one pass."""
        delta = times.tz_convert(None).to_numpy() - self.starts[pos]
        return np.asarray(pd.TimedeltaIndex(delta).total_seconds()) / 86400.0


class _Tables:
    """The six clinical tables of the ward's courses, one query each, split by patient."""

    def __init__(self, session: Session, ward: _Ward, pks: Select | None,
                 as_of: datetime | None, preliminary: bool) -> None:
        self.session, self.ward, self.pks, self.as_of = session, ward, pks, as_of
        self.sqlite = session.get_bind().dialect.name == "sqlite"
        self.preliminary = preliminary
        self.parts: dict[str, list[pd.DataFrame | None]] = {}

    def _read(self, model: type[SQLModel], names: list[str], time: str | None
              ) -> tuple[list[Column], np.ndarray, np.ndarray | None]:
        """The final rows' columns (patient_pk first; "id" is read as "lab_id"), each row's
        patient and which rows are kept (see `_Ward.locate`)."""
        stmt = final_rows(self.sqlite, model, names, self.pks, time, self.as_of,
                          self.preliminary or model is not LabResult)
        values = fetch_columns(self.session, stmt)
        if not values:
            return values, np.empty(0, dtype=np.intp), None
        return values, *self.ward.locate(values[0])

    def _add(self, name: str, columns: dict[str, Any], sort: str, pos: np.ndarray,
             keep: np.ndarray | None) -> None:
        self.parts[name] = split_by_patient(columns, pos, keep, sort, len(self.ward.pks))

    def read(self) -> None:
        ward, as_of = self.ward, self.as_of
        c, pos, keep = self._read(LabResult, LAB_NAMES, "collected_at")
        if c:
            at = utc_times(c[3])
            self._add("labs", {
                "lab_id": inferred(c[1]), "analyte": inferred(c[2]),
                "day": ward.days(at, pos), "collected_at": at.array, "value": floats(c[4]),
                "unit": inferred(c[5]), "qualifier": objects(c[6]),
                "ref_low": floats(c[7]), "ref_high": floats(c[8]),
                "original_value": inferred(c[9]), "original_unit": inferred(c[10]),
                "verified": pd.notna(np.array(c[11], dtype=object)),
            }, "day", pos, keep)
        c, pos, keep = self._read(Observation, [
            "kind", "observed_at", "value_num", "value_text", "unit"], "observed_at")
        if c:
            at = utc_times(c[2])
            self._add("observations", {
                "kind": inferred(c[1]), "day": ward.days(at, pos), "observed_at": at.array,
                "value_num": floats(c[3]), "value_text": inferred(c[4]),
                "unit": inferred(c[5]),
            }, "day", pos, keep)
        c, pos, keep = self._read(Episode, ["kind", "grade", "onset", "resolved", "origin"],
                                  "onset")
        if c:
            resolved = np.full(len(pos), np.nan)
            if any(r is not None for r in c[4]):
                resolved = ward.days(utc_times(c[4]), pos)
            if as_of is not None:  # resolved after `as_of`: still open then
                resolved[resolved > ward.as_of[pos]] = np.nan
            self._add("episodes", {
                "kind": inferred(c[1]), "grade": inferred(c[2]),
                "onset_day": ward.days(utc_times(c[3]), pos), "resolved_day": resolved,
                "origin": inferred(c[5]),
            }, "onset_day", pos, keep)
        c, pos, keep = self._read(Treatment, ["drug", "given_at", "dose", "dose_unit", "route"],
                                  "given_at")
        if c:
            self._add("treatments", {
                "drug": inferred(c[1]), "day": ward.days(utc_times(c[2]), pos),
                "dose": floats(c[3]), "dose_unit": inferred(c[4]), "route": inferred(c[5]),
            }, "day", pos, keep)
        c, pos, keep = self._read(CourseEvent, ["kind", "at"], "at")
        if c:
            self._add("events", {
                "kind": inferred(c[1]), "day": ward.days(utc_times(c[2]), pos),
            }, "day", pos, keep)
        c, pos, keep = self._read(MissingLab, ["analyte", "day", "reason"], None)
        if c:
            day = np.array(c[2], dtype=np.float64)
            if as_of is not None:  # missing-data reasons are dated by day
                before = day <= ward.as_of[pos]
                keep = before if keep is None else keep & before
            self._add("missing", {
                "analyte": inferred(c[1]), "day": day, "reason": inferred(c[3]),
            }, "day", pos, keep)


def load_patient_courses(
    session: Session,
    tz: str,
    patient_ids: list[str] | None = None,
    active_only: bool = True,
    as_of: datetime | None = None,
) -> list[tuple[int, Course]]:
    """Like `load_courses`, paired with each patient's primary key (for alert sync)."""
    zone = ZoneInfo(tz)
    if as_of is not None and as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=UTC)
    # the site's preliminary-results setting rides along with the patients (no extra query)
    setting = select(col(SiteSetting.value)).where(
        col(SiteSetting.key) == PRELIMINARY_SETTING).scalar_subquery()
    rows = session.execute(_patient_select(patient_ids, active_only).add_columns(
        setting.label("rules_use_preliminary"))).all()
    if not rows:
        return []
    patients: list[Patient] = [row[0] for row in rows]
    ward = _Ward(patients, zone, tz, as_of)
    tables = _Tables(session, ward, pk_subquery(patient_ids, active_only), as_of,
                     setting_on(rows[0][1]))
    tables.read()

    infos = {_pk(p): _info(p) for p in patients}
    # Course's own default frames cost ~1 ms each; a shallow copy of one empty frame is free
    empty: dict[str, pd.DataFrame] = {}

    def nothing(name: str) -> pd.DataFrame:
        if name not in empty:
            empty[name] = empty_frame(FRAME_COLUMNS[name])
        return empty[name].copy(deep=False)

    where = {int(pk): i for i, pk in enumerate(ward.pks.tolist())}
    out: list[tuple[int, Course]] = []
    for p in sorted(patients, key=lambda p: p.patient_id):
        pk = _pk(p)
        i = where[pk]
        frames: dict[str, pd.DataFrame] = {}
        for name in FRAME_COLUMNS:
            part = tables.parts[name][i] if name in tables.parts else None
            frames[name] = nothing(name) if part is None else part
        out.append((pk, Course(patient=infos[pk], tz=tz,
                               as_of_day=ward.as_of_days.get(pk, math.inf), **frames)))
    return out


def load_courses(
    session: Session,
    tz: str,
    patient_ids: list[str] | None = None,
    active_only: bool = True,
    as_of: datetime | None = None,
) -> list[Course]:
    """The courses of the given (default: all active) patients, sorted by patient_id.

    Parameters
    ----------
    tz: the ward's IANA zone, which decides what "day N" means.
    as_of: when given, only what happened up to that instant (clinical time) is in the
        course, `as_of_day` is set, and episodes resolved later are still open.
    """
    return [c for _, c in load_patient_courses(session, tz, patient_ids, active_only, as_of)]


def as_of_day(as_of: datetime, infusion_date: date, tz: str) -> float:
    """The fractional day of `as_of` for a patient (a naive time is taken as UTC)."""
    if as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=UTC)
    return day_of(as_of, infusion_date, ZoneInfo(tz))


def ward_day(as_of: datetime, infusion_date: date, tz: str) -> int:
    """The "day N" a nurse reads on the ward at `as_of`."""
    return math.floor(as_of_day(as_of, infusion_date, tz))
