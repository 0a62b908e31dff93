"""Build `Course` frames from the database: one query per table for every patient at once.

Only `final` rows are read (superseded and entered-in-error rows never reach a rule), and
preliminary lab results only where the site setting `inbound.rules_use_preliminary` is on. Times
come back as UTC; `day` is fractional days since local midnight of the infusion date in the
ward's zone, exactly as `core.vocabulary.course.days_of` computes it, but vectorised over all
patients.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from sqlalchemy import DateTime, String, select, type_coerce
from sqlalchemy.orm import Mapped
from sqlalchemy.sql import Select
from sqlmodel import Session, col

from core.rules.reading import attach_index, index_courses
from core.store.models import (
    CourseEvent,
    Episode,
    LabResult,
    MissingLab,
    Observation,
    Patient,
    PatientStatus,
    RecordStatus,
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

FINAL = RecordStatus.FINAL.value
PRELIMINARY_SETTING = "inbound.rules_use_preliminary"
RAW_LAB_COLUMNS = [
    "patient_pk", "lab_id", "analyte", "collected_at", "value", "unit", "qualifier", "ref_low",
    "ref_high", "original_value", "original_unit", "verified_at",
]


def _patient_select(patient_ids: list[str] | None, active_only: bool) -> Select:
    stmt = select(Patient)
    if patient_ids is not None:
        stmt = stmt.where(col(Patient.patient_id).in_(patient_ids))
    if active_only:
        stmt = stmt.where(col(Patient.status) == PatientStatus.ACTIVE.value)
    return stmt


def _pk_subquery(patient_ids: list[str] | None, active_only: bool) -> Select | None:
    """The patients' primary keys as a subquery, or None for every patient."""
    if patient_ids is None and not active_only:
        return None
    stmt = select(col(Patient.id))
    if patient_ids is not None:
        stmt = stmt.where(col(Patient.patient_id).in_(patient_ids))
    if active_only:
        stmt = stmt.where(col(Patient.status) == PatientStatus.ACTIVE.value)
    return stmt


FRAME_COLUMNS = {
    "labs": LAB_COLUMNS, "observations": OBS_COLUMNS, "episodes": EPISODE_COLUMNS,
    "treatments": TREATMENT_COLUMNS, "events": EVENT_COLUMNS, "missing": MISSING_COLUMNS,
}


def _empty_frame(columns: list[str]) -> pd.DataFrame:
    # from empty arrays: a fifth of the cost of empty Series (a small load makes several)
    return pd.DataFrame({c: np.empty(0, dtype=object) for c in columns})


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
        return _empty_frame(columns)
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


class _ClinicalTable(Protocol):
    """A clinical table model: one patient's rows with a record status."""

    patient_pk: int
    status: RecordStatus


def _final_rows(
    session: Session,
    model: type[_ClinicalTable],
    cols: list[Any],
    pks: Select | None,
    time_col: Mapped[datetime] | None = None,
    until: datetime | None = None,
) -> Select:
    """`cols` are model attributes (or labels of them): SQLModel declares a table class's
    attributes as their value types, so a mixed list of them has no finer static type."""
    sqlite = session.get_bind().dialect.name == "sqlite"
    stmt = select(col(model.patient_pk), *_raw_times(cols, sqlite))
    stmt = stmt.where(col(model.status) == FINAL)
    if pks is not None:
        stmt = stmt.where(col(model.patient_pk).in_(pks))
    if time_col is not None and until is not None:
        stmt = stmt.where(time_col <= until)
    return stmt


def _setting_on(value: object) -> bool:
    if isinstance(value, str):  # a JSON value read without its column type
        import json

        value = json.loads(value)
    return isinstance(value, dict) and value.get("value") is True


def use_preliminary(session: Session) -> bool:
    """Whether the rules read preliminary lab results (HL7 OBX-11 P, FHIR preliminary): the
    site setting `inbound.rules_use_preliminary`, off unless an admin turns it on."""
    row = session.get(SiteSetting, PRELIMINARY_SETTING)
    return row is not None and _setting_on(row.value)


