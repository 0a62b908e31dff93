"""What changed on the ward and how fresh its data is, for the huddle wall.

Alert changes after a time, one line each without patient identifiers (changes_since,
change_lines: the huddle's "since yesterday"), and the age of the newest clinical data and of
the last finished evaluation (freshness: the stale-data warning). The ward summary is
core.views.ward.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd
from sqlalchemy import func, select
from sqlmodel import Session, col

from core.rules.catalog import syndrome_ids
from core.store.models import (
    Alert,
    AlertEvent,
    EvaluationRun,
    LabResult,
    Observation,
    Patient,
    PatientStatus,
    as_utc,
    utcnow,
)
from core.views.ward import FINAL, SEVERITY_RANK, records_by_pk, short_name, utc_series

DEFAULT_STALE_AFTER = timedelta(hours=24)  # [DESIGN] huddle warns when data/evaluation is older
CHANGE_VERBS = {
    "fired": "New", "refired": "Back", "reopened": "Worse", "worsened": "Worse",
    "escalated": "Escalated", "resolved": "Resolved", "acknowledged": "Acknowledged",
    "snoozed": "Snoozed", "unsnoozed": "Snooze ended",
}


@dataclass(frozen=True)
class Freshness:
    """How old the newest clinical data and the last finished evaluation are."""

    newest_data_at: datetime | None
    last_evaluation_at: datetime | None
    now: datetime
    limit: timedelta

    @property
    def data_age(self) -> timedelta | None:
        return None if self.newest_data_at is None else self.now - self.newest_data_at

    @property
    def evaluation_age(self) -> timedelta | None:
        return None if self.last_evaluation_at is None else self.now - self.last_evaluation_at

    @property
    def is_data_stale(self) -> bool:
        return self.data_age is None or self.data_age > self.limit

    @property
    def is_evaluation_stale(self) -> bool:
        return self.evaluation_age is None or self.evaluation_age > self.limit

    @property
    def is_stale(self) -> bool:
        return self.is_data_stale or self.is_evaluation_stale


def freshness(session: Session, now: datetime | None = None,
              limit: timedelta = DEFAULT_STALE_AFTER) -> Freshness:
    """The newest lab or observation of an active patient, and the last finished evaluation."""
    now = as_utc(now) or utcnow()
    active = select(col(Patient.id)).where(col(Patient.status) == PatientStatus.ACTIVE.value)
    L, Ob = LabResult, Observation
    lab = session.scalar(select(func.max(col(L.collected_at))).where(
        col(L.status) == FINAL, col(L.collected_at) <= now, col(L.patient_pk).in_(active)))
    obs = session.scalar(select(func.max(col(Ob.observed_at))).where(
        col(Ob.status) == FINAL, col(Ob.observed_at) <= now, col(Ob.patient_pk).in_(active)))
    run = session.scalar(select(func.max(col(EvaluationRun.finished_at))))
    times = [t for t in (_parse(lab), _parse(obs)) if t is not None]
    return Freshness(max(times) if times else None, _parse(run), now, limit)


def _parse(value: datetime | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return as_utc(value)


CHANGE_COLUMNS = ["patient_pk", "patient_id", "at", "action", "rule_id", "severity", "text"]


def changes_since(session: Session, since: datetime, now: datetime | None = None,
                  patient_pks: Sequence[int] | None = None) -> pd.DataFrame:
    """Alert changes (new, worse, escalated, resolved, acknowledged, ...) after `since`.

    Newest first; `text` is one line without patient identifiers, e.g. "New: CRS grade 2".
    """
    now = as_utc(now) or utcnow()
    since = as_utc(since)
    E, A = AlertEvent, Alert
    stmt = (select(col(A.patient_pk), col(Patient.patient_id), col(E.at), col(E.action),
                   col(A.rule_id), col(A.severity), col(A.grade))
            .join(A, col(A.id) == col(E.alert_id))
            .join(Patient, col(Patient.id) == col(A.patient_pk))
            .where(col(E.at) > since, col(E.at) <= now,
                   col(E.action).in_(list(CHANGE_VERBS)))
            .order_by(col(E.at).desc(), col(E.id).desc()))
    if patient_pks is not None:
        stmt = stmt.where(col(A.patient_pk).in_(list(patient_pks)))
    frame = pd.read_sql(stmt, session.connection())
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in CHANGE_COLUMNS})
    frame["at"] = utc_series(frame["at"])

    def line(r: dict) -> str:
        grade = "" if pd.isna(r["grade"]) else f" grade {int(r['grade'])}"
        return f"{CHANGE_VERBS[r['action']]}: {short_name(r['rule_id'])}{grade}"

    frame["text"] = [line(r) for r in frame.to_dict("records")]
    return frame[CHANGE_COLUMNS]


def change_lines(changes: pd.DataFrame, limit: int = 3) -> dict[int, list[str]]:
    """Each patient's most telling changes, one line each: severe and escalations first."""
    return {pk: _change_lines(rows, limit) for pk, rows in records_by_pk(changes).items()}


def _change_lines(rows: list[dict], limit: int) -> list[str]:
    syndromes = syndrome_ids()  # [DESIGN] listed before lab grades: what the team discusses

    def rank(r: dict) -> tuple:
        return (r["action"] == "escalated", r["rule_id"] in syndromes,
                SEVERITY_RANK.get(r["severity"], 0), r["at"])

    lines = list(dict.fromkeys(r["text"] for r in sorted(rows, key=rank, reverse=True)))
    more = len(lines) - limit
    return lines[:limit] + ([f"+{more} more"] if more > 0 else [])
