"""Alert lifecycle over the `alert` and `alertevent` tables.

One alert per (patient, rule, episode_key). `sync_alerts` is what `evaluate` calls with a
patient's findings; the clinician actions (`acknowledge`, `snooze`) are in
core.monitoring.alert_actions. Every state change
writes an `AlertEvent` (who, when, action, note) and an `AuditLog` row in the caller's
transaction, so an alert never changes without its history.

States: firing -> acknowledged | snoozed | escalated | resolved;
escalated -> acknowledged | snoozed | resolved; acknowledged/snoozed -> resolved;
snoozed -> firing when the snooze expires; resolved -> firing ("refired") when the same
episode returns; acknowledged/snoozed -> firing ("reopened") when the finding worsens.

Every alert is a screening flag for clinician review, never a diagnosis: the message says so.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlmodel import Session, col

from core.rules.base import Finding, RuleSpec, Severity, Status
from core.rules.catalog import informational_ids
from core.store.db import IN_CHUNK, table_of
from core.store.models import Alert, AlertEvent, AlertState, AuditLog, Patient, as_utc, utcnow
from core.vocabulary.screening import SCREENING_NOTE

if TYPE_CHECKING:
    from core.monitoring.notify.config import NotifyConfig
DEFAULT_ESCALATE_AFTER = timedelta(hours=2)  # [DESIGN] unacknowledged severe alert -> escalated

OPEN_STATES = frozenset({
    AlertState.FIRING, AlertState.ACKNOWLEDGED, AlertState.SNOOZED, AlertState.ESCALATED,
})
_FIRING_ENTRY = ("fired", "refired", "unsnoozed", "reopened")  # events that start a firing spell
RANK = {Severity.INFO.value: 0, Severity.WARNING.value: 1, Severity.SEVERE.value: 2}


@dataclass
class SyncResult:
    """What one sync did, by action (counts)."""

    fired: int = 0
    updated: int = 0
    refired: int = 0
    reopened: int = 0
    resolved: int = 0
    unsnoozed: int = 0
    escalated: int = 0


def episode_key_of(finding: Finding) -> str:
    """The finding's episode key, or one derived from its onset day."""
    if finding.episode_key:
        return finding.episode_key
    if finding.since_day is not None and not math.isnan(finding.since_day):
        return f"since-day-{math.floor(finding.since_day)}"
    return "current"


def severity_of(finding: Finding, spec: RuleSpec | None) -> str:
    """The rule's declared severity, raised to severe from its `escalates_at_grade`.

    The alarm policy is data on each rule [DESIGN]: e.g. crs_grade/icans_grade/ICAHT severe
    from grade 3, CTCAE terms from grade 4, and ctcae_alc/ctcae_wbc (expected after
    lymphodepletion) never. A rule without `escalates_at_grade` keeps its severity.
    """
    if spec is None:
        return Severity.WARNING.value
    at = spec.rule.escalates_at_grade
    if at is not None and finding.grade is not None and finding.grade >= at:
        return Severity.SEVERE.value
    return spec.rule.severity.value


def is_alertable(finding: Finding) -> bool:
    """A met finding of a rule that is not purely informational (Rule.informational [DESIGN]:
    its findings inform the patient page but never raise an alert)."""
    return finding.status == Status.MET and finding.rule not in informational_ids()


def _fmt(x: float) -> str:
    return f"{x:g}"


def message_of(finding: Finding, title: str) -> str:
    """One readable sentence about the finding, always with the screening-flag note."""
    parts = [title]
    if finding.grade is not None:
        parts.append(f"grade {finding.grade}")
    if finding.score is not None:
        parts.append(f"score {_fmt(finding.score)}")
    if finding.since_day is not None and not math.isnan(finding.since_day):
        parts.append(f"since day {math.floor(finding.since_day)}")
    text = ", ".join(parts) + "."
    if finding.evidence:
        text += " " + "; ".join(e.why for e in finding.evidence[:3] if e.why) + "."
    if finding.missing:
        text += " Missing: " + ", ".join(finding.missing) + "."
    note = " " + SCREENING_NOTE
    return text[: 2000 - len(note)] + note


