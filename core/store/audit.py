"""The append-only audit log: one helper that every write path calls."""

from __future__ import annotations

from datetime import date, datetime
from enum import Enum
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session, SQLModel

from core.store.models import AuditLog, EvaluationRun, utcnow


def snapshot(row: SQLModel | None) -> dict[str, Any] | None:
    """A JSON-safe copy of a row's fields."""
    if row is None:
        return None
    out: dict[str, Any] = {}
    for key, value in row.model_dump(warnings=False).items():
        if isinstance(value, datetime | date):
            value = value.isoformat()
        elif isinstance(value, Enum):
            value = value.value
        out[key] = value
    return out


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    table_name: str,
    record_id: object = None,
    patient_id: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str | None = None,
) -> AuditLog:
    """Append one audit row in the caller's transaction (so it commits or rolls back with it)."""
    entry = AuditLog(
        at=utcnow(), actor=actor, action=action, table_name=table_name,
        record_id=None if record_id is None else str(record_id), patient_id=patient_id,
        before=before, after=after, reason=reason,
    )
    session.add(entry)
    return entry


def data_version(session: Session) -> tuple[int, int]:
    """A marker that changes whenever anything the ward views show may have changed.

    (newest audit row id, newest evaluation run id): every write (hand entry, grid, import,
    correction, verification, episode, acknowledge, snooze, settings) and every alert event
    appends an audit row in its own transaction; an evaluation run (`evaluate`, a monitor
    cycle) may also refresh an open alert's evidence or lower its grade without an event.
    Two primary-key maxima in one statement: cheap enough to read on every page run, so a
    cache keyed by it misses on the first run after a change made by any process.
    """
    row = session.execute(select(
        select(func.max(AuditLog.id)).scalar_subquery(),
        select(func.max(EvaluationRun.id)).scalar_subquery())).one()
    return int(row[0] or 0), int(row[1] or 0)
