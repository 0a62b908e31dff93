"""The alert inbox: the alerts a ward team works through, escalated and most severe first."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sqlalchemy import select
from sqlmodel import Session, col

from core.monitoring.alerts import OPEN_STATES
from core.rules.catalog import rules_by_id
from core.store.db import table_of
from core.store.models import Alert, AlertState, Patient
from core.views.ward import SEVERITY_RANK, utc_series

INBOX_STATES = tuple(s.value for s in AlertState)


@dataclass(frozen=True)
class InboxFilter:
    """What the inbox shows; empty means any."""

    states: tuple[str, ...] = tuple(s.value for s in OPEN_STATES)
    patient_ids: tuple[str, ...] = ()
    rule_ids: tuple[str, ...] = ()
    severities: tuple[str, ...] = ()
    limit: int = 500


INBOX_COLUMNS = [
    "id", "patient_id", "bed", "rule_id", "title", "severity", "state", "grade", "score",
    "since_day", "message", "evidence", "missing", "first_fired_at", "last_seen_at",
    "fire_count", "acknowledged_by", "acknowledged_at", "ack_note", "snoozed_until",
    "snooze_reason", "resolved_at", "escalated_at", "citation",
]


def citation_text(rule_id: str) -> str:
    """The rule's citation as one line (source, section, DOI)."""
    rule = rules_by_id().get(rule_id)
    if rule is None:
        return "rule no longer in the catalogue"
    c = rule.citation
    return f"{c.source}; {c.section}" + (f"; doi:{c.doi}" if c.doi else "")


def alert_inbox(session: Session, filters: InboxFilter | None = None) -> pd.DataFrame:
    """Alerts matching `filters`: escalated first, then most severe, then newest (INBOX_COLUMNS)."""
    f = filters or InboxFilter()
    A = Alert
    cols = [c for c in table_of(A).columns if c.key != "patient_pk"]
    stmt = select(*cols, col(Patient.patient_id), col(Patient.bed)).join(
        Patient, col(Patient.id) == col(A.patient_pk))
    if f.states:
        stmt = stmt.where(col(A.state).in_(list(f.states)))
    if f.patient_ids:
        stmt = stmt.where(col(Patient.patient_id).in_(list(f.patient_ids)))
    if f.rule_ids:
        stmt = stmt.where(col(A.rule_id).in_(list(f.rule_ids)))
    if f.severities:
        stmt = stmt.where(col(A.severity).in_(list(f.severities)))
    frame = pd.DataFrame([dict(r._mapping) for r in session.execute(stmt).all()])
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in INBOX_COLUMNS})
    frame["bed"] = frame["bed"].fillna("")
    for column in ("first_fired_at", "last_seen_at", "acknowledged_at", "snoozed_until",
                   "resolved_at", "escalated_at"):
        frame[column] = utc_series(frame[column])
    frame["citation"] = [citation_text(r) for r in frame["rule_id"]]
    frame["_esc"] = frame["state"] == AlertState.ESCALATED.value
    frame["_open"] = frame["state"].isin([s.value for s in OPEN_STATES])
    frame["_rank"] = frame["severity"].map(SEVERITY_RANK).fillna(0)
    frame = frame.sort_values(["_esc", "_open", "_rank", "last_seen_at", "id"],
                              ascending=False, kind="stable")
    return frame[INBOX_COLUMNS].head(f.limit).reset_index(drop=True)
