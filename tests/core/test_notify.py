"""Notifications that leave the app (issue 13 §3), end to end against real receivers.

Alerts are driven through core.monitoring.alerts as evaluation drives them (sync_alerts,
escalate_overdue, acknowledge) with a NotifyConfig; deliver_pending then sends through
Apprise to a real HTTP receiver (http.server, verifying each Standard Webhooks signature) and
a real SMTP server (aiosmtpd), both on 127.0.0.1. Receivers count raw requests, so a double
send can never hide behind deduplication. Storage-related tests run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import apprise
import pytest
import time_machine
from sqlalchemy.engine import Engine
from sqlmodel import select

from bench._receivers import HttpReceiver, SmtpReceiver
from core.config import Settings
from core.monitoring.alert_actions import acknowledge
from core.monitoring.alerts import (
    DEFAULT_ESCALATE_AFTER,
    SCREENING_NOTE,
    escalate_overdue,
    sync_alerts,
)
from core.monitoring.monitor import monitor_status
from core.monitoring.notify import (
    NotifyConfig,
    NotifyConfigError,
    contact_rows,
    deliver_pending,
    delivery_log,
    enqueue,
    failed_deliveries,
    notify_config,
    parse_notify_config,
    patient_for_link,
    send_test,
    webhook_id,
)
from core.rules.base import (
    Citation,
    EvidenceItem,
    Finding,
    Rule,
    RuleSpec,
    Severity,
    Status,
)
from core.rules.catalog import all_specs
from core.store.db import make_engine, session_scope
from core.store.models import (
    Alert,
    AlertEvent,
    AuditLog,
    DeliveryAttempt,
    Notification,
    Patient,
)
from core.vocabulary.units import Evidence
from tests.rule_toys import course_rule

T0 = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)
SECRET = "whsec_" + base64.b64encode(b"cartwatch test secret, 32 bytes!").decode()
SECRET_ENV = "CARTWATCH_TEST_WEBHOOK_SECRET"
PUBLIC = "https://cartwatch.ward.example"
RULE_IDS = frozenset(s.rule.id for s in all_specs())


def spec(rule_id: str, severity: Severity, escalates_at_grade: int | None = None) -> RuleSpec:
    rule = Rule(id=rule_id, title=f"Title of {rule_id}", version="1",
                citation=Citation("test", "§0"), evidence=Evidence.DESIGN, severity=severity,
                thresholds=(), inputs=(), graded=escalates_at_grade is not None,
                escalates_at_grade=escalates_at_grade)
    return course_rule(rule, lambda course, t: Finding(rule_id, Status.NOT_MET))


SPECS = {s.rule.id: s for s in (
    spec("iec_hs", Severity.SEVERE),
    spec("crs_grade", Severity.WARNING, escalates_at_grade=3),
    spec("ctcae_alc", Severity.INFO, escalates_at_grade=None),
    spec("ferritin_kinetics", Severity.WARNING),
)}


def met(rule: str, grade: int | None = None, value: float = 9517.0) -> Finding:
    return Finding(rule=rule, status=Status.MET, since_day=8.0, grade=grade,
                   evidence=[EvidenceItem(why=f"ferritin {value:g} > 2 x baseline",
                                          analyte="ferritin", day=8.0, value=value,
                                          unit="ng/mL")])


def not_met(rule: str) -> Finding:
    return Finding(rule=rule, status=Status.NOT_MET)


# ------------------------------------------------------------------------------ fixtures

@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    return SECRET_ENV


@pytest.fixture
def receivers(secret_env: str) -> Iterator[dict[str, HttpReceiver]]:
    with HttpReceiver(SECRET) as pager, HttpReceiver(SECRET) as alc, \
            HttpReceiver(SECRET) as escalation:
        yield {"pager": pager, "alc": alc, "escalation": escalation}


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    with SmtpReceiver() as server:
        yield server


def toml_of(receivers: dict[str, HttpReceiver], smtp: SmtpReceiver | None, notify: str = "",
            ) -> str:
    """The site TOML of the standard policy set, pointed at the live receivers."""
    out = f"[notify]\n{notify}\n"
    out += f"""
[[notify.contact]]
name = "car-t on-call"
url = "{receivers['pager'].url('/page')}"
min_severity = "severe"
tier = 1
secret_env = "{SECRET_ENV}"

[[notify.contact]]
name = "lymphocytes"
url = "{receivers['alc'].url()}"
min_severity = "info"
rules = ["ctcae_alc"]
tier = 1
secret_env = "{SECRET_ENV}"

[[notify.contact]]
name = "escalation"
url = "{receivers['escalation'].url('/escalate')}"
min_severity = "severe"
tier = 2
secret_env = "{SECRET_ENV}"
"""
    if smtp is not None:
        out += f"""
