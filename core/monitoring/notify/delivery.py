"""Delivery of the outbox: claim in a short transaction, send outside it, record the outcome.

Sending happens outside any transaction because a slow or hung receiver must never hold a
database lock (on SQLite every write transaction holds the one write lock). The price is
at-least-once delivery: a worker that dies after sending but before recording leaves its row
'sending'; once the lease has passed another worker takes it up and sends again. A JSON
receiver can drop that repeat by its webhook-id, which is the same on every attempt.

Claiming: the oldest due row (pending and due, or 'sending' with its lease run out) is taken
with FOR UPDATE SKIP LOCKED on PostgreSQL, so two monitors never claim the same row; on
SQLite the write transaction begins IMMEDIATE (core/store/db.py), which serialises claims. A claim
sets next_attempt_at to the lease's end, so "due" covers both cases in one condition.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any
from uuid import uuid4

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from core.access.permissions import require
from core.config import Settings, worker_name
from core.monitoring.notify.config import Contact, NotifyConfig, apprise_messages, notify_config
from core.monitoring.notify.outbox import iso_z, payload_for_test
from core.store import audit
from core.store.db import session_scope
from core.store.models import (
    AlertEvent,
    DeliveryAttempt,
    Notification,
    NotificationStatus,
    as_utc,
    utcnow,
)

log = logging.getLogger(__name__)

STOPPING_ACTIONS = ("acknowledged", "resolved", "snoozed")
"""A fired or escalated notification not yet sent is cancelled once its alert has been
acknowledged, resolved or snoozed: someone has seen it, so the tiers still to come stop."""
_DUE = (NotificationStatus.PENDING.value, NotificationStatus.SENDING.value)
_ERROR_MAX = 1000  # Notification.last_error / DeliveryAttempt.error column size


@dataclass
class DeliveryReport:
    """What one delivery run did, by outcome (counts)."""

    delivered: int = 0
    retrying: int = 0  # failed this time, another attempt is scheduled
    failed: int = 0  # retries used up
    cancelled: int = 0  # the alert was acknowledged/resolved/snoozed first, or contact removed
    deferred: int = 0  # due in quiet hours: moved to their end, no attempt made

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class _Claim:
    notification_id: int
    attempt_id: int
    attempt: int
    contact: Contact
    payload: dict[str, Any]
    severity: str
    event: str


def _max_attempts(config: NotifyConfig, event: str) -> int:
    # a test is for the admin watching the page: one attempt, its outcome shown at once
    return 1 if event == "test" else config.max_attempts


def _stopped_by(session: Session, n: Notification) -> str | None:
    """Why a fired/escalated notification should no longer go out, or None."""
    if n.event not in ("fired", "escalated") or n.alert_event_id is None:
        return None
    ev = session.scalars(
        select(AlertEvent).where(
            col(AlertEvent.alert_id) == n.alert_id,
            col(AlertEvent.id) > n.alert_event_id,
            col(AlertEvent.action).in_(STOPPING_ACTIONS))
        .order_by(col(AlertEvent.id)).limit(1)
    ).first()
    if ev is None:
        return None
    return f"not sent: the alert was {ev.action} by {ev.actor} at {iso_z(ev.at)}"


def _claim(engine: Engine, config: NotifyConfig, now: datetime, worker: str,
           only_id: int | None = None) -> _Claim | str | None:
    """Take the oldest due notification for one attempt (committed before sending).

    Returns the claim; or the outcome of a row settled without sending ('cancelled',
    'failed', 'deferred'); or None when nothing is due.
    """
    with session_scope(engine) as s:
        stmt = (select(Notification)
                .where(col(Notification.status).in_(_DUE),
                       col(Notification.next_attempt_at) <= now)
                .order_by(col(Notification.next_attempt_at), col(Notification.id))
                .limit(1)
                .with_for_update(skip_locked=True))
        if only_id is not None:
            stmt = stmt.where(col(Notification.id) == only_id)
        n = s.scalars(stmt).first()
        if n is None:
            return None
        label = f"notification {n.id} ({n.event}, alert {n.alert_id}) to {n.contact!r}"
        if n.status == NotificationStatus.SENDING:
            for a in s.scalars(select(DeliveryAttempt).where(
                    col(DeliveryAttempt.notification_id) == n.id,
                    col(DeliveryAttempt.finished_at).is_(None))):
                a.error = ("no outcome recorded: the worker stopped during the attempt "
                           "(lease expired)")
            log.warning("%s: attempt %d by a worker that stopped has no outcome (lease "
                        "expired); taking it up again", label, n.attempts)
            if n.attempts >= _max_attempts(config, n.event):
                n.status = NotificationStatus.FAILED
                n.last_error = "retries used up; the last attempt ended with its worker"
                log.error("%s: failed after %d attempts (the last one's worker stopped)",
                          label, n.attempts)
                return "failed"
        contact = config.contact(n.contact)
        reason = (f"not sent: contact point {n.contact!r} is no longer configured"
                  if contact is None else _stopped_by(s, n))
        if reason is not None:
            n.status = NotificationStatus.CANCELLED
            n.last_error = reason[:_ERROR_MAX]
            log.info("%s cancelled: %s", label, reason)
            return "cancelled"
        until = None if n.event == "test" else config.quiet_until(now, n.severity)
        if until is not None:
            n.status = NotificationStatus.PENDING
            n.next_attempt_at = until
            log.info("%s: quiet hours, deferred to %s", label, iso_z(until))
            return "deferred"
        assert contact is not None
        assert n.id is not None  # read from the database
        n.status = NotificationStatus.SENDING
        n.attempts += 1
        n.next_attempt_at = now + config.lease
        attempt = DeliveryAttempt(notification_id=n.id, worker=worker[:120], started_at=now)
        s.add(attempt)
        s.flush()
        assert attempt.id is not None  # given by the flush
        return _Claim(int(n.id), int(attempt.id), n.attempts, contact,
                      dict(n.payload or {}), n.severity, n.event)


def webhook_id(notification_id: int) -> str:
    """The Standard Webhooks message id: the same on every attempt of one notification."""
    return f"cartwatch-{notification_id}"


def _notify_type(event: str, severity: str) -> Any:
    import apprise

    if event == "resolved":
        return apprise.NotifyType.SUCCESS
    return {"severe": apprise.NotifyType.FAILURE,
            "warning": apprise.NotifyType.WARNING}.get(severity, apprise.NotifyType.INFO)


def send(contact: Contact, payload: Mapping[str, Any], notification_id: int, *,
         environ: Mapping[str, str] | None = None) -> tuple[bool, str | None]:
    """Send one notification through Apprise; returns (ok, error).

    json:// and jsons:// get our JSON document as the body (Apprise's own version,
    attachments and type fields removed, our fields appended after title and message),
    signed per Standard Webhooks over exactly those bytes: NotifyJSON posts
    json.dumps(payload), so the same json.dumps here is the body that is signed.
    """
    import apprise
    from apprise.plugins.custom_json import NotifyJSON
    from standardwebhooks.webhooks import Webhook

    env = os.environ if environ is None else environ
    plugin = apprise.Apprise.instantiate(contact.url, suppress_exceptions=True)
    if plugin is None:
        return False, f"Apprise cannot use the {contact.scheme}:// URL of {contact.name!r}"
    doc = dict(payload)
    title, message = str(doc.pop("title", "")).strip(), str(doc.pop("message", "")).rstrip()
    doc["notification_id"] = notification_id
    if contact.is_webhook:
        assert isinstance(plugin, NotifyJSON)  # Apprise's plugin for json:// and jsons://
        secret = env.get(contact.secret_env or "")
        if not secret:
            return False, (f"the environment variable {contact.secret_env} (the webhook "
                           f"secret of {contact.name!r}) is not set in this process")
        body = json.dumps({"title": title, "message": message, **doc})
        msg_id, sent_at = webhook_id(notification_id), utcnow()
        try:
            signature = Webhook(secret).sign(msg_id, sent_at, body)
        except Exception as exc:  # a malformed secret: recorded as this attempt's error
            return False, f"cannot sign with {contact.secret_env}: {type(exc).__name__}: {exc}"
        plugin.headers.update({"webhook-id": msg_id,
                               "webhook-timestamp": str(math.floor(sent_at.timestamp())),
                               "webhook-signature": signature})
        plugin.payload_extras.update({"version": "", "attachments": "", "type": "", **doc})
    with apprise_messages() as errors:
        try:
            ok = plugin.notify(body=message, title=title,
                               notify_type=_notify_type(str(doc.get("event")),
                                                        str(doc.get("severity"))))
        except Exception as exc:  # Apprise raised instead of returning False: same outcome
            return False, f"{type(exc).__name__}: {exc}"
    if ok:
        return True, None
    return False, "; ".join(errors) or "Apprise reported a failure without a reason"


def _record(engine: Engine, config: NotifyConfig, claim: _Claim, ok: bool,
            error: str | None, now: datetime) -> str:
    """Write one attempt's outcome; returns 'delivered', 'retrying', 'failed' or 'stale'."""
    label = (f"notification {claim.notification_id} ({claim.event}, "
             f"alert {claim.payload.get('alert_id')}) to {claim.contact.name!r}")
    most = _max_attempts(config, claim.event)
    with session_scope(engine) as s:
        attempt = s.get(DeliveryAttempt, claim.attempt_id)
        n = s.get(Notification, claim.notification_id, with_for_update=True)
        assert attempt is not None and n is not None
        attempt.finished_at = now
        attempt.ok = ok
        attempt.error = None if error is None else error[:_ERROR_MAX]
        if n.status != NotificationStatus.SENDING or n.attempts != claim.attempt:
            log.warning("%s: attempt %d ended (%s) after its lease ran out and another "
                        "attempt took over; the row is left to that one", label, claim.attempt,
                        "delivered" if ok else f"failed: {error}")
            return "stale"
        if ok:
            n.status = NotificationStatus.DELIVERED
            n.delivered_at = now
            n.last_error = None
            return "delivered"
        n.last_error = attempt.error
        if n.attempts >= most:
            n.status = NotificationStatus.FAILED
            log.error("%s: attempt %d/%d failed: %s; retries used up, marked failed",
                      label, claim.attempt, most, error)
            return "failed"
        due = now + config.backoff_after(n.attempts)
        due = config.quiet_until(due, n.severity) or due
        n.status = NotificationStatus.PENDING
        n.next_attempt_at = due
        log.warning("%s: attempt %d/%d failed: %s; next attempt at %s", label, claim.attempt,
                    most, error, iso_z(due))
        return "retrying"


