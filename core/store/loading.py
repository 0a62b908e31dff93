"""Read the courses from the database: one query per table for every patient at once.

Only `final` rows are read (superseded and entered-in-error rows never reach a rule), and
preliminary lab results only where the site setting `inbound.rules_use_preliminary` is on. Times
come back as UTC; `day` is fractional days since local midnight of the infusion date in the
ward's zone, exactly as `core.vocabulary.course.days_of` computes it, but vectorised over all
patients.

The cost is pandas' per-operation overhead, not the arithmetic (one patient has ~200 rows), so
each table's fetched columns are converted once, as whole arrays, for every patient at once,
into one frame per table sorted by patient and day (see `_Tables`). `load_ward` hands the
rules those frames whole (evaluate, the backtest); `load_patient_courses` slices them into
each patient's `Course` (pages, exports). The frames are exactly those pandas would infer
from the rows (same dtypes and values). A read takes the columns its user needs (`Read`).

The query pieces it shares with the single-patient lab reads (final rows of a table, the
patients' primary keys, the preliminary-results setting) are in core.store.lab_reads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any, Literal
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
    sorted_frame,
    split_by_patient,
    utc_times,
)
from core.store.lab_reads import (
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
        ordered = self.patients = sorted(patients, key=_pk)
        self.pks = np.array([_pk(p) for p in ordered], dtype=np.int64)
        starts = [pd.Timestamp(datetime.combine(p.infusion_date, time(0)), tz=zone)
                  for p in ordered]
        self.starts = pd.DatetimeIndex(starts, tz=zone).tz_convert(None).to_numpy()
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


# What a read takes of each table: "all" the Course's columns (pages, exports); "rules" what
# the rules read, to judge and to cite as evidence (replay); "cited" what they judge on,
# with each lab row's id to read the evidence-only columns of the rows a finding cites
# (evaluate: lab_reads.recorded_lab_fields); "statuses" what they judge on alone (the
# backtest: no finding, so no evidence).
Read = Literal["all", "rules", "cited", "statuses"]
# The frame columns no rule reads: shown on the pages and in exports only.
PAGE_ONLY = {
    "labs": frozenset({"lab_id", "collected_at", "unit"}),
    "observations": frozenset({"observed_at", "unit"}),
    "treatments": frozenset({"dose", "dose_unit", "route"}),
}
# The frame columns a rule reads only to cite a value in a finding's evidence.
EVIDENCE_ONLY = {"labs": frozenset({"qualifier", "original_value", "original_unit", "verified"})}


def left_out(read: Read, table: str) -> frozenset[str]:
    """The frame columns of `table` a read of this kind leaves out."""
    if read == "all":
        return frozenset()
    out = PAGE_ONLY.get(table, frozenset())
    if read == "rules":
        return out
    out |= EVIDENCE_ONLY.get(table, frozenset())
    return out - {"lab_id"} if read == "cited" else out


class _Tables:
    """The six clinical tables of the ward's courses, one query each: each one frame of
    every patient's rows (`whole`: the frame, sorted by patient then day, and each row's
    patient, an index into the ward's pks)."""

    def __init__(self, session: Session, ward: _Ward, pks: Select | None,
                 as_of: datetime | None, preliminary: bool, read: Read) -> None:
        self.session, self.ward, self.pks, self.as_of = session, ward, pks, as_of
        self.sqlite = session.get_bind().dialect.name == "sqlite"
        self.preliminary, self.kind = preliminary, read
        self.whole: dict[str, tuple[pd.DataFrame, np.ndarray]] = {}

    def _read(self, model: type[SQLModel], table: str, names: dict[str, str],
              time: str | None) -> tuple[dict[str, Column], np.ndarray, np.ndarray | None]:
        """The final rows' columns by frame column (`names`: frame column -> table column;
        those the read leaves out are not fetched), each row's patient and which rows are
        kept (see `_Ward.locate`)."""
        names = {f: n for f, n in names.items() if f not in left_out(self.kind, table)}
        sql = list(dict.fromkeys(names.values()))
        stmt = final_rows(self.sqlite, model, sql, self.pks, time, self.as_of,
                          self.preliminary or model is not LabResult)
        values = fetch_columns(self.session, stmt)
        if not values:
            return {}, np.empty(0, dtype=np.intp), None
        by_name = dict(zip(sql, values[1:], strict=True))
        return {f: by_name[n] for f, n in names.items()}, *self.ward.locate(values[0])

    def _add(self, name: str, columns: dict[str, Any], sort: str, pos: np.ndarray,
             keep: np.ndarray | None) -> None:
        order = [c for c in FRAME_COLUMNS[name] if c in columns]  # the Course's column order
        self.whole[name] = sorted_frame({c: columns[c] for c in order}, pos, keep, sort)

    def read(self) -> None:
        ward, as_of = self.ward, self.as_of
        c, pos, keep = self._read(LabResult, "labs", {
            "lab_id": "id", "analyte": "analyte", "day": "collected_at",
            "collected_at": "collected_at", "value": "value", "unit": "unit",
            "qualifier": "qualifier", "ref_low": "ref_low", "ref_high": "ref_high",
            "original_value": "original_value", "original_unit": "original_unit",
            "verified": "verified_at"}, "collected_at")
        if c:
            at = utc_times(c["day"])
            self._add("labs", _converted(c, {
                "lab_id": lambda v: np.array(v, dtype=np.int64),  # a key: never missing
                "analyte": inferred, "day": lambda _: ward.days(at, pos),
                "collected_at": lambda _: at.array, "value": floats, "unit": inferred,
                "qualifier": objects, "ref_low": floats, "ref_high": floats,
                "original_value": inferred, "original_unit": inferred,
                "verified": lambda v: pd.notna(np.array(v, dtype=object))}), "day", pos, keep)
        c, pos, keep = self._read(Observation, "observations", {
            "kind": "kind", "day": "observed_at", "observed_at": "observed_at",
            "value_num": "value_num", "value_text": "value_text", "unit": "unit"},
            "observed_at")
        if c:
            at = utc_times(c["day"])
            self._add("observations", _converted(c, {
                "kind": inferred, "day": lambda _: ward.days(at, pos),
                "observed_at": lambda _: at.array, "value_num": floats,
                "value_text": inferred, "unit": inferred}), "day", pos, keep)
        c, pos, keep = self._read(Episode, "episodes", {
            "kind": "kind", "grade": "grade", "onset_day": "onset",
            "resolved_day": "resolved", "origin": "origin"}, "onset")
        if c:
            resolved = np.full(len(pos), np.nan)
            if any(r is not None for r in c["resolved_day"]):
                resolved = ward.days(utc_times(c["resolved_day"]), pos)
            if as_of is not None:  # resolved after `as_of`: still open then
                resolved[resolved > ward.as_of[pos]] = np.nan
            self._add("episodes", _converted(c, {
                "kind": inferred, "grade": inferred,
                "onset_day": lambda v: ward.days(utc_times(v), pos),
                "resolved_day": lambda _: resolved, "origin": inferred}), "onset_day", pos,
                keep)
        c, pos, keep = self._read(Treatment, "treatments", {
            "drug": "drug", "day": "given_at", "dose": "dose", "dose_unit": "dose_unit",
            "route": "route"}, "given_at")
        if c:
            self._add("treatments", _converted(c, {
                "drug": inferred, "day": lambda v: ward.days(utc_times(v), pos),
                "dose": floats, "dose_unit": inferred, "route": inferred}), "day", pos, keep)
        c, pos, keep = self._read(CourseEvent, "events", {"kind": "kind", "day": "at"}, "at")
        if c:
            self._add("events", _converted(c, {
                "kind": inferred, "day": lambda v: ward.days(utc_times(v), pos)}), "day", pos,
                keep)
        c, pos, keep = self._read(MissingLab, "missing", {
            "analyte": "analyte", "day": "day", "reason": "reason"}, None)
        if c:
            day = np.array(c["day"], dtype=np.float64)
            if as_of is not None:  # missing-data reasons are dated by day
                before = day <= ward.as_of[pos]
                keep = before if keep is None else keep & before
            self._add("missing", _converted(c, {
                "analyte": inferred, "day": lambda _: day, "reason": inferred}), "day", pos,
                keep)


