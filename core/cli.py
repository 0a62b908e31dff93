"""`python -m core COMMAND`: a thin adapter over core (design.md "Command line")."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy.engine import Engine

from core.cli_services import add_service_commands
from core.config import Settings
from core.store.db import init_db, make_engine


class ProgressBar:
    """A one-line progress bar on stderr (only when stderr is a terminal or forced)."""

    def __init__(self, label: str, enabled: bool | None = None) -> None:
        self.label = label
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._last = -1

    def __call__(self, fraction: float, message: str) -> None:
        if not self.enabled:
            return
        pct = int(fraction * 100)
        if pct == self._last and fraction < 1:
            return
        self._last = pct
        filled = pct // 4
        bar = "#" * filled + "-" * (25 - filled)
        end = "\n" if fraction >= 1 else ""
        sys.stderr.write(f"\r{self.label} [{bar}] {pct:3d}% {message[:50]:<50}{end}")
        sys.stderr.flush()


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(database_url=args.db)


def _engine(args: argparse.Namespace) -> Engine:
    engine = make_engine(_settings(args).database_url)
    init_db(engine)
    return engine


def cmd_init(args: argparse.Namespace) -> int:
    """Create or migrate the schema; on a database with no user, create "admin" with a random
    password and print it once."""
    from core.access.admin import FIRST_ADMIN, create_first_admin

    settings = _settings(args)
    engine = make_engine(settings.database_url)
    init_db(engine)
    print(f"schema is up to date ({settings.database_url.split('@')[-1]})")
    password = create_first_admin(engine, actor=args.user)
    if password:
        rule = "=" * 64
        print(f"{rule}\nFirst run: user {FIRST_ADMIN!r} (role admin) created.\n"
              f"Admin password (shown once): {password}\n"
              "Keep it safe now: it is stored only as a hash and is not shown again.\n"
              "Add users: python -m core create-user NAME --role nurse|clinician|viewer|...\n"
              f"{rule}", flush=True)
    return 0


def _days(n: int) -> str:
    return f"{n} day" if abs(n) == 1 else f"{n} days"


def _sample_shift(args: argparse.Namespace, engine: Engine, sample_dir: Path,
                  tz: str) -> tuple[int, str] | None:
    """(days to shift the sample by, the line that says so); None if --today is refused."""
    from zoneinfo import ZoneInfo

    from core.capture.seeding import latest_row, live_shift, seeded_shift

    latest = latest_row(sample_dir)
    if latest is None:
        return 0, "no patients.csv: nothing to shift"
    snapshot = latest.date()
    if args.snapshot:
        return 0, f"sample loaded as written: a snapshot of {snapshot}"
    if args.today is not None:
        days = (args.today - snapshot).days
        if days > live_shift(latest, tz):
            now = datetime.now(ZoneInfo(tz))
            print(f"--today {args.today} would put rows in the future: the sample's latest "
                  f"row is at {latest:%H:%M} of its day, and it is {now:%Y-%m-%d %H:%M} in "
                  f"{tz}", file=sys.stderr)
            return None
        return days, f"sample shifted by {_days(days)} so that {args.today} is its day {snapshot}"
    already = seeded_shift(engine, sample_dir)
    if already is not None:  # --force on a database that holds the sample: keep its dates
        day = snapshot + timedelta(days=already)
        return already, (f"sample already in the database, shifted by {_days(already)} so that "
                         f"{day} is its day {snapshot}; its dates are kept")
    days = live_shift(latest, tz)
    day = snapshot + timedelta(days=days)
    line = f"sample shifted by {_days(days)} so that {day} is its day {snapshot}"
    now = datetime.now(ZoneInfo(tz))
    if day < now.date():
        line += (f" (it is {now:%H:%M} in {tz}, before the sample's latest time of day, "
                 f"{latest:%H:%M})")
    return days, line


def _stale_sample(engine: Engine, sample_dir: Path, tz: str) -> str:
    """A hint when the database holds the sample seeded on an earlier day: its courses have
    moved on since (a patient on day 5 then is on day 8 three days later)."""
    from core.capture.seeding import latest_row, live_shift, seeded_shift

    latest, already = latest_row(sample_dir), seeded_shift(engine, sample_dir)
    if latest is None or already is None:
        return ""
    behind = live_shift(latest, tz) - already
    if behind <= 0:
        return ""
    day = latest.date() + timedelta(days=already)
    return (f"\nThe synthetic sample in it was seeded for {day}, {_days(behind)} ago: every "
            f"course is {_days(behind)} further on than the sample describes. For a fresh "
            "sample, move the database file aside (or point CARTWATCH_DATABASE_URL elsewhere) "
            "and run again.")


def cmd_seed_sample(args: argparse.Namespace) -> int:
    from core.capture.seeding import is_empty, seed_sample

    settings = _settings(args)
    engine = _engine(args)
    sample_dir = Path(args.sample_dir or settings.sample_dir)
    if not is_empty(engine) and not args.force:
        print("database already has patients; sample not loaded (use --force to load it anyway)"
              + _stale_sample(engine, sample_dir, settings.ward_tz))
        return 0
    shift = _sample_shift(args, engine, sample_dir, settings.ward_tz)
    if shift is None:
        return 2
    days, line = shift
    reports = seed_sample(engine, sample_dir, tz=settings.ward_tz,
                          progress=ProgressBar("seeding"), shift_days=days)
    for r in reports:
        print(r.summary())
        for e in r.errors:
            print(f"  {e}", file=sys.stderr)
    if not all(r.ok for r in reports):
        return 1
    print(line)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from core.capture.importing import import_file

    settings = _settings(args)
    engine = _engine(args)
    status = 0
    for name in args.files:
        path = Path(name)
        if not path.is_file():
            print(f"{name}: no such file", file=sys.stderr)
            status = 1
            continue
        if path.suffix.lower() in (".json", ".ndjson"):
            from core.capture.fhir import import_fhir

            report = import_fhir(engine, path.read_bytes(), path.name, user=args.user,
                                 dry_run=args.dry_run, tz=settings.ward_tz,
                                 progress=ProgressBar(path.name))
        else:
            report = import_file(engine, path.read_bytes(), path.name, kind=args.kind,
                                 user=args.user, dry_run=args.dry_run,
                                 confirm_unusual=args.confirm_unusual, tz=settings.ward_tz,
                                 progress=ProgressBar(path.name))
        if report.ok:
            print(report.summary())
        else:
            status = 1
            print(report.summary(), file=sys.stderr)
            for e in report.errors:
                print(f"{path.name}: {e}", file=sys.stderr)
    return status


def _as_of(text: str | None) -> datetime | None:
    if not text:
        return None
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from core.monitoring.evaluation import run_evaluate, text_report

    doc = run_evaluate(_engine(args), _settings(args), as_of=_as_of(args.as_of),
                       patient_id=args.patient, actor=args.user)
    print(json.dumps(doc, indent=1, default=str) if args.json else text_report(doc))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from core.monitoring.evaluation import run_replay, text_report

    doc = run_replay(_engine(args), _settings(args), patient_id=args.patient)
    print(json.dumps(doc, indent=1, default=str) if args.json else text_report(doc))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """`export patient --patient ID --out X.csv|X.png|X.pdf` (format from the suffix);
    `export registry --out X.csv` (de-identified, keyed by CARTWATCH_SITE_SECRET)."""
    from core.views.exporting import export_patient

    engine = _engine(args)
    out = Path(args.out)
    if args.what == "registry":
        import os

        from core.views.exporting import SITE_SECRET_ENV, RegistryRefused, registry_csv

        try:
            text = registry_csv(engine, os.environ.get(SITE_SECRET_ENV),
                                _settings(args).ward_tz)
        except RegistryRefused as exc:
            print(str(exc), file=sys.stderr)
            return 2
        out.write_text(text, encoding="utf-8")
    if args.what == "patient":
        if not args.patient:
            print("export patient needs --patient ID", file=sys.stderr)
            return 2
        try:
            export_patient(engine, args.patient, _settings(args).ward_tz, out)
        except ValueError as exc:
            print(str(exc), file=sys.stderr)
            return 1
    print(f"wrote {out}")
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    from core.store.backup import backup

    dest = backup(_engine(args), Path(args.dest))
    print(f"backup written to {dest}")
    return 0


def _read_password(name: str) -> str | None:
    """A new password from the prompt (typed twice; None if they differ) or from stdin."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    password = getpass.getpass(f"password for {name}: ")
    if getpass.getpass("again: ") != password:
        print("passwords differ", file=sys.stderr)
        return None
    return password


