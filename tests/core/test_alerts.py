"""Alert lifecycle: fire once, resolve, re-fire, escalate, snooze, acknowledge, history, audit."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlmodel import select

from core.monitoring.alert_actions import acknowledge, alert_history, snooze
from core.monitoring.alerts import SCREENING_NOTE, resolve_for_inactive, sync_alerts
from core.rules.base import (
    Citation,
    EvidenceItem,
    Finding,
    Rule,
    RuleSpec,
    Severity,
    Status,
)
from core.store.db import session_scope
from core.store.models import Alert, AlertEvent, AuditLog, Patient
from core.vocabulary.units import Evidence
from tests.rule_toys import course_rule

T0 = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)


def spec(rule_id: str, severity: Severity = Severity.WARNING, graded: bool = False,
         escalates_at_grade: int | None = None) -> RuleSpec:
    rule = Rule(id=rule_id, title=f"Title of {rule_id}", version="1",
                citation=Citation("test", "§0"), evidence=Evidence.DESIGN, severity=severity,
                thresholds=(), inputs=(), graded=graded, escalates_at_grade=escalates_at_grade)
    return course_rule(rule, lambda course, t: Finding(rule_id, Status.NOT_MET))


SPECS = {s.rule.id: s for s in (
    spec("ferritin_rise"),
    spec("crs_grade", Severity.WARNING, graded=True, escalates_at_grade=3),
    spec("ctcae_anc", Severity.WARNING, graded=True, escalates_at_grade=4),
    spec("ctcae_alc", Severity.INFO, graded=True),
    spec("iec_hs", Severity.SEVERE),
    spec("car_hematotox", Severity.INFO),
)}


def met(rule: str, since: float = 8.0, grade: int | None = None, **kw: object) -> Finding:
    return Finding(rule=rule, status=Status.MET, since_day=since, grade=grade,
                   evidence=[EvidenceItem(why="> 2 x baseline (800)", analyte="ferritin",
                                          day=since, value=9500, unit="ng/mL")],
                   missing=["hemophagocytosis"], **kw)  # type: ignore[arg-type]


def not_met(rule: str) -> Finding:
    return Finding(rule=rule, status=Status.NOT_MET)


@pytest.fixture
def pk(add) -> int:  # type: ignore[no-untyped-def]
    (p,) = add(Patient(patient_id="P001", product="axi-cel", infusion_date=date(2026, 3, 1)))
    return int(p.id)


@pytest.fixture
def sync(engine, pk):  # type: ignore[no-untyped-def]
    def _sync(findings: list[Finding], now: datetime, **kw: object):  # type: ignore[no-untyped-def]
        with session_scope(engine) as s:
            return sync_alerts(s, pk, findings, SPECS, now, **kw)  # type: ignore[arg-type]
    return _sync


def alerts(engine) -> list[Alert]:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        return list(s.exec(select(Alert).order_by(Alert.id)))


def actions(engine, alert_id: int) -> list[str]:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        return [e.action for e in alert_history(s, alert_id)]


def audit(engine) -> list[AuditLog]:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        return list(s.exec(select(AuditLog).where(AuditLog.table_name == "alert")
                           .order_by(AuditLog.id)))


def test_a_met_finding_fires_one_alert_however_often_it_is_evaluated(engine, sync) -> None:
    for hours in range(4):
        sync([met("ferritin_rise")], T0 + timedelta(hours=hours))
    (a,) = alerts(engine)
    assert (a.state, a.fire_count, a.rule_id, a.episode_key) == (
        "firing", 1, "ferritin_rise", "since-day-8")
    assert a.first_fired_at == T0 and a.last_seen_at == T0 + timedelta(hours=3)
    assert actions(engine, a.id) == ["fired"]


def test_an_alert_says_what_and_that_it_is_a_screening_flag(engine, sync) -> None:
    sync([met("crs_grade", grade=2)], T0)
    (a,) = alerts(engine)
    assert a.title == "Title of crs_grade"
    assert "grade 2" in a.message and "since day 8" in a.message
    assert SCREENING_NOTE in a.message
    assert SCREENING_NOTE == "Screening flag for clinician review — not a diagnosis."
    assert a.evidence[0]["value"] == 9500 and a.missing == ["hemophagocytosis"]
    assert (a.severity, a.grade, a.since_day) == ("warning", 2, 8.0)


@pytest.mark.parametrize(("rule", "grade", "severity"), [
    pytest.param("ctcae_anc", 3, "warning", id="ctcae-grade-3-stays-warning"),
    pytest.param("ctcae_anc", 4, "severe", id="ctcae-escalates-at-its-grade-4"),
    pytest.param("ctcae_alc", 4, "info", id="never-escalating-rule-stays-info-at-grade-4"),
    pytest.param("crs_grade", 2, "warning", id="declared-severity"),
    pytest.param("crs_grade", 3, "severe", id="crs-escalates-at-its-grade-3"),
    pytest.param("iec_hs", None, "severe", id="ungraded-severe-rule"),
])
def test_severity_is_the_rules_raised_to_severe_from_its_escalation_grade(
        engine, sync, rule: str, grade: int | None, severity: str) -> None:
    sync([met(rule, grade=grade)], T0)
    assert alerts(engine)[0].severity == severity


def test_catalogue_alarm_policy_for_ctcae_lymphopenia_and_counts() -> None:
    from core.monitoring.alerts import severity_of
    from core.rules.catalog import spec_by_id

    alc, anc = spec_by_id("ctcae_alc"), spec_by_id("ctcae_anc")
    assert severity_of(met("ctcae_alc", grade=4), alc) == "info"
    assert severity_of(met("ctcae_anc", grade=3), anc) == "warning"
    assert severity_of(met("ctcae_anc", grade=4), anc) == "severe"
    assert severity_of(met("crs_grade", grade=3), spec_by_id("crs_grade")) == "severe"


def test_purely_informational_rules_and_unmet_findings_raise_no_alert(engine, sync) -> None:
    sync([met("car_hematotox"), not_met("ferritin_rise"),
          Finding("crs_grade", Status.NOT_MET, grade=0)], T0)
    assert alerts(engine) == []


def test_an_alert_resolves_by_itself_when_its_condition_is_no_longer_met(engine, sync) -> None:
    sync([met("ferritin_rise")], T0)
    result = sync([not_met("ferritin_rise")], T0 + timedelta(hours=6))
    (a,) = alerts(engine)
    assert result.resolved == 1
    assert a.state == "resolved" and a.resolved_at == T0 + timedelta(hours=6)
    assert actions(engine, a.id) == ["fired", "resolved"]


def test_a_rule_that_cannot_be_evaluated_leaves_its_alert_open(engine, sync) -> None:
    sync([met("ferritin_rise")], T0)
    sync([Finding("ferritin_rise", Status.NOT_EVALUABLE, missing=["ferritin"])],
         T0 + timedelta(hours=6))
    assert alerts(engine)[0].state == "firing"


def test_a_returning_episode_re_fires_the_same_alert(engine, sync) -> None:
    sync([met("ferritin_rise")], T0)
    with session_scope(engine) as s:
        acknowledge(s, alerts(engine)[0].id, "dr.who", "seen", now=T0 + timedelta(minutes=5))
    sync([not_met("ferritin_rise")], T0 + timedelta(hours=6))
    result = sync([met("ferritin_rise")], T0 + timedelta(hours=12))
    (a,) = alerts(engine)
    assert result.refired == 1
    assert (a.state, a.fire_count, a.resolved_at, a.acknowledged_by) == ("firing", 2, None, None)
    assert actions(engine, a.id) == ["fired", "acknowledged", "resolved", "refired"]


def test_a_new_episode_is_a_new_alert_and_closes_the_old_one(engine, sync) -> None:
    sync([met("ferritin_rise", since=8)], T0)
    sync([met("ferritin_rise", since=15)], T0 + timedelta(days=7))
    old, new = alerts(engine)
    assert (old.episode_key, old.state) == ("since-day-8", "resolved")
    assert (new.episode_key, new.state) == ("since-day-15", "firing")


def test_an_explicit_episode_key_wins(engine, sync) -> None:
    sync([met("ferritin_rise", episode_key="ep-1")], T0)
    assert alerts(engine)[0].episode_key == "ep-1"


def test_a_severe_alert_unacknowledged_past_the_limit_escalates(engine, sync) -> None:
    sync([met("iec_hs"), met("ferritin_rise")], T0)
    sync([met("iec_hs"), met("ferritin_rise")], T0 + timedelta(hours=2))
    assert [a.state for a in alerts(engine)] == ["firing", "firing"]  # exactly 2 h: not yet
    result = sync([met("iec_hs"), met("ferritin_rise")], T0 + timedelta(hours=2, minutes=1))
    severe, warning = alerts(engine)
    assert result.escalated == 1
    assert severe.state == "escalated"
    assert severe.escalated_at == T0 + timedelta(hours=2, minutes=1)
    assert warning.state == "firing"  # only severe alerts escalate
    assert actions(engine, severe.id) == ["fired", "escalated"]
    # escalated stays escalated (no second event) until someone acknowledges it
    sync([met("iec_hs"), met("ferritin_rise")], T0 + timedelta(hours=3))
    assert actions(engine, severe.id) == ["fired", "escalated"]


def test_the_escalation_delay_is_a_parameter(engine, sync) -> None:
    sync([met("iec_hs")], T0)
    sync([met("iec_hs")], T0 + timedelta(minutes=31), escalate_after=timedelta(minutes=30))
    assert alerts(engine)[0].state == "escalated"


def test_an_acknowledged_alert_does_not_escalate(engine, sync) -> None:
    sync([met("iec_hs")], T0)
    with session_scope(engine) as s:
        acknowledge(s, alerts(engine)[0].id, "nurse.a", None, now=T0 + timedelta(minutes=30))
    sync([met("iec_hs")], T0 + timedelta(hours=5))
    assert alerts(engine)[0].state == "acknowledged"


def test_acknowledge_records_who_when_and_note_with_an_audit_row(engine, sync) -> None:
    sync([met("iec_hs")], T0)
    alert_id = alerts(engine)[0].id
    when = T0 + timedelta(minutes=20)
    with session_scope(engine) as s:
        acknowledge(s, alert_id, "dr.house", "ferritin repeat ordered", now=when)
    (a,) = alerts(engine)
    assert (a.state, a.acknowledged_by, a.acknowledged_at, a.ack_note) == (
        "acknowledged", "dr.house", when, "ferritin repeat ordered")
    with session_scope(engine) as s:
        last = alert_history(s, alert_id)[-1]
    assert (last.action, last.actor, last.at, last.note) == (
        "acknowledged", "dr.house", when, "ferritin repeat ordered")
    row = audit(engine)[-1]
    assert (row.actor, row.action, row.table_name, row.record_id, row.patient_id) == (
        "dr.house", "alert_acknowledged", "alert", str(alert_id), "P001")
    assert row.before["state"] == "firing" and row.after["state"] == "acknowledged"
    assert row.reason == "ferritin repeat ordered"


def test_acknowledge_refuses_resolved_or_unknown_alerts_and_needs_a_user(engine, sync) -> None:
    sync([met("ferritin_rise")], T0)
    sync([not_met("ferritin_rise")], T0 + timedelta(hours=1))
    alert_id = alerts(engine)[0].id
    with session_scope(engine) as s:
        with pytest.raises(ValueError, match="already resolved"):
            acknowledge(s, alert_id, "dr.house")
        with pytest.raises(ValueError, match="user name"):
            acknowledge(s, alert_id, "  ")
        with pytest.raises(LookupError, match="no alert with id 999"):
            acknowledge(s, 999, "dr.house")


@pytest.mark.parametrize(("reason", "until", "message"), [
    pytest.param("", T0 + timedelta(hours=4), "needs a reason", id="no-reason"),
    pytest.param("   ", T0 + timedelta(hours=4), "needs a reason", id="blank-reason"),
    pytest.param("on it", T0 - timedelta(minutes=1), "in the future", id="past-expiry"),
    pytest.param("on it", T0, "in the future", id="expiry-now"),
    pytest.param("on it", datetime(2026, 3, 10, 12), "time zone", id="naive-expiry"),
])
def test_snooze_requires_a_reason_and_a_future_expiry(
        engine, sync, reason: str, until: datetime, message: str) -> None:
    sync([met("ferritin_rise")], T0)
    with session_scope(engine) as s:
        with pytest.raises(ValueError, match=message):
            snooze(s, alerts(engine)[0].id, "dr.house", reason, until, now=T0)
    assert alerts(engine)[0].state == "firing"


def test_a_snoozed_alert_fires_again_once_its_snooze_expires(engine, sync) -> None:
    sync([met("ferritin_rise")], T0)
    alert_id = alerts(engine)[0].id
    until = T0 + timedelta(hours=4)
    with session_scope(engine) as s:
        snooze(s, alert_id, "dr.house", "known, repeat lab at 12:00", until, now=T0)
    (a,) = alerts(engine)
    assert (a.state, a.snoozed_until, a.snooze_reason) == (
        "snoozed", until, "known, repeat lab at 12:00")
    sync([met("ferritin_rise")], T0 + timedelta(hours=3))
    assert alerts(engine)[0].state == "snoozed"
    result = sync([met("ferritin_rise")], T0 + timedelta(hours=4))
    assert result.unsnoozed == 1 and alerts(engine)[0].state == "firing"
    assert actions(engine, alert_id) == ["fired", "snoozed", "unsnoozed"]


def test_a_snoozed_severe_alert_escalates_only_after_the_limit_counted_from_expiry(
        engine, sync) -> None:
    sync([met("iec_hs")], T0)
    with session_scope(engine) as s:
        snooze(s, alerts(engine)[0].id, "dr.house", "treating", T0 + timedelta(hours=3), now=T0)
    sync([met("iec_hs")], T0 + timedelta(hours=3))
    assert alerts(engine)[0].state == "firing"
    sync([met("iec_hs")], T0 + timedelta(hours=5, minutes=1))
    assert alerts(engine)[0].state == "escalated"


def test_a_worse_grade_reopens_an_acknowledged_alert(engine, sync) -> None:
    sync([met("crs_grade", grade=1)], T0)
    alert_id = alerts(engine)[0].id
    with session_scope(engine) as s:
        acknowledge(s, alert_id, "dr.house", "grade 1, watching", now=T0)
    sync([met("crs_grade", grade=1)], T0 + timedelta(hours=1))
    assert alerts(engine)[0].state == "acknowledged"
    sync([met("crs_grade", grade=3)], T0 + timedelta(hours=2))
    (a,) = alerts(engine)
    assert (a.state, a.grade, a.severity) == ("firing", 3, "severe")
    assert actions(engine, alert_id) == ["fired", "acknowledged", "reopened"]


def test_history_is_complete_and_in_order_with_an_audit_row_per_change(engine, sync) -> None:
    sync([met("iec_hs")], T0)
    alert_id = alerts(engine)[0].id
    with session_scope(engine) as s:
        snooze(s, alert_id, "nurse.b", "doctor called", T0 + timedelta(hours=1), now=T0)
    sync([met("iec_hs")], T0 + timedelta(hours=1))  # unsnoozed
    sync([met("iec_hs")], T0 + timedelta(hours=3, minutes=1))  # escalated
    with session_scope(engine) as s:
        acknowledge(s, alert_id, "dr.house", "anakinra started", now=T0 + timedelta(hours=4))
    sync([not_met("iec_hs")], T0 + timedelta(days=2))  # resolved
    sync([met("iec_hs")], T0 + timedelta(days=3))  # refired
    with session_scope(engine) as s:
        history = alert_history(s, alert_id)
    assert [(e.action, e.actor) for e in history] == [
        ("fired", "system"), ("snoozed", "nurse.b"), ("unsnoozed", "system"),
        ("escalated", "system"), ("acknowledged", "dr.house"), ("resolved", "system"),
        ("refired", "system"),
    ]
    assert [e.at for e in history] == sorted(e.at for e in history)
    rows = audit(engine)
    assert [r.action for r in rows] == [f"alert_{e.action}" for e in history]
    assert all(r.record_id == str(alert_id) and r.patient_id == "P001" for r in rows)
    assert [r.after["state"] for r in rows] == [
        "firing", "snoozed", "firing", "escalated", "acknowledged", "resolved", "firing"]
    assert rows[0].before is None and rows[1].before["state"] == "firing"


def test_open_alerts_of_patients_no_longer_active_are_resolved(engine, sync, pk) -> None:
    sync([met("ferritin_rise")], T0)
    with session_scope(engine) as s:
        assert resolve_for_inactive(s, [pk], T0) == 0
        assert resolve_for_inactive(s, [], T0 + timedelta(days=1)) == 1
    assert alerts(engine)[0].state == "resolved"


def test_history_of_an_unknown_alert_is_an_error(engine) -> None:
    with session_scope(engine) as s, pytest.raises(LookupError):
        alert_history(s, 12345)


def test_every_alert_event_has_an_alert(engine, sync) -> None:
    sync([met("iec_hs"), met("crs_grade", grade=2)], T0)
    with session_scope(engine) as s:
        events = list(s.exec(select(AlertEvent)))
    assert len(events) == 2 and {e.action for e in events} == {"fired"}