[[notify.contact]]
name = "ward mail"
url = "{smtp.url('ward@ward.example')}"
min_severity = "warning"
rules = ["crs_grade", "iec_hs"]
tier = 1
"""
    return out


def config_of(text: str, ward_tz: str = "UTC") -> NotifyConfig:
    return parse_notify_config(text, source="site.toml", ward_tz=ward_tz, public_url=PUBLIC,
                               known_rules=RULE_IDS)


class Ward:
    """A database with two patients, and the alert actions evaluation would take."""

    def __init__(self, engine: Engine, config: NotifyConfig) -> None:
        self.engine, self.config = engine, config
        self.settings = Settings(database_url=engine.url.render_as_string(hide_password=False))
        with session_scope(engine) as s:
            self.pk = {}
            for pid, initials, bed in (("SYN-901", "QX", "7C-12"), ("SYN-902", "ZW", "7C-14")):
                p = Patient(patient_id=pid, initials=initials, bed=bed, product="axi-cel",
                            infusion_date=date(2026, 3, 1))
                s.add(p)
                s.flush()
                self.pk[pid] = int(p.id)  # type: ignore[arg-type]

    def sync(self, findings: list[Finding], now: datetime | None = None,
             patient: str = "SYN-901") -> None:
        with session_scope(self.engine) as s:
            sync_alerts(s, self.pk[patient], findings, SPECS, now, notify=self.config)

    def escalate(self, now: datetime | None = None) -> int:
        with session_scope(self.engine) as s:
            return escalate_overdue(s, now, notify=self.config)

    def deliver(self, now: datetime | None = None, worker: str = "test:1"):  # noqa: ANN201
        return deliver_pending(self.engine, self.settings, now, worker=worker,
                               config=self.config)

    def alert_id(self, rule: str) -> int:
        with session_scope(self.engine) as s:
            return int(s.scalars(select(Alert.id).where(Alert.rule_id == rule)).one())

    def notifications(self) -> list[Notification]:
        with session_scope(self.engine) as s:
            return list(s.scalars(select(Notification).order_by(Notification.id)))

    def attempts(self, notification_id: int) -> list[DeliveryAttempt]:
        with session_scope(self.engine) as s:
            return list(s.scalars(select(DeliveryAttempt).where(
                DeliveryAttempt.notification_id == notification_id).order_by(DeliveryAttempt.id)))


def got(receiver: HttpReceiver) -> list[tuple[str, str]]:
    """(event, rule) of every raw request, each one's signature verified."""
    for r in receiver.requests:
        assert r.verified, r.error
    return sorted((d["event"], d["rule"]) for d in receiver.documents())


def mails(smtp: SmtpReceiver, to: str) -> list[str]:
    return sorted(str(m["subject"]) for m in smtp.to(to))


# ------------------------------------------------------------------------------ config

def test_no_site_file_or_no_notify_table_means_no_contacts(tmp_path: Path) -> None:
    assert notify_config(Settings(site_config=None)).contacts == ()
    site = tmp_path / "site.toml"
    site.write_text("[thresholds.iec_hs]\n")
    config = notify_config(Settings(site_config=site, public_url="https://x.example/"))
    assert config.contacts == () and config.public_url == "https://x.example"


def test_a_full_site_file_is_read_with_its_policy(tmp_path: Path, secret_env: str) -> None:
    site = tmp_path / "site.toml"
    site.write_text("""
[notify]
quiet_hours = "22:00-07:00"
max_attempts = 3
backoff_seconds = 30
backoff_max_seconds = 600
lease_seconds = 120
include_identifiers = false

[[notify.contact]]
name = "car-t on-call"
url = "json://127.0.0.1:8080/page"
min_severity = "severe"
rules = []
tier = 1
secret_env = "CARTWATCH_TEST_WEBHOOK_SECRET"

[[notify.contact]]
name = "teams"
url = "workflows://prod-00.westus.logic.azure.com:443/abcdef0123456789/sig0123456789"
min_severity = "warning"
rules = ["iec_hs", "crs_grade"]
tier = 2
""")
    config = notify_config(Settings(site_config=site, ward_tz="Europe/Berlin"))
    pager, teams = config.contacts
    assert (pager.name, pager.tier, pager.min_severity, pager.rules, pager.is_webhook) == (
        "car-t on-call", 1, "severe", (), True)
    assert (teams.scheme, teams.tier, teams.rules, teams.secret_env) == (
        "workflows", 2, ("iec_hs", "crs_grade"), None)
    assert config.max_attempts == 3 and config.lease == timedelta(seconds=120)
    assert [config.backoff_after(n).total_seconds() for n in range(1, 7)] == [
        30, 60, 120, 240, 480, 600]
    assert config.describe_quiet_hours() == "22:00–07:00 ward time (Europe/Berlin)"
    rows = contact_rows(config)
    assert rows[0]["signing"] == f"signed ({SECRET_ENV} set)"
    assert "sig0123456789" not in rows[1]["target"]  # Apprise's privacy mode masks tokens


