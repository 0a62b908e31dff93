"""The outbox: notifications written in the transaction of the alert change that causes them.

Writing the Notification row beside the AlertEvent means an alert change and its
notifications commit (or roll back) together: nothing is sent for a change that did not
happen, and nothing is lost when the process dies before sending. Delivery
(core.monitoring.notify.delivery) reads the rows later, outside that transaction.

A payload carries the minimum a person needs to act (bed, initials, rule, severity, grade,
day after infusion, a link and the screening-flag sentence): never a study ID or a value
(the alert's message quotes lab values) unless the site sets include_identifiers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from sqlalchemy import func, select
from sqlmodel import Session, col

from core.monitoring.notify.config import NotifyConfig
from core.store.loading import ward_day
from core.store.models import (
    Alert,
    AlertEvent,
    DeliveryAttempt,
    Notification,
    NotificationStatus,
    Patient,
    as_utc,
)
from core.vocabulary.screening import SCREENING_NOTE

FIRING_ACTIONS = ("fired", "refired", "reopened")
EVENT_OF_ACTION = {**{a: "fired" for a in FIRING_ACTIONS}, "escalated": "escalated",
                   "resolved": "resolved"}
"""Alert actions that notify, and the notification event each one is."""
TIER_OF_EVENT = {"fired": 1, "escalated": 2}
_VERB = {"fired": "fired", "escalated": "escalated (not acknowledged)", "resolved": "resolved"}
_NOTIFIED = (NotificationStatus.DELIVERED.value, NotificationStatus.SENDING.value)


def iso_z(when: datetime) -> str:
    return as_utc(when).astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def patient_link(config: NotifyConfig, alert_id: int | None,
                 study_id: str | None = None) -> str:
    """The patient page for this alert. Without identifiers the link names the alert, not
    the patient: the app resolves it after sign-in (a study ID never leaves the app)."""
    base = f"{config.public_url}/patient"
    if alert_id is None:
        return config.public_url
    if study_id is not None and config.include_identifiers:
        return f"{base}?patient={quote(study_id, safe='')}&alert={alert_id}"
    return f"{base}?alert={alert_id}"


def patient_for_link(session: Session, alert: str | int | None) -> str | None:
    """The study ID a notification's link (`/patient?alert=ID`) opens, read after sign-in;
    None for a missing or malformed id (the page then opens no particular patient)."""
    try:
        alert_id = int(str(alert))
    except ValueError:
        return None
    return session.scalars(select(col(Patient.patient_id))
                           .join(Alert, col(Alert.patient_pk) == col(Patient.id))
                           .where(col(Alert.id) == alert_id)).first()


def _text(doc: dict[str, Any], details: str | None) -> tuple[str, str]:
    """Title and message for people (mail subject and body, chat card)."""
    sev = str(doc["severity"]).upper()
    where = f"bed {doc['bed'] or '–'}"
    title = f"CAR-T Watch · {sev} · {doc['rule_title']} {_VERB[doc['event']]} · {where}"
    who = [where]
    if doc.get("initials"):
        who.append(str(doc["initials"]))
    if doc.get("day") is not None:
        who.append(f"day {doc['day']} after infusion")
    if doc.get("patient_id"):
        who.append(f"study ID {doc['patient_id']}")
    grade = "" if doc.get("grade") is None else f", grade {doc['grade']}"
    lines = [f"{doc['rule_title']} ({doc['rule']}) {_VERB[doc['event']]}: "
             f"severity {doc['severity']}{grade}.",
             " · ".join(who) + ".",
             f"At {doc['at']} (UTC).",
             f"Open: {doc['link']}"]
    if doc.get("reason"):
        lines.insert(1, f"{str(doc['reason'])[:1].upper()}{str(doc['reason'])[1:]}.")
    if details:
        lines.append(f"Details: {details}")
    lines.append(doc["screening_note"])
    return title.strip(), "\n".join(line.strip() for line in lines)


def alert_payload(session: Session, alert: Alert, event_row: AlertEvent, event: str,
                  config: NotifyConfig) -> dict[str, Any]:
    """The document sent for one alert event (JSON body, and the text of mail and chat)."""
    patient = session.get(Patient, alert.patient_pk)
    at = as_utc(event_row.at)
    doc: dict[str, Any] = {
        "event": event, "alert_id": alert.id, "rule": alert.rule_id,
        "rule_title": alert.title, "severity": alert.severity, "grade": alert.grade,
        "bed": None if patient is None else patient.bed,
        "initials": None if patient is None else patient.initials,
        "day": None if patient is None else ward_day(at, patient.infusion_date, config.ward_tz),
        "link": patient_link(config, alert.id, None if patient is None else patient.patient_id),
        "at": iso_z(at), "screening_note": SCREENING_NOTE,
    }
    if event in ("escalated", "resolved") and event_row.note:
        doc["reason"] = event_row.note  # written by core.monitoring.alerts, never a value
    details = None
    if config.include_identifiers:
        doc["patient_id"] = None if patient is None else patient.patient_id
        details = alert.message
        doc["details"] = details
    title, message = _text(doc, details)
    return {"title": title, "message": message, **doc}


def payload_for_test(config: NotifyConfig, contact: str, actor: str,
                     at: datetime) -> dict[str, Any]:
    """A test message: the same keys as an alert's, no patient."""
    return {
        "title": f"CAR-T Watch · test notification to {contact}",
        "message": (f"Test notification to contact point {contact!r}, sent by {actor} at "
                    f"{iso_z(at)} (UTC). No patient is involved.\n"
                    f"Alerts link to {config.public_url}/patient\n{SCREENING_NOTE}"),
        "event": "test", "alert_id": None, "rule": None, "rule_title": None,
        "severity": "info", "grade": None, "bed": None, "initials": None, "day": None,
        "link": config.public_url, "at": iso_z(at), "screening_note": SCREENING_NOTE,
    }