def alert_state(alert: Alert) -> dict[str, Any]:
    """What an alert's event and audit rows record of it before and after a change."""
    return {
        "state": str(alert.state), "severity": alert.severity, "grade": alert.grade,
        "fire_count": alert.fire_count,
    }


class Recorder:
    """Collects the AlertEvent and AuditLog rows of each change (and, given a NotifyConfig,
    the notifications they cause) and writes them in `write()`, in the caller's transaction:
    one flush for the new alerts' ids, then one multi-row INSERT per table. A ward's sync
    makes hundreds of such rows; built one ORM object and one flush at a time, they cost more
    than its rules. Call `write()` before anything reads the alert's events (escalation)."""

    def __init__(self, session: Session, notify: NotifyConfig | None = None) -> None:
        self.session = session
        self.notify = notify if notify is not None and notify.contacts else None
        self._patient_ids: dict[int, str | None] = {}
        self._changes: list[tuple[Alert, str, str, datetime, dict[str, Any] | None,
                                  dict[str, Any], str | None]] = []

    def patient_id(self, patient_pk: int) -> str | None:
        if patient_pk not in self._patient_ids:
            p = self.session.get(Patient, patient_pk)
            self._patient_ids[patient_pk] = None if p is None else p.patient_id
        return self._patient_ids[patient_pk]

    def __call__(
        self, alert: Alert, action: str, actor: str, at: datetime,
        before: dict[str, Any] | None, note: str | None = None,
    ) -> None:
        if alert.id is None:
            self.session.add(alert)
        self._changes.append((alert, action, actor, at, before, alert_state(alert), note))

    def write(self) -> None:
        """Write what was recorded since the last call."""
        changes, self._changes = self._changes, []
        if not changes:
            return
        if any(alert.id is None for alert, *_ in changes):
            self.session.flush()
        events: list[dict[str, Any]] = [
            {"alert_id": alert.id, "at": at, "actor": actor, "action": action, "note": note}
            for alert, action, actor, at, _b, _a, note in changes]
        table = table_of(AlertEvent)  # Core, not the ORM's bulk path: no objects to build
        ids = self.session.execute(table.insert().returning(
            table.c.id, sort_by_parameter_order=True), events).scalars().all()
        stamp = utcnow()
        self.session.execute(table_of(AuditLog).insert(), [{
            "at": stamp, "actor": actor, "action": f"alert_{action}", "table_name": "alert",
            "record_id": str(alert.id), "patient_id": self.patient_id(alert.patient_pk),
            "before": before, "after": after, "reason": note,
        } for alert, action, actor, _at, before, after, note in changes])
        if self.notify is not None:
            from core.monitoring.notify.outbox import enqueue  # the outbox reads alerts' rows

            for (alert, action, *_), event_id, row in zip(changes, ids, events, strict=True):
                enqueue(self.session, alert, AlertEvent(id=event_id, **row), action,
                        self.notify)


def _fill(alert: Alert, finding: Finding, title: str, severity: str, now: datetime) -> None:
    """The alert's fields from the finding. A field already equal is not set again: setting
    a mapped attribute costs more than reading it, and an equal value is not written."""
    for name, value in (("title", title[:200]), ("message", message_of(finding, title)),
                        ("severity", severity), ("since_day", finding.since_day),
                        ("grade", finding.grade), ("score", finding.score),
                        ("evidence", [e.to_json() for e in finding.evidence]),
                        ("missing", list(finding.missing)), ("last_seen_at", now)):
        if getattr(alert, name) != value:
            setattr(alert, name, value)


def _worsened(alert: Alert, severity: str, grade: int | None) -> bool:
    if RANK.get(severity, 0) > RANK.get(alert.severity, 0):
        return True
    return grade is not None and alert.grade is not None and grade > alert.grade