BAD = [
    pytest.param('min_severity = "critical"', "contact 'x' min_severity", id="bad-severity"),
    pytest.param("tier = 3", "contact 'x' tier", id="bad-tier"),
    pytest.param('rules = ["iec-hs"]', "unknown rule id(s) ['iec-hs']", id="unknown-rule"),
    pytest.param('rules = "iec_hs"', "contact 'x' rules", id="rules-not-a-list"),
    pytest.param('severity = "info"', "unknown field(s) ['severity']", id="typo-field"),
    pytest.param('secret_env = "A"', "only json:// and jsons:// contacts are signed",
                 id="secret-on-mail"),
]


@pytest.mark.parametrize(("line", "says"), BAD)
def test_a_bad_contact_is_refused_naming_the_contact_and_field(line: str, says: str) -> None:
    text = f'[[notify.contact]]\nname = "x"\nurl = "mailto://127.0.0.1:25?from=cw@b.example&to=a@b.example"\n{line}\n'
    with pytest.raises(NotifyConfigError, match="site.toml") as err:
        config_of(text)
    assert says in str(err.value)


@pytest.mark.parametrize(("toml", "says"), [
    pytest.param('[[notify.contact]]\nname = "pager"\nurl = "json://127.0.0.1:9/x"\n',
                 "contact 'pager' secret_env", id="webhook-without-secret"),
    pytest.param('[[notify.contact]]\nname = "pager"\nurl = "nosuch://host/x"\n',
                 "contact 'pager' url: Apprise cannot use the nosuch:// URL", id="unknown-scheme"),
    pytest.param('[[notify.contact]]\nname = "teams"\nurl = "msteams://a/b/c/d"\n',
                 "workflows://", id="msteams-is-retired"),
    pytest.param('[[notify.contact]]\nname = "pager"\nurl = "json://h/x?:event=fake"\n'
                 'secret_env = "S"\n', "may not set payload fields", id="json-payload-extras"),
    pytest.param('[[notify.contact]]\nname = "a"\nurl = "mailto://h?from=x@b.example&to=a@b.example"\n'
                 '[[notify.contact]]\nname = "a"\nurl = "mailto://h?from=x@b.example&to=c@d.example"\n',
                 "contact 'a' name: is used twice", id="duplicate-name"),
    pytest.param('[notify]\nquiet_hours = "10pm-7am"\n', "[notify] quiet_hours",
                 id="quiet-hours-format"),
    pytest.param('[notify]\nmax_attempts = 0\n', "[notify] max_attempts", id="no-attempts"),
    pytest.param('[notify]\nretries = 3\n', "unknown key(s) ['retries']", id="typo-key"),
])
def test_bad_notify_settings_are_refused_clearly(toml: str, says: str) -> None:
    with pytest.raises(NotifyConfigError) as err:
        config_of(toml)
    assert says in str(err.value)


def test_a_teams_workflow_url_is_accepted_by_apprise() -> None:
    """Microsoft Teams cannot be reached from here: only the URL's validity is tested."""
    url = ("workflows://prod-00.westus.logic.azure.com:443/"
           "abcdef0123456789abcdef0123456789/s1gnatureABC")
    config = config_of(f'[[notify.contact]]\nname = "teams"\nurl = "{url}"\n')
    assert config.contacts[0].scheme == "workflows"
    assert apprise.Apprise.instantiate(url) is not None


@pytest.mark.parametrize(("quiet", "local", "severity", "until"), [
    pytest.param("22:00-07:00", "2026-03-10 21:59", "warning", None, id="just-before"),
    pytest.param("22:00-07:00", "2026-03-10 22:00", "warning", "2026-03-11 07:00",
                 id="at-start-until-tomorrow"),
    pytest.param("22:00-07:00", "2026-03-11 03:00", "info", "2026-03-11 07:00",
                 id="after-midnight-until-today"),
    pytest.param("22:00-07:00", "2026-03-11 07:00", "warning", None, id="at-end-not-quiet"),
    pytest.param("22:00-07:00", "2026-03-10 23:00", "severe", None, id="severe-never-held"),
    pytest.param("12:00-14:00", "2026-03-10 13:30", "warning", "2026-03-10 14:00",
                 id="daytime-window"),
    pytest.param("12:00-14:00", "2026-03-10 23:30", "warning", None, id="outside-daytime"),
    pytest.param("22:00-07:00", "2026-03-28 23:00", "warning", "2026-03-29 07:00",
                 id="over-the-spring-dst-change"),
])
def test_quiet_hours_end_in_ward_time(quiet: str, local: str, severity: str,
                                      until: str | None) -> None:
    from zoneinfo import ZoneInfo

    tz = ZoneInfo("Europe/Berlin")
    config = config_of(f'[notify]\nquiet_hours = "{quiet}"\n', ward_tz="Europe/Berlin")
    when = datetime.fromisoformat(local).replace(tzinfo=tz)
    got_until = config.quiet_until(when.astimezone(UTC), severity)
    want = None if until is None else datetime.fromisoformat(until).replace(tzinfo=tz)
    assert got_until == want
    assert got_until is None or got_until.tzinfo is UTC