def _converted(columns: dict[str, Column], how: dict[str, Any]) -> dict[str, Any]:
    """Each fetched column converted as `how` says (a column not fetched is left out)."""
    return {name: how[name](values) for name, values in columns.items()}


@dataclass(frozen=True)
class WardFrames:
    """A ward as read for the rules, never split per patient: its patients in patient_id
    order (primary keys, info, as-of days: inf without `as_of`) and each clinical table as
    one frame of all their rows with each row's patient (`tables[name]`: the frame and
    `key`, a position in `patients`). core.rules.frames.Ward.of_frames reads it."""

    pks: list[int]
    patients: list[PatientInfo]
    as_of_days: list[float]
    tables: dict[str, tuple[pd.DataFrame, np.ndarray]]
    tz: str

    def __len__(self) -> int:
        return len(self.pks)


def _read_tables(session: Session, tz: str, patient_ids: list[str] | None, active_only: bool,
                 as_of: datetime | None, read: Read) -> tuple[list[Patient], _Ward, _Tables]:
    """The patients (none: nothing read) and their tables, one query each."""
    zone = ZoneInfo(tz)
    if as_of is not None and as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=UTC)
    # the site's preliminary-results setting rides along with the patients (no extra query)
    setting = select(col(SiteSetting.value)).where(
        col(SiteSetting.key) == PRELIMINARY_SETTING).scalar_subquery()
    rows = session.execute(_patient_select(patient_ids, active_only).add_columns(
        setting.label("rules_use_preliminary"))).all()
    patients: list[Patient] = [row[0] for row in rows]
    ward = _Ward(patients, zone, tz, as_of)
    tables = _Tables(session, ward, pk_subquery(patient_ids, active_only), as_of,
                     bool(rows) and setting_on(rows[0][1]), read)
    if patients:
        tables.read()
    return patients, ward, tables


