"""The monitor (`python -m core monitor`): keeps time so that nobody has to be at a shell.

Every cycle it evaluates every active patient (so clock-driven states change on schedule:
an overdue lab, an unacknowledged severe alert escalating, a snooze expiring, the day
rolling over), delivers pending notifications, and records the cycle as a `MonitorCycle`
row: the heartbeat that the huddle, the overview and the health check read.

On PostgreSQL any number of monitors may run: a cycle first takes a session-level advisory
lock, and a monitor that does not get it skips that cycle (one works per cycle). On SQLite
the write transactions serialise the monitors in the same way.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from core.config import Settings, worker_name
from core.store.db import is_sqlite, session_scope
from core.store.models import (
    Alert,
    AlertState,
    EvaluationFailure,
    MonitorCycle,
    Notification,
    NotificationStatus,
    as_utc,
    utcnow,
)

log = logging.getLogger(__name__)

FAILED_TEST_SHOWN_FOR = timedelta(hours=24)
DEFAULT_INTERVAL = timedelta(minutes=5)
"""How often the monitor runs a cycle (`monitor --interval`, CARTWATCH_MONITOR_INTERVAL)."""


@dataclass(frozen=True)
class MonitorStatus:
    """What the huddle, the overview and the health check say about the monitor.

    last_cycle_at: when the newest monitor cycle finished (None: never).
    interval: the cycle interval the status is judged against.
    failed_deliveries: notifications whose retries are used up and that still matter: their
        alert is still unacknowledged (firing or escalated: someone may not have been paged),
        or a test sent within FAILED_TEST_SHOWN_FOR. Acknowledging the alert clears it; the
        admin page keeps every failed delivery.
    outbox_backlog: notifications due now and not yet delivered.
    evaluation_failures: failures of evaluation not yet retried successfully.
    """

    last_cycle_at: datetime | None
    now: datetime
    interval: timedelta
    failed_deliveries: int
    outbox_backlog: int
    evaluation_failures: int
    last_cycle_error: str | None = None

    @property
    def is_running(self) -> bool:
        """A cycle finished within two intervals (one may be under way)."""
        return (self.last_cycle_at is not None
                and self.now - self.last_cycle_at <= 2 * self.interval)

    @property
    def is_healthy(self) -> bool:
        return (self.is_running and not self.failed_deliveries and not self.evaluation_failures
                and not self.last_cycle_error)

    def problems(self) -> list[str]:
        """Plain sentences for a banner: empty when all is well."""
        out = []
        if self.last_cycle_at is None:
            out.append("The monitor has never run: alerts change only when data is entered.")
        elif not self.is_running:
            out.append(f"Monitor not running since {self.last_cycle_at:%Y-%m-%d %H:%M} UTC: "
                       "clock-driven alerts (overdue labs, escalation) are not updated.")
        if self.failed_deliveries:
            out.append(f"{self.failed_deliveries} notification(s) could not be delivered: "
                       "see Users & settings → Notifications.")
        if self.last_cycle_error:
            out.append(f"The monitor's last cycle reported: {self.last_cycle_error}")
        if self.evaluation_failures:
            out.append(f"{self.evaluation_failures} evaluation(s) failed and are being "
                       "retried: some alerts may be out of date.")
        return out


def monitor_status(session: Session, now: datetime | None = None,
                   interval: timedelta = DEFAULT_INTERVAL) -> MonitorStatus:
    """The monitor's heartbeat and the outbox's state, in four small queries."""
    now = as_utc(now) or utcnow()
    newest = session.execute(select(col(MonitorCycle.finished_at), col(MonitorCycle.error))
                             .where(col(MonitorCycle.finished_at).is_not(None))
                             .order_by(col(MonitorCycle.finished_at).desc())
                             .limit(1)).first()
    last, error = (newest[0], newest[1]) if newest is not None else (None, None)
    unacknowledged = select(col(Alert.id)).where(col(Alert.state).in_(
        [AlertState.FIRING.value, AlertState.ESCALATED.value]))
    failed = session.scalar(select(func.count()).select_from(Notification).where(
        col(Notification.status) == NotificationStatus.FAILED.value,
        or_(col(Notification.alert_id).in_(unacknowledged),
            and_(col(Notification.alert_id).is_(None),
                 col(Notification.created_at) >= now - FAILED_TEST_SHOWN_FOR)))) or 0
    backlog = session.scalar(select(func.count()).select_from(Notification).where(
        col(Notification.status).in_([NotificationStatus.PENDING.value,
                                      NotificationStatus.SENDING.value]),
        col(Notification.next_attempt_at) <= now)) or 0
    failing = session.scalar(select(func.count()).select_from(EvaluationFailure).where(
        col(EvaluationFailure.retried_at).is_(None))) or 0
    if isinstance(last, str):
        last = datetime.fromisoformat(last)
    return MonitorStatus(as_utc(last), now, interval, int(failed), int(backlog), int(failing),
                         error)


MONITOR_LOCK_KEY = 0x43415254_4D4F  # "CARTMO": one fixed key for every monitor


@dataclass
class CycleReport:
    """What one monitor cycle did."""

    skipped: str | None = None  # why this monitor did not work this cycle
    patients: int = 0
    delivered: int = 0
    failed_deliveries: int = 0
    error: str | None = None
    seconds: float = 0.0

    def line(self) -> str:
        """One log line, key=value."""
        if self.skipped:
            return f"monitor cycle skipped reason={self.skipped!r}"
        return (f"monitor cycle done patients={self.patients} delivered={self.delivered} "
                f"failed_deliveries={self.failed_deliveries} seconds={self.seconds:.2f}"
                + (f" error={self.error!r}" if self.error else ""))


@contextmanager
def _cycle_lock(engine: Engine) -> Iterator[bool]:
    """On PostgreSQL a session-level advisory lock held on its own connection for the whole
    cycle (released by unlock, or by the connection closing if the process dies): True if
    this monitor holds it. SQLite serialises the cycle's write transactions instead."""
    if is_sqlite(engine):
        yield True
        return
    with engine.connect() as conn:
        got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"),
                                {"k": MONITOR_LOCK_KEY}).scalar())
        conn.commit()
        try:
            yield got
        finally:
            if got:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MONITOR_LOCK_KEY})
                conn.commit()


