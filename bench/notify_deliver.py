"""Benchmark: deliver 100 notifications to a local HTTP receiver (issue 13 §3).

    .venv/bin/python bench/notify_deliver.py [--notifications 100] [--db URL]

Builds a fresh SQLite file (or uses --db, an empty database), fires one severe alert per
episode for one synthetic patient with a signed json:// contact configured, so each alert
writes one outbox row, then times `deliver_pending` sending them all through Apprise to an
http.server on 127.0.0.1 that verifies every Standard Webhooks signature. Each notification
is claimed, sent and recorded in its own transactions, as the monitor does.
Prints one JSON line {notifications, delivered, verified, seconds, per_notification_ms,
enqueue_seconds, ok}; target: 100 delivered in <= 5 s. The data are synthetic.
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._receivers import HttpReceiver  # noqa: E402
from core.config import Settings  # noqa: E402
from core.monitoring.alerts import sync_alerts  # noqa: E402
from core.monitoring.notify import deliver_pending, parse_notify_config  # noqa: E402
from core.rules.base import Finding, Status  # noqa: E402
from core.rules.catalog import all_specs  # noqa: E402
from core.store.db import init_db, make_engine, session_scope  # noqa: E402
from core.store.models import Patient  # noqa: E402

TARGET_S = 5.0
SECRET = "whsec_" + base64.b64encode(b"benchmark secret, not a real one").decode()
NOW = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--notifications", type=int, default=100)
    p.add_argument("--db", default=None, help="an empty database URL (default: a temp SQLite)")
    args = p.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="cartwatch-bench-"))
    url = args.db or f"sqlite:///{tmp / 'notify.db'}"
    engine = make_engine(url)
    init_db(engine)
    with HttpReceiver(SECRET) as receiver:
        config = parse_notify_config(f"""
[[notify.contact]]
name = "pager"
url = "{receiver.url('/page')}"
min_severity = "info"
secret_env = "BENCH_SECRET"
""", source="bench")
        specs = {s.rule.id: s for s in all_specs()}
        t0 = time.perf_counter()
        with session_scope(engine) as s:
            patient = Patient(patient_id="BENCH-001", initials="ZZ", bed="1A-01",
                              product="axi-cel", infusion_date=date(2026, 11, 12))
            s.add(patient)
            s.flush()
            findings = [Finding("iec_hs", Status.MET, since_day=float(i % 9),
                                episode_key=f"bench-{i}") for i in range(args.notifications)]
            sync_alerts(s, int(patient.id), findings, specs, NOW,  # type: ignore[arg-type]
                        notify=config)
        enqueue_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        report = deliver_pending(engine, Settings(database_url=url), NOW + timedelta(seconds=1),
                                 worker="bench", config=config,
                                 environ={"BENCH_SECRET": SECRET})
        seconds = time.perf_counter() - t0
        verified = sum(1 for r in receiver.requests if r.verified)
        received = len(receiver.requests)
    engine.dispose()
    shutil.rmtree(tmp, ignore_errors=True)
    n = args.notifications
    print(json.dumps({
        "notifications": n, "delivered": report.delivered, "received": received,
        "verified": verified, "seconds": round(seconds, 3),
        "per_notification_ms": round(1000 * seconds / max(n, 1), 2),
        "enqueue_seconds": round(enqueue_s, 3), "target_seconds": TARGET_S,
        "db": "sqlite" if args.db is None else engine.dialect.name,
        "ok": report.delivered == received == verified == n and seconds <= TARGET_S * n / 100,
    }))


if __name__ == "__main__":
    main()
