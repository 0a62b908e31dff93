"""Benchmark (issue #7): 10,000 synthetic patients in PostgreSQL.

    .venv/bin/python bench/pg_scale.py [--patients 10000] [--active 60] [--sample 200] [--runs 3]
    CARTWATCH_BENCH_PG_URL=postgresql+psycopg://USER@HOST/DB .venv/bin/python bench/pg_scale.py

Starts its own throwaway PostgreSQL server (bench/_pg.py: initdb in a temporary folder, a
free loopback port, fsync off), or, with CARTWATCH_BENCH_PG_URL (or --url), creates a fresh
database on that existing server (the role needs CREATEDB) and drops it afterwards. Then:

  load     core.store.db.init_db (Alembic), then COPY (psycopg) of the synthetic courses of
           bench/replay_rules.py: `--patients` in all, of whom `--active` are active in one
           ward, infused `--active-days` days ago (data up to today), and the rest discharged
           courses of `--days` days infused at some point in the last three years; the
           secondary indexes and foreign keys are dropped for the COPY and rebuilt after it;
           then VACUUM ANALYZE. Progress goes to stderr.
  evaluate core.monitoring.evaluation.run_evaluate for the active ward: once cold (it opens the
  alerts),
           then `--runs` warm runs (best and median; CPU seconds of this process beside them).
           The control, `evaluate_ward_alone`: the same ward in a database of its own on the
           same server, measured right after, so the cost of the other patients stands apart
           from whatever else the machine was doing.
  replay   a fixed (seeded) sample of `--sample` patients, read from PostgreSQL 100 at a time
           the way core.monitoring.backtest.backtest reads the cohort, then replayed in this
           one process by core.monitoring.backtest.backtest_courses: patient-days per second
           including the read, the read alone and the replay alone (wall and CPU seconds).

Prints one JSON line (row counts, timings, peak RSS of this process, the machine's load
average); `ok` means the warm evaluate met its ward target (1 s among 10,000 patients
on PostgreSQL).
The data are synthetic, not clinical.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402
from sqlalchemy import create_engine, select, text  # noqa: E402
from sqlalchemy.engine import Engine, make_url  # noqa: E402

from bench import replay_rules  # noqa: E402
from core.config import Settings  # noqa: E402
from core.monitoring.backtest import BATCH, backtest_courses  # noqa: E402
from core.monitoring.evaluation import run_evaluate  # noqa: E402
from core.store.db import init_db, make_engine, session_scope  # noqa: E402
from core.store.loading import load_courses  # noqa: E402
from core.store.models import Patient  # noqa: E402
from core.vocabulary.units import ANALYTES  # noqa: E402

URL_ENV = "CARTWATCH_BENCH_PG_URL"
WARM_TARGET_S = 1.0
ACTIVE_WARD = "bench-active"
INACTIVE_WARDS = 8
LOAD_BATCH = 100  # patients per COPY transaction
SAMPLE = 200  # patients replayed (500 took 4 minutes on a busy 2-core machine)
# the throwaway server: fsync off (bench/_pg.py) and room for a bulk load
SERVER_OPTIONS = ("-c max_connections=20 -c shared_buffers=512MB -c max_wal_size=4GB "
                  "-c maintenance_work_mem=256MB -c work_mem=32MB")
PROVENANCE = ("source", "entered_by", "entered_at", "status")
PATIENT_COLS = ("id", "patient_id", "ward", "product", "infusion_date", "birth_year",
                "status", "is_synthetic", *PROVENANCE[:3])
LAB_COLS = ("patient_pk", "analyte", "collected_at", "value", "original_value", "unit",
            "original_unit", "ref_low", "ref_high", "confirmed_unusual", *PROVENANCE)
OBS_COLS = ("patient_pk", "kind", "observed_at", "value_num", "value_text", *PROVENANCE)
TREATMENT_COLS = ("patient_pk", "drug", "given_at", *PROVENANCE)
TABLES = ("patient", "labresult", "observation", "treatment")

Progress = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Plan:
    """What goes into the database."""

    patients: int = 10_000
    active: int = 60
    days: int = 100
    active_days: int = 30
    seed: int = 7


@contextmanager
def _raw_rows() -> Iterator[None]:
    """Make `replay_rules.synthetic_course` return its keyword arguments instead of a Course.

    The same random draws and rows, without building the pandas frames (about 85% of the
    cost of a course, which would make generating 10,000 of them the slowest step).
    """
    real = replay_rules.make_course
    replay_rules.make_course = lambda **kwargs: kwargs  # type: ignore[assignment]
    try:
        yield
    finally:
        replay_rules.make_course = real  # type: ignore[assignment]


def cohort(plan: Plan, today: date) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(patient row, raw course rows) for every patient; the first `plan.active` are active,
    so a plan with only those patients makes exactly the same active ward."""
    rng = random.Random(plan.seed)
    dates = random.Random(plan.seed + 1)
    with _raw_rows():
        for i in range(plan.patients):
            active = i < plan.active
            days = plan.active_days if active else plan.days
            raw = replay_rules.synthetic_course(i, days, rng)
            infused = (today - timedelta(days=plan.active_days) if active else
                       today - timedelta(days=plan.days + 10 + dates.randint(0, 3 * 365)))
            patient = {
                "id": i + 1, "patient_id": raw["patient_id"],
                "ward": ACTIVE_WARD if active else f"bench-{i % INACTIVE_WARDS}",
                "product": "axi-cel", "infusion_date": infused,
                "birth_year": raw.get("birth_year"),
                "status": "active" if active else "discharged",
            }
            yield patient, raw


