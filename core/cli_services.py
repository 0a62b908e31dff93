"""The long-running services of `python -m core` (design.md "Command line"): the monitor,
the HL7 v2 listener and the FHIR sync. Each runs until SIGTERM or Ctrl-C, logging on stderr;
`--once` (monitor, fhir-sync) does one pass and exits, for cron and tests."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import Protocol

from core.config import Settings
from core.store.db import init_db, make_engine


class _Commands(Protocol):
    def add_parser(self, name: str, *, help: str) -> argparse.ArgumentParser: ...  # noqa: A002


def _log_to_stderr() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def cmd_monitor(args: argparse.Namespace) -> int:
    """The monitor service: a cycle every interval until SIGTERM or Ctrl-C (design.md
    "Live monitoring"); `--once` runs one cycle and exits (cron, tests)."""
    from core.monitoring.monitor import run_cycle, run_forever, serve_health

    _log_to_stderr()
    settings = Settings.from_env(database_url=args.db)
    if args.interval is not None:
        if args.interval <= 0:
            print("--interval must be a number of seconds above 0", file=sys.stderr)
            return 1
        settings = Settings.from_env(database_url=args.db, monitor_seconds=args.interval)
    engine = make_engine(settings.database_url)
    init_db(engine)
    if args.once:
        report = run_cycle(engine, settings)
        print(report.line())
        return 1 if report.error else 0
    server = None
    if args.health_port is not None:
        server = serve_health(engine, settings, args.health_host, args.health_port)
    try:
        run_forever(engine, settings, _stop_on_signals())
    finally:
        if server is not None:
            server.shutdown()
        engine.dispose()
    return 0


def cmd_listen_hl7(args: argparse.Namespace) -> int:
    """The HL7 v2 listener over MLLP until SIGTERM or Ctrl-C (design.md "Command line")."""
    from core.capture.hl7.listener import run

    _log_to_stderr()
    settings = Settings.from_env(database_url=args.db)
    engine = make_engine(settings.database_url)
    init_db(engine)
    try:
        run(engine, settings, args.host, args.port)
    except OSError as exc:  # the port is taken, or the address is not this machine's
        print(f"cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    return 0


def cmd_fhir_sync(args: argparse.Namespace) -> int:
    """Pull from the site's FHIR server ([fhir] in the site TOML) every monitor interval
    until SIGTERM or Ctrl-C; `--once` runs one pass and prints its summary."""
    from core.capture.fhirsync import FhirConfigError, fhir_config, run_forever, sync_once

    _log_to_stderr()
    settings = Settings.from_env(database_url=args.db)
    try:
        config = fhir_config(settings)
    except FhirConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    if config is None:
        print("no FHIR server configured: add a [fhir] table with base_url to the site TOML "
              "(CARTWATCH_SITE_CONFIG)", file=sys.stderr)
        return 1
    engine = make_engine(settings.database_url)
    init_db(engine)
    try:
        if args.once:
            report = sync_once(engine, settings, config)
            print("\n".join(report.lines()))
            return 1 if report.error else 0
        run_forever(engine, settings, config, _stop_on_signals())
    finally:
        engine.dispose()
    return 0


def add_service_commands(sub: _Commands) -> None:
    s = sub.add_parser("monitor", help="the monitor service: evaluate, notify, heartbeat, "
                                       "every interval")
    s.add_argument("--interval", type=float, metavar="SECONDS",
                   help="seconds between cycles (default CARTWATCH_MONITOR_INTERVAL or 300)")
    s.add_argument("--once", action="store_true", help="run one cycle and exit")
    s.add_argument("--health-host", default="127.0.0.1",
                   help="address of the /healthz and /metrics endpoint")
    s.add_argument("--health-port", type=int, default=None,
                   help="port of the /healthz and /metrics endpoint (default: off)")
    s.set_defaults(func=cmd_monitor)

    s = sub.add_parser("listen-hl7", help="HL7 v2 listener over MLLP: ORU^R01 results, ADT "
                                          "admit/transfer/discharge")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on")
    s.add_argument("--port", type=int, default=2575, help="TCP port (default 2575)")
    s.set_defaults(func=cmd_listen_hl7)

    s = sub.add_parser("fhir-sync", help="pull new labs, vitals and drug administrations from "
                                         "the site's FHIR server ([fhir] in the site TOML)")
    s.add_argument("--once", action="store_true", help="one pass, print a summary, exit")
    s.set_defaults(func=cmd_fhir_sync)
