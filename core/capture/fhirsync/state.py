"""fhir-sync's state in the database: the patients in scope, the watermarks (SyncWatermark)
and the pages kept raw (InboundMessage), and the PostgreSQL lock of a pass."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from core.store.db import is_sqlite, session_scope
from core.store.models import InboundMessage, MessageStatus, Patient, PatientStatus, SyncWatermark

SYNC_LOCK_KEY = 0x43415254_4648  # "CARTFH": one fhir-sync pass at a time on PostgreSQL

def aware(when: datetime | None) -> datetime | None:
    if when is None or when.tzinfo is not None:
        return when
    return when.replace(tzinfo=UTC)


def watermark_key(base: str, rtype: str, pid: str | None = None) -> str:
    """"<base url>|<type>" (the type's newest) or "<base url>|<type>|<patient ID>"."""
    key = f"{base}|{rtype}" + (f"|{pid}" if pid is not None else "")
    if len(key) > 300:  # a very long base URL: keep the key unique and within the column
        digest = hashlib.sha256(base.encode()).hexdigest()[:16]
        key = f"sha256:{digest}|{rtype}" + (f"|{pid}" if pid is not None else "")
    return key[:300]


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def patients_in_scope(engine: Engine) -> list[str]:
    """CAR-T Watch IDs of the active registered patients."""
    with session_scope(engine) as s:
        return sorted(s.scalars(select(col(Patient.patient_id)).where(
            col(Patient.status) == PatientStatus.ACTIVE)))


def watermarks(engine: Engine, base: str, rtype: str,
               pids: list[str]) -> dict[str, datetime | None]:
    """Each patient's watermark for one type (None: never synced)."""
    keys = {watermark_key(base, rtype, p): p for p in pids}
    out: dict[str, datetime | None] = dict.fromkeys(pids)
    with session_scope(engine) as s:
        for chunk in chunks(list(keys), 500):
            for row in s.scalars(select(SyncWatermark).where(
                    col(SyncWatermark.key).in_(chunk))):
                out[keys[row.key]] = aware(row.last_updated)
    return out


def _advance(session: Any, key: str, when: datetime, resources: int) -> None:
    row = session.get(SyncWatermark, key)
    if row is None:
        session.add(SyncWatermark(key=key, last_updated=when, resources=resources))
        return
    row.last_updated = max(aware(row.last_updated) or when, when)
    row.resources = resources
    row.updated_at = datetime.now(UTC)


def keep_page(engine: Engine, *, control_id: str, base: str, raw: str, status: MessageStatus,
              reason: str | None, rows: int, patient_id: str | None,
              marks: dict[str, datetime], type_mark: tuple[str, datetime] | None,
              resources: int) -> None:
    """Store the page raw (a re-fetch of the same page updates its row) and, for a stored
    page, advance the watermarks: one transaction, after the import's own commit."""
    with session_scope(engine) as s:
        msg = s.scalars(select(InboundMessage).where(
            col(InboundMessage.channel) == "fhir",
            col(InboundMessage.control_id) == control_id)).first()
        if msg is None:
            msg = InboundMessage(channel="fhir", control_id=control_id, raw=raw, status=status)
            s.add(msg)
        msg.message_type, msg.sender, msg.patient_id = "Bundle", base[:200], patient_id
        msg.raw, msg.status, msg.reason = raw, status, reason
        msg.rows_written, msg.processed_at = rows, datetime.now(UTC)
        msg.received_at = datetime.now(UTC)
        for key, when in marks.items():
            _advance(s, key, when, resources)
        if type_mark is not None:
            _advance(s, type_mark[0], type_mark[1], resources)


@contextmanager
def sync_lock(engine: Engine) -> Iterator[bool]:
    """On PostgreSQL one pass at a time (a session advisory lock); SQLite serialises the
    page transactions, and the import is idempotent."""
    if is_sqlite(engine):
        yield True
        return
    with engine.connect() as conn:
        got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"),
                                {"k": SYNC_LOCK_KEY}).scalar())
        conn.commit()
        try:
            yield got
        finally:
            if got:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": SYNC_LOCK_KEY})
                conn.commit()