# ------------------------------------------------------------------------------ policy

@pytest.fixture
def ward_of(store: Engine) -> Callable[[NotifyConfig], Ward]:
    return lambda config: Ward(store, config)


def test_each_contact_gets_exactly_what_its_policy_asks_for(
        ward_of, receivers, smtp) -> None:  # type: ignore[no-untyped-def]
    ward = ward_of(config_of(toml_of(receivers, smtp)))
    ward.sync([met("iec_hs"), met("crs_grade", grade=2), met("ctcae_alc", grade=4),
               met("ferritin_kinetics")], T0)
    report = ward.deliver(T0 + timedelta(seconds=5))
    assert (report.delivered, report.retrying, report.failed) == (4, 0, 0)
    assert got(receivers["pager"]) == [("fired", "iec_hs")]  # severe only
    assert got(receivers["alc"]) == [("fired", "ctcae_alc")]  # its one rule, info and up
    assert got(receivers["escalation"]) == []  # tier 2: nothing escalated yet
    assert mails(smtp, "ward@ward.example") == [  # warning and up, of its two rules
        "CAR-T Watch · SEVERE · Title of iec_hs fired · bed 7C-12",
        "CAR-T Watch · WARNING · Title of crs_grade fired · bed 7C-12"]

    doc = receivers["pager"].documents()[0]
    alert_id = ward.alert_id("iec_hs")
    assert {k: doc[k] for k in ("event", "alert_id", "rule", "severity", "bed", "initials",
                                "day", "link", "at", "screening_note", "tier")} == {
        "event": "fired", "alert_id": alert_id, "rule": "iec_hs", "severity": "severe",
        "bed": "7C-12", "initials": "QX", "day": 9, "link": f"{PUBLIC}/patient?alert={alert_id}",
        "at": "2026-03-10T08:00:00Z", "screening_note": SCREENING_NOTE, "tier": 1}
    assert list(doc)[:2] == ["title", "message"] and "version" not in doc
    assert SCREENING_NOTE in doc["message"]
    with session_scope(ward.engine) as s:  # what the app opens for that link, after sign-in
        assert patient_for_link(s, doc["link"].rsplit("=", 1)[1]) == "SYN-901"
        assert patient_for_link(s, "12x") is None and patient_for_link(s, 99999) is None
    request = receivers["pager"].requests[0]
    assert request.path == "/page"
    assert request.headers["webhook-id"] == webhook_id(doc["notification_id"])

    # evaluating again (no change) or delivering again sends nothing more
    ward.sync([met("iec_hs"), met("crs_grade", grade=2), met("ctcae_alc", grade=4),
               met("ferritin_kinetics")], T0 + timedelta(minutes=10))
    assert ward.deliver(T0 + timedelta(minutes=11)).delivered == 0
    assert sum(len(r.requests) for r in receivers.values()) == 2 and len(smtp.messages) == 2
    assert {n.status for n in ward.notifications()} == {"delivered"}
    assert all(len(ward.attempts(n.id)) == 1 for n in ward.notifications())


def test_escalation_after_two_hours_notifies_tier_two_once(
        ward_of, receivers) -> None:  # type: ignore[no-untyped-def]
    ward = ward_of(config_of(toml_of(receivers, None)))
    with time_machine.travel(T0, tick=False) as clock:
        ward.sync([met("iec_hs")])  # no `now`: the (travelled) real clock, as the monitor
        ward.deliver()
        clock.move_to(T0 + DEFAULT_ESCALATE_AFTER - timedelta(minutes=1))
        assert ward.escalate() == 0
        clock.move_to(T0 + DEFAULT_ESCALATE_AFTER + timedelta(minutes=1))
        assert ward.escalate() == 1
        assert ward.escalate() == 0  # escalated once
        ward.deliver()
        ward.deliver()
    assert got(receivers["pager"]) == [("fired", "iec_hs")]
    assert got(receivers["escalation"]) == [("escalated", "iec_hs")]
    doc = receivers["escalation"].documents()[0]
    assert doc["tier"] == 2 and doc["at"] == "2026-03-10T10:01:00Z"
    assert "unacknowledged for more than 2 h" in doc["message"]
    assert got(receivers["alc"]) == []


