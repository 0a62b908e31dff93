"""The monitoring tables: alerts and their history, evaluation runs and failures, monitor
cycles (the heartbeat), and the notification outbox with every delivery attempt."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Column, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from core.store.models.times import utcnow


class AlertState(StrEnum):
    FIRING = "firing"
    ACKNOWLEDGED = "acknowledged"
    SNOOZED = "snoozed"
    RESOLVED = "resolved"
    ESCALATED = "escalated"


class Alert(SQLModel, table=True):
    """One alert per patient, rule and episode; `evaluate` moves it through its states."""

    __table_args__ = (
        UniqueConstraint("patient_pk", "rule_id", "episode_key", name="uq_alert_episode"),
    )
    id: int | None = Field(default=None, primary_key=True)
    patient_pk: int = Field(foreign_key="patient.id", index=True)
    rule_id: str = Field(max_length=40, index=True)
    episode_key: str = Field(max_length=40)  # e.g. "since-day-8"
    severity: str = Field(max_length=10)  # info | warning | severe
    state: AlertState = Field(default=AlertState.FIRING, sa_type=String(14), index=True)
    title: str = Field(max_length=200)
    message: str = Field(max_length=2000)
    since_day: float | None = None
    grade: int | None = None
    score: float | None = None
    evidence: list = Field(default_factory=list, sa_column=Column(JSON))
    missing: list = Field(default_factory=list, sa_column=Column(JSON))
    first_fired_at: datetime = Field(default_factory=utcnow)
    last_seen_at: datetime = Field(default_factory=utcnow)
    fire_count: int = 1
    acknowledged_by: str | None = Field(default=None, max_length=100)
    acknowledged_at: datetime | None = None
    ack_note: str | None = Field(default=None, max_length=1000)
    snoozed_until: datetime | None = None
    snooze_reason: str | None = Field(default=None, max_length=500)
    resolved_at: datetime | None = None
    escalated_at: datetime | None = None


class AlertEvent(SQLModel, table=True):
    """The history of one alert: fired, acknowledged, snoozed, resolved, re-fired, escalated."""

    id: int | None = Field(default=None, primary_key=True)
    alert_id: int = Field(foreign_key="alert.id", index=True)
    at: datetime = Field(default_factory=utcnow)
    actor: str = Field(max_length=100)
    action: str = Field(max_length=20)
    note: str | None = Field(default=None, max_length=1000)


class EvaluationRun(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
    as_of: datetime
    patients: int = 0
    findings: int = 0
    actor: str = Field(default="system", max_length=100)


class EvaluationFailure(SQLModel, table=True):
    """A write committed but bringing its patients' alerts up to date failed (or a monitor
    cycle's evaluation did): kept until a later evaluation of those patients succeeds."""

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    source: str = Field(max_length=20)  # write | monitor
    patient_pks: list = Field(default_factory=list, sa_column=Column(JSON))
    error: str = Field(max_length=2000)
    retried_at: datetime | None = Field(default=None, index=True)  # None = still failing


class MonitorCycle(SQLModel, table=True):
    """One cycle of `python -m core monitor`: the heartbeat the huddle and health check read."""

    id: int | None = Field(default=None, primary_key=True)
    worker: str = Field(max_length=120)  # host:pid
    started_at: datetime = Field(default_factory=utcnow, index=True)
    finished_at: datetime | None = Field(default=None, index=True)
    patients: int = 0
    delivered: int = 0
    failed_deliveries: int = 0
    error: str | None = Field(default=None, max_length=2000)


class NotificationStatus(StrEnum):
    PENDING = "pending"  # waiting for its next attempt (or the end of quiet hours)
    SENDING = "sending"  # an attempt has begun; a crash leaves it here, retried after a lease
    DELIVERED = "delivered"
    FAILED = "failed"  # retries used up: shown on the huddle, overview and admin page
    CANCELLED = "cancelled"  # the alert was acknowledged or resolved first


class Notification(SQLModel, table=True):
    """The outbox: one notification of one alert event to one contact point, written in the
    transaction of the alert change. `dedupe_key` (event, contact) makes it at most one."""

    __table_args__ = (UniqueConstraint("dedupe_key", name="uq_notification_dedupe"),)
    id: int | None = Field(default=None, primary_key=True)
    dedupe_key: str = Field(max_length=200)
    alert_id: int | None = Field(default=None, foreign_key="alert.id", index=True)
    alert_event_id: int | None = Field(default=None, foreign_key="alertevent.id")
    event: str = Field(max_length=20)  # fired | escalated | resolved | test
    contact: str = Field(max_length=100)
    tier: int = 1
    severity: str = Field(max_length=10)
    payload: dict = Field(default_factory=dict, sa_column=Column(JSON))
    status: NotificationStatus = Field(default=NotificationStatus.PENDING, sa_type=String(12),
                                       index=True)
    attempts: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    next_attempt_at: datetime = Field(default_factory=utcnow, index=True)
    delivered_at: datetime | None = None
    last_error: str | None = Field(default=None, max_length=1000)
    created_by: str = Field(default="system", max_length=100)


class DeliveryAttempt(SQLModel, table=True):
    """Every attempt to deliver a notification, kept."""

    id: int | None = Field(default=None, primary_key=True)
    notification_id: int = Field(foreign_key="notification.id", index=True)
    worker: str = Field(max_length=120)
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
    ok: bool | None = None  # None = the worker died during the attempt
    error: str | None = Field(default=None, max_length=1000)