def _contacts_told(session: Session, alert_id: int, before_event: int) -> set[str]:
    """Contacts told of this alert's current spell (since its last resolution): they are
    the ones to hear that it resolved."""
    E, N = AlertEvent, Notification
    last_resolved = (select(func.coalesce(func.max(col(E.id)), 0))
                     .where(col(E.alert_id) == alert_id, col(E.action) == "resolved",
                            col(E.id) < before_event)
                     .scalar_subquery())
    stmt = select(col(N.contact)).where(
        col(N.alert_id) == alert_id,
        col(N.event).in_(("fired", "escalated")),
        col(N.status).in_(_NOTIFIED),
        col(N.alert_event_id) > last_resolved)
    return set(session.scalars(stmt))


def enqueue(session: Session, alert: Alert, event_row: AlertEvent, action: str,
            config: NotifyConfig | None) -> list[Notification]:
    """Write the notifications of one alert event, in the caller's transaction.

    fired/refired/reopened notify tier-1 contacts, escalated tier-2 contacts (each filtered
    by min_severity and rules); resolved notifies the contacts told of this firing spell.
    One row per (event, contact): the dedupe key "<event id>:<contact>" is unique, so an
    event is never sent twice to one contact. A non-severe notification created in quiet
    hours waits for their end. Returns the rows added (none for other actions).
    """
    event = EVENT_OF_ACTION.get(action)
    if config is None or not config.contacts or event is None:
        return []
    if event == "resolved":
        if alert.id is None:
            return []
        if event_row.id is None:
            session.flush()
        assert event_row.id is not None  # given by the flush
        told = _contacts_told(session, alert.id, int(event_row.id))
        targets = [c for c in config.contacts if c.name in told]
    else:
        targets = [c for c in config.contacts
                   if c.tier == TIER_OF_EVENT[event] and c.accepts(alert.severity, alert.rule_id)]
    if not targets:
        return []
    if event_row.id is None or alert.id is None:
        session.flush()  # the dedupe key and the payload's alert_id need the ids
    doc = alert_payload(session, alert, event_row, event, config)
    at = as_utc(event_row.at)
    due = config.quiet_until(at, alert.severity) or at
    rows = []
    for contact in targets:
        row = Notification(
            dedupe_key=f"{event_row.id}:{contact.name}", alert_id=alert.id,
            alert_event_id=event_row.id, event=event, contact=contact.name, tier=contact.tier,
            severity=alert.severity, payload={**doc, "tier": contact.tier},
            status=NotificationStatus.PENDING, created_at=at, next_attempt_at=due,
            created_by=event_row.actor,
        )
        session.add(row)
        rows.append(row)
    return rows


# ------------------------------------------------------------------ read side (admin page)

def contact_rows(config: NotifyConfig, environ: dict[str, str] | None = None
                 ) -> list[dict[str, Any]]:
    """The contact points and policies in force, one dict per contact, for a table.
    The URL is shown as Apprise prints it with privacy on (passwords and tokens masked)."""
    import os

    import apprise

    env = os.environ if environ is None else environ
    out = []
    for c in config.contacts:
        plugin = apprise.Apprise.instantiate(c.url, suppress_exceptions=True)
        if c.secret_env is None:
            signing = "—"
        elif env.get(c.secret_env):
            signing = f"signed ({c.secret_env} set)"
        else:
            signing = f"{c.secret_env} NOT SET in this process"
        out.append({
            "name": c.name, "kind": c.scheme,
            "target": plugin.url(privacy=True) if plugin is not None else "(invalid)",
            "min_severity": c.min_severity, "rules": ", ".join(c.rules) or "every rule",
            "tier": c.tier, "when": "fires" if c.tier == 1 else "escalates unacknowledged",
            "signing": signing,
        })
    return out


def _attempts(session: Session, ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    if not ids:
        return out
    stmt = (select(DeliveryAttempt)
            .where(col(DeliveryAttempt.notification_id).in_(ids))
            .order_by(col(DeliveryAttempt.id)))
    for a in session.scalars(stmt):
        out[a.notification_id].append({
            "worker": a.worker, "started_at": a.started_at, "finished_at": a.finished_at,
            "ok": a.ok, "error": a.error})
    return out


def _rows(session: Session, stmt: Any) -> list[dict[str, Any]]:
    notes = list(session.scalars(stmt))
    attempts = _attempts(session, [int(n.id) for n in notes])
    return [{
        "id": n.id, "created_at": n.created_at, "event": n.event, "contact": n.contact,
        "tier": n.tier, "severity": n.severity, "rule": (n.payload or {}).get("rule"),
        "bed": (n.payload or {}).get("bed"), "status": str(n.status), "attempts": n.attempts,
        "next_attempt_at": n.next_attempt_at, "delivered_at": n.delivered_at,
        "last_error": n.last_error, "created_by": n.created_by,
        "attempt_log": attempts[int(n.id)],
    } for n in notes]


def delivery_log(session: Session, limit: int = 50) -> list[dict[str, Any]]:
    """The latest `limit` notifications, newest first, each with every delivery attempt."""
    return _rows(session, select(Notification)
                 .order_by(col(Notification.id).desc())
                 .limit(limit))


def failed_deliveries(session: Session, limit: int = 200) -> list[dict[str, Any]]:
    """Notifications whose retries are used up, newest first, with their attempts."""
    return _rows(session, select(Notification)
                 .where(col(Notification.status) == NotificationStatus.FAILED.value)
                 .order_by(col(Notification.id).desc())
                 .limit(limit))