def test_acknowledging_stops_every_notification_still_to_come(
        ward_of, receivers) -> None:  # type: ignore[no-untyped-def]
    ward = ward_of(config_of(toml_of(receivers, None)))
    # the monitor is down: the fired (tier 1) and escalated (tier 2) rows wait unsent
    ward.sync([met("iec_hs")], T0)
    ward.escalate(T0 + DEFAULT_ESCALATE_AFTER + timedelta(minutes=1))
    with session_scope(ward.engine) as s:
        acknowledge(s, ward.alert_id("iec_hs"), "dr.kim", "seen at the bedside",
                    T0 + timedelta(hours=2, minutes=5))
    report = ward.deliver(T0 + timedelta(hours=2, minutes=6))
    assert (report.delivered, report.cancelled) == (0, 2)
    fired, escalated = ward.notifications()
    assert (fired.event, fired.status, escalated.event, escalated.status) == (
        "fired", "cancelled", "escalated", "cancelled")
    assert "acknowledged by dr.kim" in str(escalated.last_error)
    assert ward.attempts(fired.id) == [] and ward.attempts(escalated.id) == []
    # later: no further escalation, no resolution message to contacts never told
    assert ward.escalate(T0 + timedelta(hours=6)) == 0
    ward.sync([not_met("iec_hs")], T0 + timedelta(hours=7))
    ward.deliver(T0 + timedelta(hours=7))
    assert [n.event for n in ward.notifications()] == ["fired", "escalated"]
    assert all(not r.requests for r in receivers.values())


def test_an_acknowledged_alert_sent_once_is_never_sent_again(
        ward_of, receivers) -> None:  # type: ignore[no-untyped-def]
    ward = ward_of(config_of(toml_of(receivers, None)))
    ward.sync([met("iec_hs")], T0)
    ward.deliver(T0)
    with session_scope(ward.engine) as s:
        acknowledge(s, ward.alert_id("iec_hs"), "dr.kim", None, T0 + timedelta(minutes=30))
    for hours in (1, 3, 6):
        ward.sync([met("iec_hs")], T0 + timedelta(hours=hours))
        ward.escalate(T0 + timedelta(hours=hours))
        ward.deliver(T0 + timedelta(hours=hours))
    assert got(receivers["pager"]) == [("fired", "iec_hs")]
    assert got(receivers["escalation"]) == []


def test_resolution_goes_to_the_contacts_that_were_told(
        ward_of, receivers, smtp) -> None:  # type: ignore[no-untyped-def]
    ward = ward_of(config_of(toml_of(receivers, smtp)))
    ward.sync([met("iec_hs"), met("ferritin_kinetics")], T0)
    ward.deliver(T0)
    ward.sync([not_met("iec_hs"), not_met("ferritin_kinetics")], T0 + timedelta(hours=1))
    ward.deliver(T0 + timedelta(hours=1))
    assert got(receivers["pager"]) == [("fired", "iec_hs"), ("resolved", "iec_hs")]
    assert mails(smtp, "ward@ward.example") == [
        "CAR-T Watch · SEVERE · Title of iec_hs fired · bed 7C-12",
        "CAR-T Watch · SEVERE · Title of iec_hs resolved · bed 7C-12"]
    assert got(receivers["escalation"]) == [] and got(receivers["alc"]) == []
    resolved = receivers["pager"].documents()[1]
    assert "condition no longer met" in resolved["message"].lower()
    # it fires again: a new spell, told again
    ward.sync([met("iec_hs")], T0 + timedelta(hours=2))
    ward.deliver(T0 + timedelta(hours=2))
    assert [d["event"] for d in receivers["pager"].documents()] == [
        "fired", "resolved", "fired"]


def test_quiet_hours_defer_a_warning_but_never_a_severe_alert(
        ward_of, receivers, smtp) -> None:  # type: ignore[no-untyped-def]
    # Europe/Berlin is UTC+1 in March before the switch: 22:00-07:00 local = 21:00-06:00 UTC
    config = config_of(toml_of(receivers, smtp, 'quiet_hours = "22:00-07:00"'),
                       ward_tz="Europe/Berlin")
    ward = ward_of(config)
    night = datetime(2026, 3, 10, 21, 30, tzinfo=UTC)  # 22:30 on the ward
    ward.sync([met("iec_hs"), met("crs_grade", grade=2)], night)
    ward.deliver(night)
    assert mails(smtp, "ward@ward.example") == [
        "CAR-T Watch · SEVERE · Title of iec_hs fired · bed 7C-12"]
    assert got(receivers["pager"]) == [("fired", "iec_hs")]
    warning = next(n for n in ward.notifications() if n.severity == "warning")
    assert warning.status == "pending"
    morning = datetime(2026, 3, 11, 6, 0, tzinfo=UTC)  # 07:00 on the ward
    assert warning.next_attempt_at.replace(tzinfo=UTC) == morning
    assert ward.deliver(morning - timedelta(minutes=1)).delivered == 0
    assert ward.deliver(morning).delivered == 1
    assert len(smtp.to("ward@ward.example")) == 2