def _deliver(engine: Engine, config: NotifyConfig, clock: Callable[[], datetime],
             worker: str, *, only_id: int | None = None, limit: int = 1000,
             environ: Mapping[str, str] | None = None) -> DeliveryReport:
    report = DeliveryReport()
    for _ in range(limit):
        step = _claim(engine, config, clock(), worker, only_id)
        if step is None:
            break
        if isinstance(step, _Claim):
            ok, error = send(step.contact, step.payload, step.notification_id, environ=environ)
            step = _record(engine, config, step, ok, error, clock())
        if step != "stale":
            setattr(report, step, getattr(report, step) + 1)
        if only_id is not None:
            break
    return report


def deliver_pending(engine: Engine, settings: Settings, now: datetime | None = None, *,
                    worker: str, config: NotifyConfig | None = None, limit: int = 1000,
                    environ: Mapping[str, str] | None = None) -> DeliveryReport:
    """Deliver every notification due now (the monitor calls this every cycle).

    Each row is claimed in its own short transaction, sent with Apprise outside any
    transaction, and its outcome recorded: delivered; pending again after an exponential
    backoff (quiet hours respected); or failed once max_attempts are used up. Every attempt
    is a DeliveryAttempt row. A fired/escalated row whose alert was acknowledged, resolved or
    snoozed meanwhile is cancelled instead, with the reason. `now` fixes the clock (tests);
    by default the real clock is read at each step. `worker` names this process
    (core.config.worker_name()). `limit` bounds the rows handled in one run.
    """
    config = notify_config(settings) if config is None else config
    fixed = None if now is None else as_utc(now)
    clock = (lambda: fixed) if fixed is not None else utcnow
    return _deliver(engine, config, clock, worker, limit=limit, environ=environ)