def _conninfo(url: str) -> str:
    """A libpq URI for psycopg from a SQLAlchemy URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _copy_text(value: object) -> str:
    """One field in COPY's text format (the synthetic rows hold no tab, newline or '\\')."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _tail(*values: object) -> str:
    return "".join("\t" + _copy_text(v) for v in values) + "\n"


@contextmanager
def _bulk_mode(cur: psycopg.Cursor, tables: tuple[str, ...],
               times: dict[str, float]) -> Iterator[None]:
    """Drop the tables' secondary indexes and foreign-key/unique constraints for the load and
    recreate them, exactly as the migrations made them, afterwards (the usual bulk-load
    recipe: one sorted build instead of millions of index inserts and FK checks)."""
    indexes: list[str] = []
    constraints: list[tuple[str, str, str]] = []
    for table in tables:
        cur.execute(
            "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "WHERE i.indrelid = %s::regclass AND NOT i.indisprimary AND NOT EXISTS ("
            "SELECT 1 FROM pg_constraint c WHERE c.conrelid = i.indrelid "
            "AND c.conindid = i.indexrelid)", (table,))
        for name, definition in cur.fetchall():
            indexes.append(definition)
            cur.execute(f"DROP INDEX {name}")
        cur.execute("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                    "WHERE conrelid = %s::regclass AND contype IN ('f', 'u')", (table,))
        for name, definition in cur.fetchall():
            constraints.append((table, name, definition))
            cur.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    cur.connection.commit()
    yield
    t = time.perf_counter()
    for definition in indexes:
        cur.execute(definition)
    for table, name, definition in constraints:
        cur.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
    cur.connection.commit()
    times["index_seconds"] = time.perf_counter() - t
    times["indexes_rebuilt"] = len(indexes) + len(constraints)


def _backend_cpu(pid: int) -> float | None:
    """CPU seconds of a PostgreSQL backend on this machine (None when it is not local)."""
    try:
        if Path(f"/proc/{pid}/comm").read_text().strip() != "postgres":
            return None
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime+stime
    except (OSError, ValueError, IndexError):
        return None


def load_cohort(url: str, plan: Plan, progress: Progress | None = _stderr) -> dict[str, Any]:
    """COPY the plan's cohort into the (migrated, empty) database; returns counts and times."""
    today = datetime.now(UTC).date()
    now = datetime.now(UTC)
    prov = _tail("bench", "bench", now, "final")  # source, entered_by, entered_at, status
    # per analyte, everything after the value: original_value is written before it
    lab_tail = {a: _tail(ANALYTES[a].unit, ANALYTES[a].unit, ANALYTES[a].ref_low,
                         ANALYTES[a].ref_high, False)[:-1] + prov
                for a in replay_rules.DAILY_LABS}
    stamps: dict[tuple[date, float], str] = {}  # (infusion date, day): COPY text of the time

    def at(infused: date, day: float) -> str:
        key = (infused, day)
        stamp = stamps.get(key)
        if stamp is None:
            start = datetime(infused.year, infused.month, infused.day, tzinfo=UTC)
            stamp = stamps[key] = (start + timedelta(days=float(day))).isoformat()
        return stamp

    def copy(cur: psycopg.Cursor, table: str, cols: tuple[str, ...], lines: list[str]) -> None:
        with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as cp:
            cp.write("".join(lines))

    started = time.perf_counter()
    cpu_started = time.process_time()
    times: dict[str, float] = {}
    written = 0
    with psycopg.connect(_conninfo(url)) as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        backend = int(cur.fetchone()[0])  # type: ignore[index]
        batch: list[tuple[dict[str, Any], dict[str, Any]]] = []

        def flush() -> None:
            nonlocal written
            patients, labs, obs, trs = [], [], [], []
            for p, raw in batch:
                pk, infused = p["id"], p["infusion_date"]
                patients.append(_copy_text(pk) + _tail(
                    p["patient_id"], p["ward"], p["product"], infused.isoformat(),
                    p["birth_year"], p["status"], True, "bench", "bench", now))
                for a, d, v in raw["labs"]:
                    labs.append(f"{pk}\t{a}\t{at(infused, d)}\t{v!r}\t{v:g}{lab_tail[a]}")
                for k, d, v in raw["observations"]:
                    value = f"\\N\t{v}" if isinstance(v, str) else f"{v!r}\t\\N"
                    obs.append(f"{pk}\t{k}\t{at(infused, d)}\t{value}{prov}")
                for drug, d in raw["treatments"]:
                    trs.append(f"{pk}\t{drug}\t{at(infused, d)}{prov}")
            copy(cur, "patient", PATIENT_COLS, patients)
            copy(cur, "labresult", LAB_COLS, labs)
            copy(cur, "observation", OBS_COLS, obs)
            copy(cur, "treatment", TREATMENT_COLS, trs)
            conn.commit()
            written += len(patients) + len(labs) + len(obs) + len(trs)
            batch.clear()

        with _bulk_mode(cur, TABLES[1:], times):
            done = 0
            last_report = time.perf_counter()
            for item in cohort(plan, today):
                batch.append(item)
                done += 1
                if len(batch) >= LOAD_BATCH:
                    flush()
                    if progress is not None and (time.perf_counter() - last_report > 15
                                                 or done == plan.patients):
                        last_report = time.perf_counter()
                        elapsed = last_report - started
                        progress(f"pg_scale: loaded {done:,}/{plan.patients:,} patients, "
                                 f"{written:,} rows, {elapsed:.0f} s "
                                 f"({written / elapsed:,.0f} rows/s)")
            if batch:
                flush()
            cur.execute("SELECT setval('patient_id_seq', (SELECT max(id) FROM patient))")
            conn.commit()
            copy_s = time.perf_counter() - started
            client_cpu = time.process_time() - cpu_started
            server_cpu = _backend_cpu(backend)
            if progress is not None:
                progress("pg_scale: rebuilding indexes and constraints")

        if progress is not None:
            progress(f"pg_scale: VACUUM ANALYZE ({times['index_seconds']:.0f} s for indexes)")
        t = time.perf_counter()
        conn.autocommit = True
        cur.execute("VACUUM (ANALYZE)")
        vacuum_s = time.perf_counter() - t
        counts = {}
        for table in TABLES:
            cur.execute(f"SELECT count(*) FROM {table}")
            counts[table] = int(cur.fetchone()[0])  # type: ignore[index]
        cur.execute("SELECT pg_database_size(current_database())")
        size = int(cur.fetchone()[0])  # type: ignore[index]
    return {"rows": counts, "rows_total": sum(counts.values()),
            "copy_seconds": round(copy_s, 3),
            "copy_rows_per_s": round(written / copy_s) if copy_s else None,
            # CPU behind the COPY wall time: this process (generating and formatting rows)
            # and its PostgreSQL backend (None on a server elsewhere)
            "copy_client_cpu_seconds": round(client_cpu, 3),
            "copy_server_cpu_seconds": None if server_cpu is None else round(server_cpu, 3),
            "index_seconds": round(times["index_seconds"], 3),
            "indexes_rebuilt": times["indexes_rebuilt"],
            "vacuum_analyze_seconds": round(vacuum_s, 3),
            "load_seconds": round(time.perf_counter() - started, 3),
            "db_size_mb": round(size / 2**20)}


def measure_evaluate(engine: Engine, settings: Settings, runs: int) -> dict[str, Any]:
    """run_evaluate over the active patients: cold once, then `runs` warm runs."""
    t = time.perf_counter()
    doc = run_evaluate(engine, settings)
    cold = time.perf_counter() - t
    warm, cpu = [], []
    for _ in range(runs):
        c, t = time.process_time(), time.perf_counter()
        run_evaluate(engine, settings)
        warm.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return {
        "patients": len(doc["patients"]),
        "findings": sum(len(p["findings"]) for p in doc["patients"]),
        "cold_seconds": round(cold, 3), "warm_seconds": round(min(warm), 3),
        "warm_median": round(statistics.median(warm), 3), "warm_runs": runs,
        "warm_cpu_seconds": round(min(cpu), 3),  # this process only, not the server
        "warm_target": WARM_TARGET_S,
    }


def measure_replay(engine: Engine, settings: Settings, sample: int, seed: int,
                   progress: Progress | None = _stderr) -> dict[str, Any]:
    """Read a seeded sample of patients (BATCH at a time, like
    core.monitoring.backtest.backtest) and replay every rule over them with
    core.monitoring.backtest.backtest_courses."""
    as_of = datetime.now(UTC)
    with session_scope(engine) as session:
        ids = list(session.scalars(select(Patient.patient_id).order_by(Patient.patient_id)))
    chosen = sorted(random.Random(seed).sample(ids, min(sample, len(ids))))
    if progress is not None:
        progress(f"pg_scale: reading {len(chosen)} patients")
    t = time.perf_counter()
    courses = []
    for start in range(0, len(chosen), BATCH):
        with session_scope(engine) as session:
            courses += load_courses(session, settings.ward_tz, chosen[start:start + BATCH],
                                    active_only=False, as_of=as_of)
    read_s = time.perf_counter() - t
    rows = sum(len(c.labs) + len(c.observations) + len(c.treatments) for c in courses)
    if progress is not None:
        progress(f"pg_scale: read {rows:,} rows in {read_s:.1f} s; replaying")

    def tick(done: int, total: int) -> None:
        if progress is not None and done % 100 == 0:
            progress(f"pg_scale: replayed {done}/{total} patients, "
                     f"{time.perf_counter() - t:.0f} s")

    cpu = time.process_time()
    t = time.perf_counter()
    result = backtest_courses(courses, progress=tick, total=len(courses))
    replay_s = time.perf_counter() - t
    cpu = time.process_time() - cpu
    pd_ = result.patient_days
    return {
        "patients": len(courses), "patient_days": pd_, "rows_read": rows,
        "read_seconds": round(read_s, 2), "replay_seconds": round(replay_s, 2),
        "replay_cpu_seconds": round(cpu, 2),
        "patient_days_per_s": round(pd_ / (read_s + replay_s), 1),
        "replay_only_patient_days_per_s": round(pd_ / replay_s, 1) if replay_s else None,
        "read_patient_days_per_s": round(pd_ / read_s, 1) if read_s else None,
        "alerts": result.alerts,
    }


def measure_ward_alone(url: str, plan: Plan, runs: int,
                       progress: Progress | None = _stderr) -> dict[str, Any]:
    """The control: the same active ward evaluated in a database of its own (created beside
    `url` on the same server, dropped afterwards), so the cost of the 10,000 stands apart
    from the machine's load at the time."""
    if progress is not None:
        progress("pg_scale: evaluate of the same ward alone in a database of its own")
    alone = Plan(patients=plan.active, active=plan.active, days=plan.days,
                 active_days=plan.active_days, seed=plan.seed)
    try:
        with fresh_database(url) as ward_url:
            engine = make_engine(ward_url)
            try:
                init_db(engine)
                load_cohort(ward_url, alone, progress=None)
                return measure_evaluate(engine, Settings(database_url=ward_url), runs)
            finally:
                engine.dispose()
    except Exception as exc:  # e.g. a role without CREATEDB on an existing server
        return {"error": f"{type(exc).__name__}: {exc}"[:300]}


def _peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB


def run(url: str, plan: Plan, *, runs: int = 3, sample: int = SAMPLE,
        progress: Progress | None = _stderr) -> dict[str, Any]:
    """The whole benchmark on an empty database at `url`; returns the JSON document."""
    started = time.perf_counter()
    load_start = [round(x, 1) for x in os.getloadavg()]  # other work on the machine
    engine = make_engine(url)
    try:
        t = time.perf_counter()
        init_db(engine)
        migrate_s = time.perf_counter() - t
        loaded = load_cohort(url, plan, progress)
        peak_load = _peak_mb()
        settings = Settings(database_url=url)
        if progress is not None:
            progress("pg_scale: evaluate")
        evaluate = measure_evaluate(engine, settings, runs)
        replay = measure_replay(engine, settings, sample, plan.seed, progress)
    finally:
        engine.dispose()
    ward_alone = measure_ward_alone(url, plan, runs, progress) if plan.active else None
    return {
        "plan": asdict(plan), "cores": os.cpu_count(), "load_average_at_start": load_start,
        "load_average_at_end": [round(x, 1) for x in os.getloadavg()],
        **loaded, "migrate_seconds": round(migrate_s, 2),
        "evaluate": evaluate, "evaluate_ward_alone": ward_alone, "replay": replay,
        "peak_mb_after_load": peak_load, "peak_mb": _peak_mb(),
        "seconds": round(time.perf_counter() - started, 1),
        "ok": evaluate["warm_seconds"] <= WARM_TARGET_S,
    }


@contextmanager
def fresh_database(url: str) -> Iterator[str]:
    """URL of a new empty database on the server of `url`, dropped afterwards."""
    name = f"cartwatch_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(make_url(url).set(drivername="postgresql+psycopg"),
                          isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield (make_url(url).set(drivername="postgresql+psycopg", database=name)
                   .render_as_string(hide_password=False))
        finally:
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@contextmanager
def database(url: str | None) -> Iterator[tuple[str, str]]:
    """(URL of an empty database, what server it is on), removed afterwards."""
    if url:  # an existing server: a fresh database on it, dropped afterwards
        with fresh_database(url) as fresh:
            yield fresh, "existing server"
        return
    from bench._pg import start_local_pg

    server = start_local_pg(SERVER_OPTIONS, prefix="cartwatch-bench-pg-")
    try:
        yield server.url(), f"throwaway local server, fsync=off, {SERVER_OPTIONS}"
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--patients", type=int, default=Plan.patients)
    p.add_argument("--active", type=int, default=Plan.active)
    p.add_argument("--days", type=int, default=Plan.days)
    p.add_argument("--active-days", type=int, default=Plan.active_days)
    p.add_argument("--seed", type=int, default=Plan.seed)
    p.add_argument("--sample", type=int, default=SAMPLE, help="patients replayed")
    p.add_argument("--runs", type=int, default=3, help="warm evaluate runs")
    p.add_argument("--url", default=os.environ.get(URL_ENV),
                   help=f"an existing server (default ${URL_ENV}; else a throwaway one)")
    args = p.parse_args(argv)
    if not 0 <= args.active <= args.patients:
        p.error("--active must be between 0 and --patients")
    plan = Plan(args.patients, args.active, args.days, args.active_days, args.seed)
    with database(args.url) as (url, server):
        doc = run(url, plan, runs=args.runs, sample=args.sample)
    print(json.dumps({"server": server, **doc}))


if __name__ == "__main__":
    main()