def sync_alerts(
    session: Session,
    patient_pk: int,
    findings: Iterable[Finding],
    rule_specs_by_id: Mapping[str, RuleSpec],
    now: datetime | None = None,
    *,
    escalate_after: timedelta = DEFAULT_ESCALATE_AFTER,
    actor: str = "system",
    alerts: Iterable[Alert] | None = None,
    notify: NotifyConfig | None = None,
) -> SyncResult:
    """Bring one patient's alerts in line with their current findings.

    A met finding fires a new alert or refreshes the open one of its (rule, episode_key);
    an open alert whose rule is no longer met (not_met, or met under another episode) is
    resolved; a not_evaluable rule leaves its alert as it is (a missing lab is not recovery).
    Expired snoozes fire again, and severe alerts firing unacknowledged for longer than
    `escalate_after` are escalated. `alerts` are all of the patient's alerts when the caller
    has read them already (`alerts_by_patient`); by default they are read here. With
    `notify` (core.monitoring.notify.notify_config), the changes that notify (fired, refired,
    reopened, escalated, resolved) also write their outbox rows here.
    """
    now = as_utc(now) or utcnow()
    rec = Recorder(session, notify)
    result = SyncResult()
    findings = list(findings)
    if alerts is None:
        alerts = alerts_by_patient(session, [patient_pk])[patient_pk]
    alerts = list(alerts)
    existing = {(a.rule_id, a.episode_key): a for a in alerts}

    met: dict[tuple[str, str], Finding] = {}
    for f in findings:
        if is_alertable(f):
            met.setdefault((f.rule, episode_key_of(f)), f)
    met_rules = {rule for rule, _ in met}
    unknown_rules = {f.rule for f in findings if f.status == Status.NOT_EVALUABLE} - met_rules

    for (rule_id, key), f in met.items():
        spec = rule_specs_by_id.get(rule_id)
        title = spec.rule.title if spec is not None else rule_id
        severity = severity_of(f, spec)
        alert = existing.get((rule_id, key))
        if alert is None:
            # every field given: a default_factory (list, utcnow) costs pydantic a signature
            # inspection per instance, ~0.4 ms, more than the rest of the construction
            alert = Alert(patient_pk=patient_pk, rule_id=rule_id, episode_key=key[:40],
                          severity=severity, title=title, message="", state=AlertState.FIRING,
                          first_fired_at=now, last_seen_at=now, fire_count=1, evidence=[],
                          missing=[])
            _fill(alert, f, title, severity, now)
            rec(alert, "fired", actor, now, None, alert.message)
            alerts.append(alert)
            result.fired += 1
            continue
        before = alert_state(alert)
        state = AlertState(alert.state)
        if state == AlertState.RESOLVED:
            _fill(alert, f, title, severity, now)
            alert.state = AlertState.FIRING
            alert.fire_count += 1
            alert.resolved_at = None
            alert.escalated_at = None
            alert.acknowledged_by = alert.acknowledged_at = alert.ack_note = None
            alert.snoozed_until = alert.snooze_reason = None
            rec(alert, "refired", actor, now, before, alert.message)
            result.refired += 1
            continue
        worse = _worsened(alert, severity, f.grade)
        _fill(alert, f, title, severity, now)
        result.updated += 1
        if worse and state in (AlertState.ACKNOWLEDGED, AlertState.SNOOZED):
            alert.state = AlertState.FIRING
            alert.snoozed_until = alert.snooze_reason = None
            rec(alert, "reopened", actor, now, before, f"worsened: {alert.message}")
            result.reopened += 1
        elif worse:
            rec(alert, "worsened", actor, now, before, alert.message)

    for (rule_id, key), alert in existing.items():
        if alert.state not in OPEN_STATES or (rule_id, key) in met:
            continue
        if rule_id in unknown_rules:
            continue
        before = alert_state(alert)
        alert.state = AlertState.RESOLVED
        alert.resolved_at = now
        alert.snoozed_until = None
        rec(alert, "resolved", actor, now, before, "condition no longer met")
        result.resolved += 1

    for alert in existing.values():
        until = as_utc(alert.snoozed_until)
        if alert.state == AlertState.SNOOZED and until is not None and until <= now:
            before = alert_state(alert)
            alert.state = AlertState.FIRING
            alert.snoozed_until = None
            rec(alert, "unsnoozed", actor, now, before, "snooze expired")
            result.unsnoozed += 1

    rec.write()  # before escalation reads the firing spells' events
    result.escalated = _escalate(session, alerts, now, escalate_after, actor, notify)
    return result