def cmd_create_user(args: argparse.Namespace) -> int:
    from core.access.users import create_user

    if (password := _read_password(args.name)) is None:
        return 1
    try:
        create_user(_engine(args), args.name, args.role, password,
                    display_name=args.display_name, actor=args.user)
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(f"user {args.name} ({args.role}) created")
    return 0


def cmd_set_password(args: argparse.Namespace) -> int:
    """The operator's way back in when every admin has forgotten their password."""
    from core.access.admin import reset_password

    if (password := _read_password(args.name)) is None:
        return 1
    try:
        reset_password(_engine(args), args.name, password, args.user, actor_role=None)
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(f"new password set for {args.name}; their saved sign-ins have ended")
    return 0


def build_parser() -> argparse.ArgumentParser:
    # --db and --user work before or after the command (`python -m core import f --db URL`)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", default=argparse.SUPPRESS,
                        help="database URL (overrides CARTWATCH_DATABASE_URL)")
    common.add_argument("--user", default=argparse.SUPPRESS,
                        help="who is doing this (audit log)")
    p = argparse.ArgumentParser(prog="python -m core", description=__doc__)
    p.add_argument("--db", help="database URL (overrides CARTWATCH_DATABASE_URL)")
    p.add_argument("--user", default=getpass.getuser(), help="who is doing this (audit log)")
    subparsers = p.add_subparsers(dest="command", required=True)

    class _Sub:
        @staticmethod
        def add_parser(name: str, *, help: str) -> argparse.ArgumentParser:
            return subparsers.add_parser(name, parents=[common], help=help)

    sub = _Sub()

    sub.add_parser("init", help="create or migrate the schema").set_defaults(func=cmd_init)

    s = sub.add_parser("seed-sample", help="load the synthetic sample cohort")
    s.add_argument("--force", action="store_true", help="load even if patients exist")
    s.add_argument("--sample-dir")
    when = s.add_mutually_exclusive_group()
    when.add_argument("--snapshot", action="store_true",
                      help="keep the sample's dates as written (default: shift the sample so "
                           "that today is its day)")
    when.add_argument("--today", type=date.fromisoformat, metavar="YYYY-MM-DD",
                      help="shift the sample so that this date is its day")
    s.set_defaults(func=cmd_seed_sample)

    s = sub.add_parser("import", help="import CSV or FHIR files (all rows or none)")
    s.add_argument("files", nargs="+")
    s.add_argument("--kind", choices=["patients", "labs", "observations", "episodes",
                                      "treatments", "events"])
    s.add_argument("--dry-run", action="store_true", help="validate only, write nothing")
    s.add_argument("--confirm-unusual", action="store_true",
                   help="accept values past the soft plausibility limits (flagged)")
    s.set_defaults(func=cmd_import)

    for name, func, helptext in (("evaluate", cmd_evaluate, "run every rule, update alerts"),
                                 ("replay", cmd_replay, "rules as of every day (backtest)")):
        s = sub.add_parser(name, help=helptext)
        if name == "evaluate":
            s.add_argument("--as-of", help="ISO time (default now)")
        s.add_argument("--patient")
        s.add_argument("--json", action="store_true")
        s.set_defaults(func=func)

    s = sub.add_parser("export", help="export a patient summary or the de-identified "
                                      "registry extract (needs CARTWATCH_SITE_SECRET)")
    s.add_argument("what", choices=["patient", "registry"])
    s.add_argument("--patient")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("backup", help="consistent online copy of the database")
    s.add_argument("dest")
    s.set_defaults(func=cmd_backup)

    add_service_commands(sub)

    s = sub.add_parser("create-user", help="add a user (password from prompt or stdin)")
    s.add_argument("name")
    s.add_argument("--role", required=True,
                   choices=["display", "viewer", "nurse", "clinician", "admin"])
    s.add_argument("--display-name")
    s.set_defaults(func=cmd_create_user)

    s = sub.add_parser("set-password", help="give a user a new password (prompt or stdin); "
                                            "also reopens a name locked by failed sign-ins")
    s.add_argument("name")
    s.set_defaults(func=cmd_set_password)
    return p


def main(argv: list[str] | None = None) -> int:
    from core.store.faults import StorageFault, storage_guard

    args = build_parser().parse_args(argv)
    try:
        with storage_guard():
            return int(args.func(args))
    except StorageFault as exc:  # read-only or full database, lost server: one sentence
        print(str(exc), file=sys.stderr)
        return 1