def test_a_warning_due_before_quiet_hours_but_sent_late_waits_for_morning(
        ward_of, receivers, smtp) -> None:  # type: ignore[no-untyped-def]
    config = config_of(toml_of(receivers, smtp, 'quiet_hours = "22:00-07:00"'),
                       ward_tz="Europe/Berlin")
    ward = ward_of(config)
    ward.sync([met("crs_grade", grade=2)], datetime(2026, 3, 10, 20, 0, tzinfo=UTC))
    report = ward.deliver(datetime(2026, 3, 10, 23, 0, tzinfo=UTC))  # monitor was down
    assert (report.delivered, report.deferred) == (0, 1) and not smtp.messages
    assert ward.deliver(datetime(2026, 3, 11, 6, 0, tzinfo=UTC)).delivered == 1
    (n,) = ward.notifications()
    assert n.attempts == 1  # deferring is not an attempt


# ------------------------------------------------------------------------------ retries

def test_a_failing_receiver_gets_bounded_retries_then_the_notification_fails(
        ward_of, secret_env, caplog) -> None:  # type: ignore[no-untyped-def]
    with HttpReceiver(SECRET, default=500) as broken:
        config = config_of(f"""
[notify]
max_attempts = 3
backoff_seconds = 60
[[notify.contact]]
name = "pager"
url = "{broken.url()}"
secret_env = "{SECRET_ENV}"
""")
        ward = ward_of(config)
        ward.sync([met("iec_hs")], T0)
        caplog.set_level(logging.WARNING, logger="core.monitoring.notify")
        at = T0
        schedule = []
        for step in (0, 59, 60, 179, 180, 600, 36_000):
            report = ward.deliver(T0 + timedelta(seconds=step))
            schedule.append((step, report.retrying, report.failed))
        (n,) = ward.notifications()
        attempts = ward.attempts(n.id)
    assert schedule == [(0, 1, 0), (59, 0, 0), (60, 1, 0), (179, 0, 0), (180, 0, 1),
                        (600, 0, 0), (36_000, 0, 0)]
    assert len(broken.requests) == 3  # raw requests: exactly the attempts, no more
    assert all(r.verified for r in broken.requests)
    assert {r.headers["webhook-id"] for r in broken.requests} == {webhook_id(n.id)}
    assert (n.status, n.attempts) == ("failed", 3)
    assert "500" in str(n.last_error)
    assert [(a.ok, a.started_at.replace(tzinfo=UTC) - at) for a in attempts] == [
        (False, timedelta(0)), (False, timedelta(seconds=60)), (False, timedelta(seconds=180))]
    assert all("500" in str(a.error) and a.finished_at is not None for a in attempts)
    lines = [r for r in caplog.records if r.name == "core.monitoring.notify.delivery"
             and f"notification {n.id} " in r.getMessage()]
    assert [r.levelname for r in lines] == ["WARNING", "WARNING", "ERROR"]
    with session_scope(ward.engine) as s:
        assert monitor_status(s, T0 + timedelta(hours=1)).failed_deliveries == 1
        (failed,) = failed_deliveries(s)
    assert failed["id"] == n.id and len(failed["attempt_log"]) == 3


def test_a_receiver_that_recovers_gets_the_same_webhook_id_again(
        ward_of, secret_env) -> None:  # type: ignore[no-untyped-def]
    with HttpReceiver(SECRET, script=[503]) as flaky:
        ward = ward_of(config_of(f"""
[[notify.contact]]
name = "pager"
url = "{flaky.url()}"
secret_env = "{SECRET_ENV}"
"""))
        ward.sync([met("iec_hs")], T0)
        assert ward.deliver(T0).retrying == 1
        assert ward.deliver(T0 + timedelta(minutes=1)).delivered == 1
    (n,) = ward.notifications()
    assert (n.status, n.attempts, n.last_error) == ("delivered", 2, None)
    assert [a.ok for a in ward.attempts(n.id)] == [False, True]
    first, second = flaky.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == webhook_id(n.id)
    assert first.body == second.body  # the same document; only the signature time differs


