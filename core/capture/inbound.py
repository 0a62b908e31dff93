"""What other systems sent lately (HL7 v2 messages, FHIR sync pages): counts by channel and
fate, for the admin's Interfaces section and the held-queue notice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from core.store.models import InboundMessage, MessageStatus


def summary(engine: Engine, *, hours: int = 24,
            now: datetime | None = None) -> list[dict[str, object]]:
    """One row per channel: messages received in the last `hours` by fate, the newest
    arrival, and how many wait on the Held messages page (whenever they came)."""
    since = (now or datetime.now(UTC)) - timedelta(hours=hours)
    with Session(engine) as s:
        recent = s.execute(
            select(col(InboundMessage.channel), col(InboundMessage.status), func.count(),
                   func.max(col(InboundMessage.received_at)))
            .where(col(InboundMessage.received_at) >= since)
            .group_by(col(InboundMessage.channel), col(InboundMessage.status))).all()
        held = {str(channel): int(count) for channel, count in s.execute(
            select(col(InboundMessage.channel), func.count())
            .where(col(InboundMessage.status) == MessageStatus.HELD.value)
            .group_by(col(InboundMessage.channel))).all()}
    rows: dict[str, dict[str, object]] = {}
    for channel, status, count, newest in recent:
        row = rows.setdefault(channel, {"channel": channel, "newest": None,
                                        **{s.value: 0 for s in MessageStatus}})
        row[str(status)] = int(count)
        if newest is not None and (row["newest"] is None or newest > row["newest"]):
            row["newest"] = newest
    for channel, count in held.items():
        row = rows.setdefault(channel, {"channel": channel, "newest": None,
                                        **{s.value: 0 for s in MessageStatus}})
        row["waiting"] = int(count)
    return [{"waiting": 0, **row} for row in sorted(rows.values(), key=lambda r: str(r["channel"]))]
