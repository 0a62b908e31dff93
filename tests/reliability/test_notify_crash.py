"""A monitor killed with SIGKILL in the middle of a delivery: at-least-once, and only the
notification in flight is sent again. SQLite and PostgreSQL.

The real `python -m core monitor --once` delivers two notifications of one alert to two
receivers on 127.0.0.1; the second receiver holds its request open, and the monitor is
killed -9 while it waits. After the lease a new monitor takes the 'sending' row up again.
The receivers count raw requests: the first contact has exactly one, the second exactly one
more than the request that was cut off (deduplication by webhook-id is not allowed to hide a
double send; it is only checked that the repeat carries the same webhook-id).
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from datetime import date, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import select

from bench._receivers import HttpReceiver
from core.config import Settings
from core.monitoring.alerts import sync_alerts
from core.monitoring.notify import deliver_pending, parse_notify_config, webhook_id
from core.rules.base import Citation, Finding, Rule, RuleSpec, Severity, Status
from core.store.db import session_scope
from core.store.models import DeliveryAttempt, Notification, Patient, utcnow
from core.vocabulary.units import Evidence
from tests.reliability.conftest import ROOT, url_of
from tests.rule_toys import course_rule

SECRET = "whsec_" + base64.b64encode(b"crash test secret of 32 bytes..!").decode()
LEASE_SECONDS = 2


def _crs_spec() -> RuleSpec:
    rule = Rule(id="crs_grade", title="CRS grade (ASTCT)", version="1",
                citation=Citation("test", "§0"), evidence=Evidence.DESIGN,
                severity=Severity.WARNING, thresholds=(), inputs=(), graded=True,
                escalates_at_grade=3)
    return course_rule(rule, lambda course, t: Finding("crs_grade", Status.NOT_MET))


def _site(first: HttpReceiver, second: HttpReceiver) -> str:
    contact = """
[[notify.contact]]
name = "{name}"
url = "{url}"
min_severity = "severe"
rules = ["crs_grade"]
secret_env = "CARTWATCH_CRASH_SECRET"
"""
    return (f"[notify]\nlease_seconds = {LEASE_SECONDS}\n"
            + contact.format(name="first", url=first.url("/first"))
            + contact.format(name="second", url=second.url("/second")))


def _monitor(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "core", "monitor", "--once"], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _rows(engine: Engine) -> dict[str, tuple[Notification, list[DeliveryAttempt]]]:
    with session_scope(engine) as s:
        out = {}
        for n in s.scalars(select(Notification).order_by(Notification.id)):
            out[n.contact] = (n, list(s.scalars(select(DeliveryAttempt).where(
                DeliveryAttempt.notification_id == n.id).order_by(DeliveryAttempt.id))))
        return out


def test_a_monitor_killed_mid_delivery_sends_only_the_interrupted_one_again(
        store: Engine, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CARTWATCH_CRASH_SECRET", SECRET)
    with HttpReceiver(SECRET) as first, HttpReceiver(SECRET, script=["block"]) as second:
        site = tmp_path / "site.toml"
        site.write_text(_site(first, second))
        config = parse_notify_config(site.read_text(), source=str(site))
        # a severe CRS alert fires (grade 3); the monitor's own evaluation later finds
        # crs_grade not evaluable for a patient without observations and leaves it alone
        with session_scope(store) as s:
            p = Patient(patient_id="CRASH-001", initials="KX", bed="9B-02", product="axi-cel",
                        infusion_date=date.today() - timedelta(days=3))
            s.add(p)
            s.flush()
            sync_alerts(s, int(p.id), [Finding("crs_grade", Status.MET, since_day=2.0, grade=3)],  # type: ignore[arg-type]
                        {"crs_grade": _crs_spec()}, utcnow(), notify=config)
        assert [n.contact for n, _ in _rows(store).values()] == ["first", "second"]

        env = {**os.environ, "CARTWATCH_DATABASE_URL": url_of(store),
               "CARTWATCH_SITE_CONFIG": str(site), "CARTWATCH_WARD_TZ": "UTC",
               "CARTWATCH_CRASH_SECRET": SECRET}
        proc = _monitor(env)
        try:
            assert second.blocked.wait(timeout=120), proc.communicate(timeout=60)
            os.kill(proc.pid, signal.SIGKILL)  # while the second receiver holds the request
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == -signal.SIGKILL
        rows = _rows(store)
        (done, done_attempts), (cut, cut_attempts) = rows["first"], rows["second"]
        assert (done.status, len(done_attempts), done_attempts[0].ok) == ("delivered", 1, True)
        assert (cut.status, cut.attempts) == ("sending", 1)
        assert (cut_attempts[0].ok, cut_attempts[0].finished_at) == (None, None)
        second.release.set()  # its handler answers into a closed socket

        # before the lease has run out, nobody takes the row (its worker might be alive)
        settings = Settings(database_url=url_of(store), site_config=site)
        early = deliver_pending(store, settings, worker="early", config=config)
        assert early.as_dict() == {"delivered": 0, "retrying": 0, "failed": 0, "cancelled": 0,
                                   "deferred": 0}
        time.sleep(max(0.0, (cut.next_attempt_at.timestamp() - time.time()) + 0.2))

        restart = _monitor(env)
        out, err = restart.communicate(timeout=180)
        assert restart.returncode == 0, err[-3000:]
        assert "delivered=1" in out, out

    assert len(first.requests) == 1  # exactly one: the delivered row is never sent again
    assert len(second.requests) == 2  # the cut-off request and exactly one more
    assert all(r.verified for r in first.requests + second.requests)
    ids = {r.headers["webhook-id"] for r in second.requests}
    assert ids == {webhook_id(cut.id)}  # a receiver could drop the repeat by its id
    rows = _rows(store)
    (cut, cut_attempts) = rows["second"]
    assert (cut.status, cut.attempts) == ("delivered", 2)
    assert [a.ok for a in cut_attempts] == [None, True]
    assert "worker stopped" in str(cut_attempts[0].error)
    assert cut_attempts[0].worker != cut_attempts[1].worker
    assert rows["first"][0].attempts == 1