def _read_labs(session: Session, pks: Select | None, until: datetime | None,
               preliminary: bool | None = None) -> pd.DataFrame:
    L = LabResult
    stmt = _final_rows(
        session, L,
        [col(L.id).label("lab_id"), L.analyte, L.collected_at, L.value, L.unit,
         L.qualifier, L.ref_low, L.ref_high, L.original_value, L.original_unit, L.verified_at],
        pks, col(L.collected_at), until,
    )
    if not (use_preliminary(session) if preliminary is None else preliminary):
        stmt = stmt.where(col(L.preliminary).is_(False))
    frame = _read(session, stmt, RAW_LAB_COLUMNS)
    if len(frame):
        frame["collected_at"] = _utc(frame["collected_at"])
        frame["verified_at"] = _utc(frame["verified_at"])
    return frame


def read_lab_frame(
    session: Session, patient_ids: list[str] | None = None, until: datetime | None = None
) -> pd.DataFrame:
    """Every final lab row (of the given patients) in one query, as stored.

    Columns: RAW_LAB_COLUMNS (collected_at as UTC). This is the raw read that `load_courses`
    builds on, and the baseline its benchmark compares against.
    """
    return _read_labs(session, _pk_subquery(patient_ids, active_only=False), until)


def _pk(p: Patient) -> int:
    assert p.id is not None  # read from the database: the primary key is set
    return p.id


def _day_starts(patients: list[Patient], tz: ZoneInfo) -> dict[int, pd.Timestamp]:
    """UTC instant of local midnight of each patient's infusion date (day 0.0)."""
    return {
        _pk(p): pd.Timestamp(datetime.combine(p.infusion_date, time(0)), tz=tz).tz_convert(UTC)
        for p in patients
    }


def _days(frame: pd.DataFrame, col: str, starts: dict[int, pd.Timestamp]) -> pd.Series:
    """Vectorised `days_of` over rows of many patients (same arithmetic, one pass)."""
    start = frame["patient_pk"].map(starts)
    start = pd.to_datetime(start, utc=True)
    return (_utc(frame[col]) - start).dt.total_seconds() / 86400.0


def _to_nan(col: pd.Series) -> pd.Series:
    return pd.to_numeric(col, errors="coerce").astype("float64")


def _split(frame: pd.DataFrame, columns: list[str], sort: str | None) -> dict[int, pd.DataFrame]:
    """One frame per patient_pk (columns `columns`, sorted by `sort`), sliced from one sort.

    A groupby with a column selection per group costs ~1 ms a patient; slicing the sorted
    frame at the patient boundaries costs a fraction of that.
    """
    if frame.empty:
        return {}
    keys = ["patient_pk", sort] if sort is not None else ["patient_pk"]
    frame = frame.sort_values(keys, kind="stable")
    pks = frame["patient_pk"].to_numpy()
    body = frame[columns].reset_index(drop=True)
    bounds = np.flatnonzero(pks[1:] != pks[:-1]) + 1
    starts, ends = np.r_[0, bounds], np.r_[bounds, len(pks)]
    return {int(pks[s]): body.iloc[s:e].reset_index(drop=True)
            for s, e in zip(starts, ends, strict=True)}


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