def alerts_by_patient(session: Session, patient_pks: Iterable[int]) -> dict[int, list[Alert]]:
    """Every alert (any state) of these patients, oldest first: a ward's in one query,
    not one query per patient."""
    pks = list(patient_pks)
    out: dict[int, list[Alert]] = {pk: [] for pk in pks}
    for i in range(0, len(pks), IN_CHUNK):
        stmt = (select(Alert).where(col(Alert.patient_pk).in_(pks[i:i + IN_CHUNK]))
                .order_by(col(Alert.id)))
        for alert in session.scalars(stmt):
            out[alert.patient_pk].append(alert)
    return out


def firing_since(session: Session, alert: Alert) -> datetime:
    """When the alert's current firing spell began (fired, refired, unsnoozed, reopened)."""
    E = AlertEvent
    at = session.scalars(
        select(col(E.at))
        .where(col(E.alert_id) == alert.id, col(E.action).in_(_FIRING_ENTRY))
        .order_by(col(E.at).desc(), col(E.id).desc())
        .limit(1)
    ).first()
    return as_utc(at) or as_utc(alert.first_fired_at)


def escalate_overdue(
    session: Session,
    now: datetime | None = None,
    escalate_after: timedelta = DEFAULT_ESCALATE_AFTER,
    *,
    patient_pk: int | None = None,
    actor: str = "system",
    notify: NotifyConfig | None = None,
) -> int:
    """Escalate severe alerts still firing (unacknowledged) for longer than `escalate_after`
    (with `notify`, the tier-2 notifications are written too)."""
    now = as_utc(now) or utcnow()
    stmt = select(Alert).where(col(Alert.state) == AlertState.FIRING.value,
                               col(Alert.severity) == Severity.SEVERE.value)
    if patient_pk is not None:
        stmt = stmt.where(col(Alert.patient_pk) == patient_pk)
    count = _escalate(session, session.scalars(stmt).all(), now, escalate_after, actor, notify)
    session.flush()
    return count


def _alert_pk(alert: Alert) -> int:
    assert alert.id is not None  # stored, or flushed by Recorder.write before escalation
    return alert.id


def _escalate(session: Session, alerts: Iterable[Alert], now: datetime,
              escalate_after: timedelta, actor: str, notify: NotifyConfig | None = None) -> int:
    """escalate_overdue over the given alerts (those not severe and firing are skipped)."""
    rec = Recorder(session, notify)
    count = 0
    for alert in sorted(alerts, key=_alert_pk):
        if alert.state != AlertState.FIRING or alert.severity != Severity.SEVERE:
            continue
        if now - firing_since(session, alert) > escalate_after:
            before = alert_state(alert)
            alert.state = AlertState.ESCALATED
            alert.escalated_at = now
            hours = escalate_after.total_seconds() / 3600
            rec(alert, "escalated", actor, now, before,
                f"severe alert unacknowledged for more than {hours:g} h")
            count += 1
    rec.write()
    return count


def resolve_for_inactive(
    session: Session, active_pks: Iterable[int], now: datetime | None = None,
    actor: str = "system", *, notify: NotifyConfig | None = None,
) -> int:
    """Resolve the open alerts of patients who are no longer active (discharged, ...)."""
    now = as_utc(now) or utcnow()
    stmt = select(Alert).where(col(Alert.state).in_([s.value for s in OPEN_STATES]),
                               col(Alert.patient_pk).not_in(sorted(set(active_pks))))
    rec = Recorder(session, notify)
    count = 0
    for alert in session.scalars(stmt).all():
        before = alert_state(alert)
        alert.state = AlertState.RESOLVED
        alert.resolved_at = now
        alert.snoozed_until = None
        rec(alert, "resolved", actor, now, before, "patient no longer active")
        count += 1
    rec.write()
    session.flush()
    return count
