"""The append-only audit log: one helper that every write path calls."""

from __future__ import annotations

from datetime import date, datetime
from enum import Enum
from typing import Any

from sqlmodel import Session, SQLModel

from core.models import AuditLog, utcnow


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