def load_patient_courses(
    session: Session,
    tz: str,
    patient_ids: list[str] | None = None,
    active_only: bool = True,
    as_of: datetime | None = None,
    *,
    with_index: bool = False,
) -> list[tuple[int, Course]]:
    """Like `load_courses`, paired with each patient's primary key (for alert sync).

    `with_index`: also give each course the rules' column index (core.rules.reading), built
    from the ward's frames at once: for callers that run the rules, cheaper than each
    course building its own on first use.
    """
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
    preliminary = _setting_on(rows[0][1])
    pks = _pk_subquery(patient_ids, active_only)
    starts = _day_starts(patients, zone)

    labs = _read_labs(session, pks, as_of, preliminary)
    if len(labs):
        labs["day"] = _days(labs, "collected_at", starts)
        labs["verified"] = labs["verified_at"].notna()
        for c in ("value", "ref_low", "ref_high"):
            labs[c] = _to_nan(labs[c])
        qualifier = labs["qualifier"].astype(object)
        labs["qualifier"] = qualifier.where(qualifier.notna(), None)

    Ob = Observation
    obs = _read(session, _final_rows(
        session, Ob, [Ob.kind, Ob.observed_at, Ob.value_num, Ob.value_text, Ob.unit],
        pks, col(Ob.observed_at), as_of), ["patient_pk", *OBS_COLUMNS])
    if len(obs):
        obs["observed_at"] = _utc(obs["observed_at"])
        obs["day"] = _days(obs, "observed_at", starts)
        obs["value_num"] = _to_nan(obs["value_num"])

    E = Episode
    eps = _read(session, _final_rows(
        session, E, [E.kind, E.grade, E.onset, E.resolved, E.origin],
        pks, col(E.onset), as_of), ["patient_pk", *EPISODE_COLUMNS])
    if len(eps):
        eps["onset_day"] = _days(eps, "onset", starts)
        resolved = eps[["patient_pk", "resolved"]].dropna()
        eps["resolved_day"] = float("nan")
        if len(resolved):
            eps.loc[resolved.index, "resolved_day"] = _days(resolved, "resolved", starts)

    T = Treatment
    trs = _read(session, _final_rows(
        session, T, [T.drug, T.given_at, T.dose, T.dose_unit, T.route],
        pks, col(T.given_at), as_of), ["patient_pk", *TREATMENT_COLUMNS])
    if len(trs):
        trs["day"] = _days(trs, "given_at", starts)
        trs["dose"] = _to_nan(trs["dose"])

    C = CourseEvent
    evs = _read(session, _final_rows(session, C, [C.kind, C.at], pks, col(C.at), as_of),
                ["patient_pk", *EVENT_COLUMNS])
    if len(evs):
        evs["day"] = _days(evs, "at", starts)

    M = MissingLab
    mis = _read(session, _final_rows(session, M, [M.analyte, M.day, M.reason], pks),
                ["patient_pk", *MISSING_COLUMNS])
    if len(mis):
        mis["day"] = mis["day"].astype("float64")

    as_of_days: dict[int, float] = {}
    if as_of is not None:
        # The queries already stop at `as_of`; what is left of Course.until is per-patient:
        # missing-data reasons are dated by day, and an episode resolved later is still open.
        as_of_days = {_pk(p): as_of_day(as_of, p.infusion_date, tz) for p in patients}
        if len(mis):
            mis = mis[mis["day"] <= mis["patient_pk"].map(as_of_days)]
        if len(eps):
            later = eps["resolved_day"] > eps["patient_pk"].map(as_of_days)
            eps.loc[later, "resolved_day"] = float("nan")

    infos = {_pk(p): _info(p) for p in patients}
    indexes = index_courses(infos, {
        "labs": labs, "observations": obs, "episodes": eps, "treatments": trs, "events": evs,
    }, owner="patient_pk") if with_index else {}
    by_pk = {
        "labs": _split(labs, LAB_COLUMNS, "day"),
        "observations": _split(obs, OBS_COLUMNS, "day"),
        "episodes": _split(eps, EPISODE_COLUMNS, "onset_day"),
        "treatments": _split(trs, TREATMENT_COLUMNS, "day"),
        "events": _split(evs, EVENT_COLUMNS, "day"),
        "missing": _split(mis, MISSING_COLUMNS, "day"),
    }
    # Course's own default frames cost ~1 ms each; a shallow copy of one empty frame is free
    empty: dict[str, pd.DataFrame] = {}

    def nothing(name: str) -> pd.DataFrame:
        if name not in empty:
            empty[name] = _empty_frame(FRAME_COLUMNS[name])
        return empty[name].copy(deep=False)

    out: list[tuple[int, Course]] = []
    for p in sorted(patients, key=lambda p: p.patient_id):
        pk = _pk(p)
        frames = {name: parts[pk] if pk in parts else nothing(name)
                  for name, parts in by_pk.items()}
        course = Course(patient=infos[pk], tz=tz, as_of_day=as_of_days.get(pk, math.inf),
                        **frames)
        if with_index:
            attach_index(course, indexes[pk])
        out.append((pk, course))
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