def run_cycle(engine: Engine, settings: Settings, now: datetime | None = None, *,
              worker: str | None = None) -> CycleReport:
    """One cycle: a fhir-sync pass when the site TOML names a FHIR server, evaluate every
    active patient, deliver due notifications, heartbeat.

    A monitor skips the cycle when another holds the PostgreSQL lock, or finished a cycle
    less than half an interval ago (monitors on two hosts share the work, never double it).
    An evaluation that fails is logged and recorded (EvaluationFailure); the deliveries and
    the heartbeat still happen, so the health check shows the failure.
    """
    from core.monitoring.evaluation import run_evaluate
    from core.monitoring.notify import (
        DeliveryReport,
        NotifyConfigError,
        deliver_pending,
        notify_config,
    )

    worker = worker or worker_name()
    started = time.perf_counter()
    report = CycleReport()
    with _cycle_lock(engine) as got:
        if not got:
            report.skipped = "another monitor holds the lock"
            return report
        at = as_utc(now) or utcnow()
        with session_scope(engine) as s:
            last = as_utc(_parse(s.scalar(select(func.max(col(MonitorCycle.finished_at))).where(
                col(MonitorCycle.worker) != worker))))
            if last is not None and at - last < settings.monitor_interval / 2:
                report.skipped = f"another monitor finished a cycle at {last:%H:%M:%S}"
                return report
            cycle = MonitorCycle(worker=worker, started_at=at)
            s.add(cycle)
        report.error = _fhir_sync(engine, settings)
        try:
            doc = run_evaluate(engine, settings, as_of=now, actor="monitor",
                               wait_for_lock=True)
            report.patients = len(doc["patients"])
            _retried(engine, at)
        except Exception as exc:  # logged and recorded; the cycle goes on to deliver
            log.error("monitor evaluation failed", exc_info=exc)
            failure = f"{type(exc).__name__}: {exc}"[:2000]
            report.error = (report.error + "; " if report.error else "") + failure
            with session_scope(engine) as s:
                s.add(EvaluationFailure(source="monitor", error=failure))
        try:
            config = notify_config(settings)
        except NotifyConfigError as exc:  # alerts were still synced, without notifications
            log.error("notifications are off: %s", exc)
            report.error = (report.error + "; " if report.error else "") + str(exc)[:1000]
            config = None
        delivery = (deliver_pending(engine, settings, now, worker=worker, config=config)
                    if config is not None else DeliveryReport())
        report.delivered = delivery.delivered
        report.failed_deliveries = delivery.failed
        report.seconds = time.perf_counter() - started
        with session_scope(engine) as s:
            row = s.get(MonitorCycle, cycle.id)
            assert row is not None
            row.finished_at = as_utc(now) or utcnow()
            row.patients, row.delivered = report.patients, report.delivered
            row.failed_deliveries, row.error = report.failed_deliveries, report.error
    return report


def _fhir_sync(engine: Engine, settings: Settings) -> str | None:
    """One fhir-sync pass when the site TOML names a FHIR server ([fhir] base_url); its
    error (a refused page, an HTTP failure, a bad [fhir] table) for the cycle's error."""
    from core.capture.fhirsync import FhirConfigError, sync_configured

    try:
        sync = sync_configured(engine, settings)
    except FhirConfigError as exc:
        log.error("fhir-sync is off: %s", exc)
        return f"fhir-sync: {exc}"[:1000]
    except Exception as exc:  # the database went away, ...: logged, the cycle goes on
        log.error("fhir-sync pass failed", exc_info=exc)
        return f"fhir-sync: {type(exc).__name__}: {exc}"[:1000]
    return None if sync is None or sync.error is None else f"fhir-sync: {sync.error}"[:1000]


