"""What a clinician does with an alert: acknowledge it, snooze it, read its history.

Each action writes its AlertEvent and AuditLog rows through the same recorder as the
lifecycle in core.monitoring.alerts (who, when, why), in the caller's transaction.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlmodel import Session, col

from core.access.permissions import require
from core.monitoring.alerts import OPEN_STATES, RANK, Recorder, alert_state
from core.store.faults import storage_guard
from core.store.models import Alert, AlertEvent, AlertState, Patient, as_utc, utcnow


def _get(session: Session, alert_id: int) -> Alert:
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise LookupError(f"There is no alert with id {alert_id}.")
    return alert


def _require_user(user: str) -> str:
    if not user or not user.strip():
        raise ValueError("Say who is doing this: a user name is required.")
    return user.strip()


@storage_guard()
def acknowledge(
    session: Session, alert_id: int, user: str, note: str | None = None,
    now: datetime | None = None, *, role: str | None = None,
) -> Alert:
    """Record that `user` has seen the alert (who, when, note); stops escalation.
    `role` (None = trusted caller) needs acknowledge_alert."""
    require(role, "acknowledge_alert")
    user = _require_user(user)
    now = as_utc(now) or utcnow()
    alert = _get(session, alert_id)
    state = AlertState(alert.state)
    if state == AlertState.RESOLVED:
        raise ValueError(f"Alert {alert_id} is already resolved; there is nothing to acknowledge.")
    if state == AlertState.ACKNOWLEDGED:
        return alert
    before = alert_state(alert)
    alert.state = AlertState.ACKNOWLEDGED
    alert.acknowledged_by = user
    alert.acknowledged_at = now
    alert.ack_note = (note or "").strip()[:1000] or None
    alert.snoozed_until = alert.snooze_reason = None
    rec = Recorder(session)
    rec(alert, "acknowledged", user, now, before, alert.ack_note)
    rec.write()
    session.flush()
    return alert


@storage_guard()
def snooze(
    session: Session, alert_id: int, user: str, reason: str, until: datetime,
    now: datetime | None = None, *, role: str | None = None,
) -> Alert:
    """Silence an open alert until `until` (time-zone aware, in the future), with a reason.
    `role` (None = trusted caller) needs snooze_alert."""
    require(role, "snooze_alert")
    user = _require_user(user)
    now = as_utc(now) or utcnow()
    if not reason or not reason.strip():
        raise ValueError("A snooze needs a reason (why is it safe to silence this alert?).")
    if until is None or until.tzinfo is None:
        raise ValueError("A snooze needs an expiry time with a time zone.")
    if until <= now:
        raise ValueError(
            f"A snooze must expire in the future (got {until.isoformat()}, now is "
            f"{now.isoformat(timespec='seconds')})."
        )
    alert = _get(session, alert_id)
    if alert.state == AlertState.RESOLVED:
        raise ValueError(f"Alert {alert_id} is already resolved; there is nothing to snooze.")
    before = alert_state(alert)
    alert.state = AlertState.SNOOZED
    alert.snoozed_until = until
    alert.snooze_reason = reason.strip()[:500]
    note = f"until {until.isoformat(timespec='minutes')}: {alert.snooze_reason}"
    rec = Recorder(session)
    rec(alert, "snoozed", user, now, before, note)
    rec.write()
    session.flush()
    return alert


def alert_history(session: Session, alert_id: int) -> list[AlertEvent]:
    """Every event of the alert, oldest first."""
    _get(session, alert_id)
    return list(session.scalars(
        select(AlertEvent).where(col(AlertEvent.alert_id) == alert_id)
        .order_by(col(AlertEvent.at), col(AlertEvent.id))
    ))


def patient_alerts(session: Session, patient_id: str, *, open_only: bool = True) -> list[Alert]:
    """A patient's alerts (open ones by default): most severe first, then newest."""
    stmt = select(Alert).join(Patient, col(Patient.id) == col(Alert.patient_pk)).where(
        col(Patient.patient_id) == patient_id)
    if open_only:
        stmt = stmt.where(col(Alert.state).in_([s.value for s in OPEN_STATES]))
    alerts = list(session.scalars(stmt).all())
    alerts.sort(key=lambda a: (-RANK.get(a.severity, 0), -(a.since_day or 0), a.id or 0))
    for a in alerts:
        session.expunge(a)
    return alerts
