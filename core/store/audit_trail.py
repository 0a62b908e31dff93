"""Reading the audit log: filter by actor, table, patient and dates; export as safe CSV."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime, time, timedelta

import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import col

from core.store.models import AuditLog
from core.views.exporting import neutralise

COLUMNS = ["id", "at", "actor", "action", "table_name", "record_id", "patient_id", "reason",
           "before", "after"]


def audit_log(engine: Engine, *, actor: str | None = None, table: str | None = None,
              patient_id: str | None = None, start: date | None = None,
              end: date | None = None, limit: int = 5_000) -> pd.DataFrame:
    """Audit rows, newest first; `start`/`end` are inclusive UTC dates."""
    A = AuditLog
    stmt = (select(col(A.id), col(A.at), col(A.actor), col(A.action), col(A.table_name),
                   col(A.record_id), col(A.patient_id), col(A.reason), col(A.before),
                   col(A.after))
            .order_by(col(A.at).desc(), col(A.id).desc()).limit(limit))
    if actor:
        stmt = stmt.where(col(A.actor) == actor)
    if table:
        stmt = stmt.where(col(A.table_name) == table)
    if patient_id:
        stmt = stmt.where(col(A.patient_id) == patient_id)
    if start:
        stmt = stmt.where(col(A.at) >= datetime.combine(start, time(), tzinfo=UTC))
    if end:
        stmt = stmt.where(
            col(A.at) < datetime.combine(end + timedelta(days=1), time(), tzinfo=UTC))
    with engine.connect() as c:
        return pd.DataFrame(c.execute(stmt).all(), columns=COLUMNS)


def changes(before: dict | None, after: dict | None) -> str:
    """'value: 2.1 -> 210; status: final -> superseded' for the fields that differ."""
    if not before:
        return ""
    after = after or {}
    skip = {"entered_at", "id", "row_key", "content_hash"}
    parts = [f"{k}: {before.get(k)} -> {after.get(k)}" for k in sorted(set(before) | set(after))
             if k not in skip and before.get(k) != after.get(k)]
    return "; ".join(parts)


def audit_csv(frame: pd.DataFrame) -> str:
    """CSV of audit rows with spreadsheet formula prefixes neutralised."""
    out = frame.copy()
    for name in ("before", "after"):
        if name in out.columns:
            out[name] = out[name].map(lambda v: "" if v is None else json.dumps(v, default=str))
    out = out.map(neutralise)
    buf = io.StringIO()
    out.to_csv(buf, index=False)
    return buf.getvalue()