def test_a_missing_webhook_secret_fails_the_attempt_and_says_which(
        ward_of, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv(SECRET_ENV, raising=False)
    with HttpReceiver(SECRET) as pager:
        ward = ward_of(config_of(f"""
[[notify.contact]]
name = "pager"
url = "{pager.url()}"
secret_env = "{SECRET_ENV}"
"""))
        ward.sync([met("iec_hs")], T0)
        assert ward.deliver(T0).retrying == 1
    (n,) = ward.notifications()
    assert f"{SECRET_ENV} (the webhook secret of 'pager') is not set" in str(n.last_error)
    assert pager.requests == []  # never sent unsigned


def test_two_workers_delivering_at_once_never_send_one_notification_twice(
        store, receivers) -> None:  # type: ignore[no-untyped-def]
    config = config_of(toml_of(receivers, None).replace('min_severity = "severe"\ntier = 1',
                                                        'min_severity = "info"\ntier = 1'))
    ward = Ward(store, config)
    with session_scope(store) as s:
        # 30 alerts (30 episodes of one rule): 30 notifications to the pager
        findings = [Finding(rule="ferritin_kinetics", status=Status.MET, episode_key=f"ep-{i}")
                    for i in range(30)]
        sync_alerts(s, ward.pk["SYN-901"], findings, SPECS, T0, notify=config)
    second = make_engine(ward.settings.database_url)
    reports = []

    def run(engine: Engine, name: str) -> None:
        reports.append(deliver_pending(engine, ward.settings, T0, worker=name, config=config))

    threads = [threading.Thread(target=run, args=(e, n))
               for e, n in ((store, "w1"), (second, "w2"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    second.dispose()
    ids = [r.headers["webhook-id"] for r in receivers["pager"].requests]
    assert len(ids) == 30 and len(set(ids)) == 30
    assert sum(r.delivered for r in reports) == 30
    with session_scope(store) as s:
        assert len(s.scalars(select(DeliveryAttempt)).all()) == 30


# ------------------------------------------------------------------------------ privacy

def _alert_events(engine: Engine) -> list[tuple[Alert, AlertEvent]]:
    with session_scope(engine) as s:
        rows = s.execute(select(Alert, AlertEvent).join(AlertEvent, AlertEvent.alert_id == Alert.id)
                         .order_by(AlertEvent.id)).all()
        return [(a, e) for a, e in rows]


@pytest.fixture(scope="module")
def sample_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.sample_db import build_sample_db

    path = tmp_path_factory.mktemp("notify-sample") / "sample.db"
    build_sample_db(path)
    return path


@pytest.mark.parametrize("identifiers", [False, True], ids=["default", "identifiers-on"])
def test_no_payload_ever_carries_a_study_id_or_a_value(
        sample_db, tmp_path, receivers, smtp, identifiers) -> None:  # type: ignore[no-untyped-def]
    """Every alert event of the synthetic cohort is sent to every kind of contact; every body
    and every mail is searched. With include_identifiers on, the same search must find the
    study IDs (so it is known to work)."""
    from tests.sample_db import copy_db

    engine = make_engine(copy_db(sample_db, tmp_path / "copy.db"))
    notify = f"include_identifiers = {'true' if identifiers else 'false'}"
    text = toml_of(receivers, smtp, notify).replace('"severe"', '"info"').replace(
        'rules = ["crs_grade", "iec_hs"]', "rules = []").replace('rules = ["ctcae_alc"]',
                                                                 "rules = []")
    config = config_of(text)
    events = _alert_events(engine)
    with session_scope(engine) as s:
        patients = s.scalars(select(Patient)).all()
        study_ids = [p.patient_id for p in patients]
    values = sorted({e["why"] for a, _ in events for e in a.evidence
                     if any(ch.isdigit() for ch in e.get("why") or "")})
    alerts = {a.id: a for a, _ in events}
    if identifiers:  # the positive control needs only one alert per patient
        alerts = {a.id: a for a in {a.patient_pk: a for a in alerts.values()}.values()}
    at = max(e.at for _, e in events)
    # every alert fires and escalates (tier 1 and 2), then resolves (to those told)
    for actions in (("fired", "escalated"), ("resolved",)):
        with session_scope(engine) as s:
            for alert_id in alerts:
                for action in actions:
                    ev = AlertEvent(alert_id=alert_id, at=at, actor="system", action=action,
                                    note=None if action == "fired" else "condition no longer met")
                    s.add(ev)
                    s.flush()
                    enqueue(s, s.get(Alert, alert_id), ev, action, config)  # type: ignore[arg-type]
        report = deliver_pending(engine, Settings(database_url=str(engine.url)), at,
                                 worker="test", config=config)
        assert report.failed == report.retrying == report.cancelled == 0
    engine.dispose()
    assert len(study_ids) >= 10 and len(values) >= 5 and len(alerts) >= 10 - 5 * identifiers
    for name, first in (("pager", "fired"), ("alc", "fired"), ("escalation", "escalated")):
        events_sent = Counter(d["event"] for d in receivers[name].documents())
        assert events_sent == {first: len(alerts), "resolved": len(alerts)}, name
    sent = [r.body.decode() for rec in receivers.values() for r in rec.requests]
    sent += [raw.decode("utf-8", "replace") for _f, _t, raw in smtp.messages]
    sent += [SmtpReceiver.text_of(m) for m in smtp.parsed()]
    assert all(r.verified for rec in receivers.values() for r in rec.requests)
    everything = "\n".join(sent).lower()
    found = [pid for pid in study_ids if pid.lower() in everything]
    leaked_values = [v for v in values if v.lower() in everything]
    if identifiers:
        assert sorted(set(found)) == sorted({p.patient_id for p in patients
                                             if any(a.patient_pk == p.id for a in alerts.values())})
        assert leaked_values  # the alert's message (with values) goes with identifiers on
    else:
        assert found == [] and leaked_values == []
        for doc in receivers["pager"].documents():
            assert doc["link"].startswith(f"{PUBLIC}/patient?alert=")
            assert "patient_id" not in doc and "details" not in doc
            assert doc["screening_note"] == SCREENING_NOTE


# ------------------------------------------------------------------------------ admin

def test_send_test_is_audited_delivered_at_once_and_logged(
        ward_of, receivers, smtp) -> None:  # type: ignore[no-untyped-def]
    config = config_of(toml_of(receivers, smtp, 'quiet_hours = "00:00-23:59"'))
    ward = ward_of(config)
    nid = send_test(ward.engine, ward.settings, "car-t on-call", "admin.lee", role="admin",
                    config=config, worker="dash:1")
    mid = send_test(ward.engine, ward.settings, "ward mail", "admin.lee", role="admin",
                    config=config)
    (doc,) = receivers["pager"].documents()  # at once, quiet hours or not
    assert (doc["event"], doc["notification_id"], doc["alert_id"], doc["bed"]) == (
        "test", nid, None, None)
    assert doc["screening_note"] == SCREENING_NOTE and "admin.lee" in doc["message"]
    (mail,) = smtp.to("ward@ward.example")
    assert "test notification" in str(mail["subject"])
    with session_scope(ward.engine) as s:
        audit = s.scalars(select(AuditLog).where(AuditLog.action == "notify_test")
                          .order_by(AuditLog.id)).all()
        log = delivery_log(s, limit=10)
    assert [(a.actor, a.record_id, a.after["contact"]) for a in audit] == [
        ("admin.lee", str(nid), "car-t on-call"), ("admin.lee", str(mid), "ward mail")]
    assert [(e["id"], e["status"], e["event"]) for e in log] == [
        (mid, "delivered", "test"), (nid, "delivered", "test")]
    assert log[1]["attempt_log"][0]["worker"] == "dash:1" and log[1]["attempt_log"][0]["ok"]


def test_a_test_to_a_dead_contact_fails_once_with_the_reason(
        ward_of, secret_env) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import free_port

    config = config_of(f"""
[[notify.contact]]
name = "nobody listens"
url = "json://127.0.0.1:{free_port()}/x"
secret_env = "{SECRET_ENV}"
""")
    ward = ward_of(config)
    nid = send_test(ward.engine, ward.settings, "nobody listens", "admin.lee", config=config)
    (n,) = ward.notifications()
    assert (n.id, n.status, n.attempts) == (nid, "failed", 1)
    assert "Connection error" in str(n.last_error) or "connect" in str(n.last_error).lower()


def test_send_test_refuses_a_non_admin_and_an_unknown_contact(
        ward_of, receivers) -> None:  # type: ignore[no-untyped-def]
    from core.access.permissions import NotAllowed

    config = config_of(toml_of(receivers, None))
    ward = ward_of(config)
    with pytest.raises(NotAllowed):
        send_test(ward.engine, ward.settings, "car-t on-call", "kim", role="clinician",
                  config=config)
    with pytest.raises(ValueError, match="no contact point named 'pagr'"):
        send_test(ward.engine, ward.settings, "pagr", "admin.lee", config=config)
    assert ward.notifications() == [] and not receivers["pager"].requests


# ------------------------------------------------------------------------------ wiring

def test_evaluate_with_a_notify_table_in_the_site_file_enqueues_and_delivers(
        engine, tmp_path, secret_env) -> None:  # type: ignore[no-untyped-def]
    """The whole path as the monitor runs it: the site file holds thresholds and [notify];
    evaluate fires lab_overdue for a patient without labs and writes the outbox row in the
    same transaction; deliver_pending sends it. (core/site_config.py must accept [notify].)"""
    from core.monitoring.evaluation import run_evaluate

    with HttpReceiver(SECRET) as pager:
        site = tmp_path / "site.toml"
        site.write_text(f"""
[thresholds.iec_hs]

[[notify.contact]]
name = "data manager"
url = "{pager.url()}"
min_severity = "info"
rules = ["lab_overdue"]
secret_env = "{SECRET_ENV}"
""")
        url = engine.url.render_as_string(hide_password=False)
        settings = Settings(database_url=url, site_config=site, public_url=PUBLIC)
        now = datetime.now(UTC)
        with session_scope(engine) as s:
            s.add(Patient(patient_id="SYN-950", initials="LM", bed="2A-07", product="axi-cel",
                          infusion_date=now.date() - timedelta(days=3)))
        run_evaluate(engine, settings, as_of=now)
        run_evaluate(engine, settings, as_of=now + timedelta(minutes=5))  # nothing new
        report = deliver_pending(engine, settings, worker="monitor:1")
    assert report.delivered == 1
    (doc,) = pager.documents()
    assert (doc["event"], doc["rule"], doc["bed"], doc["day"]) == ("fired", "lab_overdue",
                                                                   "2A-07", 3)
    assert "SYN-950" not in pager.requests[0].body.decode()