def _parse(value: object) -> datetime | None:
    if isinstance(value, str):
        return datetime.fromisoformat(value)
    assert value is None or isinstance(value, datetime), value  # a DateTime column's value
    return value


def _retried(engine: Engine, at: datetime) -> None:
    """Every active patient was just evaluated: earlier failures are retried."""
    with session_scope(engine) as s:
        s.execute(update(EvaluationFailure).where(
            col(EvaluationFailure.retried_at).is_(None)).values(retried_at=at))


def run_forever(engine: Engine, settings: Settings, stop: threading.Event, *,
                worker: str | None = None) -> None:
    """Cycle every `settings.monitor_interval` until `stop` is set (SIGTERM/SIGINT in the
    CLI). A cycle that raises is logged and the next one runs on time."""
    worker = worker or worker_name()
    interval = settings.monitor_interval.total_seconds()
    log.info("monitor started worker=%s interval_seconds=%g", worker, interval)
    while not stop.is_set():
        began = time.monotonic()
        try:
            log.info(run_cycle(engine, settings, worker=worker).line())
        except Exception as exc:  # the database went away, ...: say so, try next cycle
            log.error("monitor cycle failed", exc_info=exc)
        stop.wait(max(0.0, interval - (time.monotonic() - began)))
    log.info("monitor stopped worker=%s", worker)


# --- health check for the hospital's monitoring --------------------------------------------

def health(engine: Engine, settings: Settings) -> tuple[int, dict[str, object]]:
    """(HTTP status, JSON body): 200 when the monitor is running with no failed delivery or
    evaluation, else 503 with what is wrong."""
    with session_scope(engine) as s:
        st = monitor_status(s, interval=settings.monitor_interval)
    body: dict[str, object] = {
        "status": "ok" if st.is_healthy else "degraded",
        "last_cycle_at": None if st.last_cycle_at is None else st.last_cycle_at.isoformat(),
        "outbox_backlog": st.outbox_backlog,
        "failed_deliveries": st.failed_deliveries,
        "evaluation_failures": st.evaluation_failures,
        "last_cycle_error": st.last_cycle_error,
        "problems": st.problems(),
    }
    return (200 if st.is_healthy else 503), body


class _StatusCollector:
    """Prometheus metrics read from the database at each scrape (any monitor answers for
    the whole deployment)."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine, self.settings = engine, settings

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        with session_scope(self.engine) as s:
            st = monitor_status(s, interval=self.settings.monitor_interval)
        age = (None if st.last_cycle_at is None
               else (st.now - st.last_cycle_at).total_seconds())
        for name, doc, value in (
            ("cartwatch_monitor_last_cycle_age_seconds",
             "Seconds since a monitor last finished a cycle (NaN: never)",
             float("nan") if age is None else age),
            ("cartwatch_outbox_backlog", "Notifications due and not yet delivered",
             st.outbox_backlog),
            ("cartwatch_failed_deliveries", "Notifications whose retries are used up",
             st.failed_deliveries),
            ("cartwatch_evaluation_failures", "Evaluation failures not yet retried",
             st.evaluation_failures),
        ):
            yield GaugeMetricFamily(name, doc, value=value)


def health_app(engine: Engine, settings: Settings) -> Callable[..., Iterable[bytes]]:
    """A WSGI app: GET /healthz (JSON, 200/503) and GET /metrics (Prometheus text)."""
    from prometheus_client import CollectorRegistry, make_wsgi_app

    registry = CollectorRegistry()
    registry.register(_StatusCollector(engine, settings))
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/metrics":
            return metrics(environ, start_response)
        if environ.get("PATH_INFO") not in ("/", "/healthz"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found: try /healthz or /metrics\n"]
        code, body = health(engine, settings)
        start_response("200 OK" if code == 200 else "503 Service Unavailable",
                       [("Content-Type", "application/json")])
        return [json.dumps(body).encode()]

    return app


def serve_health(engine: Engine, settings: Settings, host: str, port: int) -> Any:
    """Start the health endpoint in a daemon thread; returns the server (shutdown() stops
    it). The WSGI server is the standard library's; its request log goes to `logging`."""
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    class _Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            log.debug("health request " + format, *args)

    server = make_server(host, port, health_app(engine, settings), handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, name="monitor-health", daemon=True).start()
    log.info("monitor health endpoint http://%s:%d/healthz and /metrics", host,
             server.server_port)
    return server