def send_test(engine: Engine, settings: Settings, contact_name: str, actor: str, *,
              role: str | None = None, config: NotifyConfig | None = None,
              worker: str | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Send a test notification to one contact point now; returns the notification's id.

    The request is audited (who, when, which contact). The test goes out at once, whatever
    the quiet hours, and gets one attempt: its row then says delivered or failed (with
    Apprise's reason), which the admin page shows. `role` (None = trusted caller) needs
    site_settings.
    """
    require(role, "site_settings")
    if not actor or not actor.strip():
        raise ValueError("Say who is sending the test: a user name is required.")
    config = notify_config(settings) if config is None else config
    contact = config.contact(contact_name)
    if contact is None:
        names = ", ".join(repr(c.name) for c in config.contacts) or "none"
        raise ValueError(f"There is no contact point named {contact_name!r} "
                         f"(configured: {names}).")
    if worker is None:
        worker = worker_name()
    now = utcnow()
    with session_scope(engine) as s:
        row = Notification(
            dedupe_key=f"test:{uuid4().hex}", event="test", contact=contact.name,
            tier=contact.tier, severity="info",
            payload=payload_for_test(config, contact.name, actor.strip(), now),
            created_at=now, next_attempt_at=now, created_by=actor.strip()[:100])
        s.add(row)
        s.flush()
        audit.record(s, actor=actor.strip(), action="notify_test", table_name="notification",
                     record_id=row.id, after={"contact": contact.name, "kind": contact.scheme},
                     reason="test notification sent from the admin page")
        assert row.id is not None  # given by the flush
        nid = int(row.id)
    _deliver(engine, config, utcnow, worker, only_id=nid, environ=environ)
    return nid