def _empty(name: str, read: Read) -> pd.DataFrame:
    return empty_frame([c for c in FRAME_COLUMNS[name] if c not in left_out(read, name)])


def load_ward(
    session: Session,
    tz: str,
    patient_ids: list[str] | None = None,
    active_only: bool = True,
    as_of: datetime | None = None,
    *,
    read: Read = "rules",
) -> WardFrames:
    """The given (default: all active) patients' courses as one ward (WardFrames), read as
    `load_patient_courses` reads them, without making a frame per patient."""
    patients, ward, tables = _read_tables(session, tz, patient_ids, active_only, as_of, read)
    by_id = sorted(range(len(ward.pks)), key=lambda i: ward.patients[i].patient_id)
    rank = np.empty(len(by_id), dtype=np.int64)
    rank[by_id] = np.arange(len(by_id))
    pks = ward.pks.tolist()
    frames = {}
    for name in FRAME_COLUMNS:
        frame, pos = tables.whole.get(name, (None, None))
        frames[name] = ((frame, rank[pos]) if frame is not None and pos is not None
                        else (_empty(name, read), np.empty(0, dtype=np.int64)))
    return WardFrames(
        pks=[pks[i] for i in by_id], patients=[_info(ward.patients[i]) for i in by_id],
        as_of_days=[ward.as_of_days.get(pks[i], math.inf) for i in by_id], tables=frames,
        tz=tz)


def load_patient_courses(
    session: Session,
    tz: str,
    patient_ids: list[str] | None = None,
    active_only: bool = True,
    as_of: datetime | None = None,
    *,
    read: Read = "all",
) -> list[tuple[int, Course]]:
    """Like `load_courses`, paired with each patient's primary key (for alert sync).

    `read`: "all" the Course's columns; "rules" without those no rule reads (PAGE_ONLY),
    for evaluating; "statuses" without those either and the evidence-only ones
    (EVIDENCE_ONLY), for statuses alone: no finding's evidence can be made from them."""
    patients, ward, tables = _read_tables(session, tz, patient_ids, active_only, as_of, read)
    if not patients:
        return []
    parts = {name: split_by_patient(frame, pos, len(ward.pks))
             for name, (frame, pos) in tables.whole.items()}
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
            part = parts[name][i] if name in parts else None
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
