"""The monitor (issue 13 §2, §4): clock-driven states change on time with nobody at a shell,
one monitor works per cycle, and the hospital's monitoring can poll its health."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from core.config import Settings
from core.monitoring.alert_actions import acknowledge, snooze
from core.monitoring.alerts import DEFAULT_ESCALATE_AFTER
from core.monitoring.monitor import health, monitor_status, run_cycle, serve_health
from core.store.db import session_scope
from core.store.models import Alert, AlertState, EvaluationFailure, MonitorCycle
from tests.cli_runner import run_cli
from tests.core.test_importing import PATIENTS
from tests.core.test_importing import run as csv_run
from tests.core.test_live import LOW_PLATELETS, alerts

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)  # day 11 of P001


def settings_for(engine: Engine, seconds: float = 300) -> Settings:
    return Settings.from_env(database_url=engine.url.render_as_string(hide_password=False),
                             monitor_seconds=seconds)


@pytest.fixture
def ward(store: Engine) -> Engine:
    with time_machine.travel(T0, tick=False):
        assert csv_run(store, PATIENTS, now=T0).ok
        assert csv_run(store, LOW_PLATELETS, now=T0).ok  # fires ctcae_platelets, severe
    return store


def test_an_unacknowledged_severe_alert_escalates_on_the_next_cycle_after_its_time(
        ward: Engine) -> None:
    settings = settings_for(ward)
    [alert] = alerts(ward)
    assert alert.state == AlertState.FIRING
    with time_machine.travel(T0 + DEFAULT_ESCALATE_AFTER - timedelta(minutes=1), tick=False):
        assert run_cycle(ward, settings).error is None
    assert alerts(ward)[0].state == AlertState.FIRING
    with time_machine.travel(T0 + DEFAULT_ESCALATE_AFTER + timedelta(minutes=5), tick=False):
        report = run_cycle(ward, settings)
    assert report.error is None and report.patients == 2
    assert alerts(ward)[0].state == AlertState.ESCALATED


def test_an_acknowledged_alert_never_escalates(ward: Engine) -> None:
    [alert] = alerts(ward)
    with session_scope(ward) as s:
        acknowledge(s, alert.id, "dr.lee", now=T0 + timedelta(minutes=10))
    with time_machine.travel(T0 + 3 * DEFAULT_ESCALATE_AFTER, tick=False):
        run_cycle(ward, settings_for(ward))
    assert alerts(ward)[0].state == AlertState.ACKNOWLEDGED


def test_a_snooze_expires_on_the_first_cycle_after_it(ward: Engine) -> None:
    [alert] = alerts(ward)
    with session_scope(ward) as s:
        snooze(s, alert.id, "dr.lee", "reviewed, platelets transfused",
               T0 + timedelta(hours=1), now=T0 + timedelta(minutes=5))
    with time_machine.travel(T0 + timedelta(minutes=50), tick=False):
        run_cycle(ward, settings_for(ward))
    assert alerts(ward)[0].state == AlertState.SNOOZED
    with time_machine.travel(T0 + timedelta(minutes=65), tick=False):
        run_cycle(ward, settings_for(ward))
    assert alerts(ward)[0].state == AlertState.FIRING


def test_the_day_rolling_over_makes_a_missing_daily_lab_overdue(ward: Engine) -> None:
    with time_machine.travel(T0, tick=False):
        run_cycle(ward, settings_for(ward))
    before = {a.id for a in alerts(ward, "P001", "lab_overdue")}
    with time_machine.travel(T0 + timedelta(days=2), tick=False):
        run_cycle(ward, settings_for(ward))
    after = alerts(ward, "P001", "lab_overdue")
    assert any(a.state == AlertState.FIRING and a.id not in before for a in after) or any(
        a.last_seen_at.replace(tzinfo=UTC) >= T0 + timedelta(days=2) for a in after), after


def test_each_cycle_writes_a_heartbeat_that_the_status_reads(ward: Engine) -> None:
    settings = settings_for(ward, seconds=60)
    with session_scope(ward) as s:
        assert monitor_status(s, T0, settings.monitor_interval).last_cycle_at is None
        assert "never run" in monitor_status(s, T0).problems()[0]
    with time_machine.travel(T0, tick=False):
        run_cycle(ward, settings)
    with session_scope(ward) as s:
        st = monitor_status(s, T0 + timedelta(seconds=90), settings.monitor_interval)
        assert st.last_cycle_at == T0 and st.is_running and st.problems() == []
        late = monitor_status(s, T0 + timedelta(minutes=3), settings.monitor_interval)
    assert not late.is_running
    assert late.problems() == [
        "Monitor not running since 2026-11-21 09:00 UTC: clock-driven alerts (overdue labs, "
        "escalation) are not updated."]


def test_a_second_monitor_skips_the_cycle_another_has_just_done(ward: Engine) -> None:
    settings = settings_for(ward, seconds=300)
    with time_machine.travel(T0, tick=False):
        assert run_cycle(ward, settings, worker="host-a:1").skipped is None
    with time_machine.travel(T0 + timedelta(seconds=60), tick=False):
        second = run_cycle(ward, settings, worker="host-b:2")
    assert second.skipped and "another monitor finished a cycle" in second.skipped
    with time_machine.travel(T0 + timedelta(seconds=200), tick=False):
        assert run_cycle(ward, settings, worker="host-b:2").skipped is None
    with session_scope(ward) as s:
        assert s.scalar(select(func.count()).select_from(MonitorCycle)) == 2


@pytest.mark.postgres
@pytest.mark.parametrize("store", ["postgresql"], indirect=True)
def test_two_monitors_at_once_on_postgresql_one_works(ward: Engine) -> None:
    settings = settings_for(ward)
    reports: list = []
    barrier = threading.Barrier(2)

    def monitor(name: str) -> None:
        barrier.wait()
        reports.append(run_cycle(ward, settings, worker=name))

    threads = [threading.Thread(target=monitor, args=(f"host-{i}:1",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    worked = [r for r in reports if r.skipped is None]
    assert len(reports) == 2 and len(worked) == 1, [r.line() for r in reports]
    assert worked[0].patients == 2


def test_the_health_endpoint_says_what_the_hospitals_monitoring_needs(ward: Engine) -> None:
    settings = settings_for(ward)
    code, body = health(ward, settings)
    assert code == 503 and body["status"] == "degraded" and body["last_cycle_at"] is None
    server = serve_health(ward, settings, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(base + "/healthz", timeout=10)
        assert err.value.code == 503
        run_cycle(ward, settings)
        with urllib.request.urlopen(base + "/healthz", timeout=10) as r:
            doc = json.loads(r.read())
        assert r.status == 200 and doc["status"] == "ok" and doc["failed_deliveries"] == 0
        with session_scope(ward) as s:
            s.add(EvaluationFailure(source="write", patient_pks=[1], error="boom"))
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(base + "/healthz", timeout=10)
        assert json.loads(err.value.read())["evaluation_failures"] == 1
        with urllib.request.urlopen(base + "/metrics", timeout=10) as r:
            metrics = r.read().decode()
        assert "cartwatch_evaluation_failures 1.0" in metrics
        assert "cartwatch_outbox_backlog 0.0" in metrics
        assert "cartwatch_monitor_last_cycle_age_seconds" in metrics
    finally:
        server.shutdown()


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_monitor_once_from_the_command_line_runs_one_cycle(ward: Engine) -> None:
    url = ward.url.render_as_string(hide_password=False)
    out = run_cli("monitor", "--once", "--db", url)
    assert out.returncode == 0, out.stderr
    assert "monitor cycle done patients=2" in out.stdout
    with session_scope(ward) as s:
        assert s.scalar(select(func.count()).select_from(MonitorCycle)) == 1
        assert s.scalar(select(func.count()).select_from(Alert)) >= 1


def test_a_failed_delivery_is_shown_until_its_alert_is_acknowledged(ward: Engine) -> None:
    from core.store.models import Notification, NotificationStatus

    [alert] = alerts(ward)
    with session_scope(ward) as s:
        for alert_id, at in ((alert.id, T0), (None, T0)):  # a page, and a test message
            s.add(Notification(dedupe_key=f"x:{alert_id}", alert_id=alert_id, event="fired",
                               contact="pager", severity="severe", created_at=at,
                               next_attempt_at=at, status=NotificationStatus.FAILED))
    with session_scope(ward) as s:
        assert monitor_status(s, T0 + timedelta(hours=1)).failed_deliveries == 2
        acknowledge(s, alert.id, "dr.lee", now=T0 + timedelta(hours=1))
    with session_scope(ward) as s:
        assert monitor_status(s, T0 + timedelta(hours=2)).failed_deliveries == 1  # the test
        assert monitor_status(s, T0 + timedelta(hours=25)).failed_deliveries == 0


@pytest.mark.postgres
@pytest.mark.parametrize("store", ["postgresql"], indirect=True)
def test_a_cycle_waits_for_a_writes_follow_up_instead_of_failing(ward: Engine) -> None:
    from sqlalchemy import text

    from core.monitoring.evaluation import EVALUATE_LOCK_KEY

    reports: list = []
    with ward.connect() as write:  # a write's transaction, its follow-up holding the lock
        write.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": EVALUATE_LOCK_KEY})
        worker = threading.Thread(target=lambda: reports.append(
            run_cycle(ward, settings_for(ward))))
        worker.start()
        worker.join(1.5)
        assert worker.is_alive()  # waiting for the lock, not refusing
        write.commit()
    worker.join(60)
    [report] = reports
    assert report.error is None and report.patients == 2
    with session_scope(ward) as s:
        assert s.scalar(select(func.count()).select_from(EvaluationFailure)) == 0
