"""Faults: a process killed mid-import, a read-only or full database, an online backup under
writers with a restore round trip. SQLite and PostgreSQL.

Every core write path (entry, site settings, corrections, verification, alert acknowledge and
snooze, user creation, the imports) meets each storage fault: a read-only SQLite file or
folder, a full disk, a read-only PostgreSQL database, revoked rights, a server lost at COMMIT
or never reached. Each raises `StorageFault` with the user's sentence (the imports report it),
and the whole database, audit log included, is exactly as before.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, inspect, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from core.access.permissions import NotAllowed
from core.access.users import create_user
from core.capture.corrections import CorrectionRefused, correct
from core.capture.entry import enter_day
from core.capture.importing import import_file
from core.monitoring.alert_actions import snooze
from core.store.db import init_db, is_sqlite, make_engine
from core.store.faults import StorageFault, storage_guard
from core.store.models import AuditLog, ImportBatch, LabResult, Patient
from core.store.unit_of_work import write_session
from tests.conftest import free_port
from tests.reliability.conftest import NO_OVERRIDE, ROOT, finish, lab_count, spawn, url_of
from tests.reliability.worker import NOW, import_paths, lab_file, seed_for_writes, write_paths

LARGE = 50_000
READ_ONLY = "The database cannot be written (read-only or disk full); nothing was saved"
UNREACHABLE = "The database could not be reached"


def _pk(engine, patient: str) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as c:
        return int(c.execute(select(Patient.id).where(Patient.patient_id == patient))
                   .scalar_one())


def _integrity(engine) -> None:  # type: ignore[no-untyped-def]
    if is_sqlite(engine):
        with sqlite3.connect(engine.url.database) as con:
            assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert con.execute("PRAGMA foreign_key_check").fetchall() == []


def _batches_match_rows(engine) -> int:  # type: ignore[no-untyped-def]
    """Every import batch has exactly its rows and its audit row; returns the batch count."""
    with engine.connect() as c:
        batches = c.execute(select(ImportBatch.id, ImportBatch.rows_written)
                            .where(ImportBatch.kind == "labs")).all()
        per_batch = dict(c.execute(select(LabResult.import_batch_id, func.count())
                                   .group_by(LabResult.import_batch_id)).all())
        audited = {int(r) for r in c.execute(select(AuditLog.record_id).where(
            AuditLog.action == "import", AuditLog.table_name == "labs")).scalars()}
    for batch_id, rows in batches:
        assert per_batch.get(batch_id, 0) == rows, (batch_id, rows, per_batch.get(batch_id))
    assert audited == {b for b, _ in batches}
    assert set(per_batch) - {None} <= {b for b, _ in batches}  # no orphan rows
    return len(batches)


# ---------------------------------------------------------------------------- SIGKILL

def test_sigkill_in_the_middle_of_a_large_import_leaves_none_of_it(ward_db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Killed while the transaction holds the first 5,000 of 50,000 written rows."""
    url = url_of(ward_db)
    before = lab_count(ward_db)
    ready = tmp_path / "ready"
    proc = spawn("big", url, "BIG", str(LARGE), str(ready), "60")
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "the import never reached its write phase"
        time.sleep(0.05)
    assert ready.read_text().startswith("writing rows 5,000 of 50,000")
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL

    fresh = make_engine(url)  # as a new process would: SQLite recovers its WAL here
    try:
        _integrity(fresh)
        assert lab_count(fresh) == before
        assert lab_count(fresh, _pk(fresh, "BIG")) == 0
        _batches_match_rows(fresh)
        # nothing half-written stands in the way: the same file imports whole afterwards
        rep = import_file(fresh, lab_file("BIG", 0, LARGE), "BIG-big.csv", now=NOW)
        assert rep.ok and rep.rows_new == LARGE, rep.summary()
        assert lab_count(fresh, _pk(fresh, "BIG")) == LARGE
        _integrity(fresh)
    finally:
        fresh.dispose()


def test_sigkill_at_any_moment_gives_all_or_none(ward_db) -> None:  # type: ignore[no-untyped-def]
    """Killed after a fixed delay, wherever it is (reading, validating, writing, committing)."""
    url = url_of(ward_db)
    proc = spawn("big", url, "BIG", "20000")
    time.sleep(3.0)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)
    fresh = make_engine(url)
    try:
        _integrity(fresh)
        assert lab_count(fresh, _pk(fresh, "BIG")) in (0, 20_000)
        _batches_match_rows(fresh)
    finally:
        fresh.dispose()


# ---------------------------------------------------------------------------- read-only, full

@pytest.mark.parametrize("what", ["file", "directory"])
def test_a_read_only_sqlite_database_gives_a_clear_message_and_loses_nothing(
        tmp_path: Path, what: str) -> None:
    shared_dir = tmp_path / "ro"
    shared_dir.mkdir()
    db = shared_dir / "ro.db"
    url = f"sqlite:///{db}"
    engine = make_engine(url)
    init_db(engine)
    assert import_file(engine, b"patient_id,infusion_date,product\nW1,2025-12-01,axi-cel\n",
                       "p.csv", now=NOW).ok
    assert import_file(engine, lab_file("W1", 0, 40), "first.csv", now=NOW).ok
    engine.dispose()  # last connection closed: WAL checkpointed, -wal and -shm removed
    (shared_dir / "new.csv").write_bytes(lab_file("W1", 100, 40))
    before = db.read_bytes()
    db.chmod(0o444)
    if what == "directory":
        shared_dir.chmod(0o555)
    result = finish(spawn("import-once", url, str(shared_dir / "new.csv"), respect_modes=True))
    shared_dir.chmod(0o755)
    db.chmod(0o644)
    assert not result["ok"] and not result["written"]
    assert any(READ_ONLY in e for e in result["errors"]), result
    assert db.read_bytes() == before
    engine = make_engine(url)
    try:
        _integrity(engine)
        assert lab_count(engine) == 40
    finally:
        engine.dispose()


def test_a_full_database_gives_a_clear_message_and_loses_nothing(ward_db) -> None:  # type: ignore[no-untyped-def]
    assert import_file(ward_db, lab_file("W1", 0, 40), "first.csv", now=NOW).ok
    url = url_of(ward_db)
    full = make_engine(url)
    if is_sqlite(full):
        with full.connect() as c:
            pages = c.exec_driver_sql("PRAGMA page_count").scalar_one()

        @event.listens_for(full, "connect")
        def _cap(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            dbapi_conn.execute(f"PRAGMA max_page_count={pages + 2}")  # "disk" full at once
        full.dispose()
    else:  # PostgreSQL: a database switched to read-only by the DBA
        name = full.url.database
        with ward_db.connect() as c:
            c.execute(text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'))
            c.commit()
        full.dispose()
    try:
        rep = import_file(full, lab_file("W1", 1000, 5000), "more.csv", now=NOW)
        assert not rep.ok and not rep.written
        assert READ_ONLY in rep.errors[0].message, rep.errors
        assert "nothing was written" in rep.summary()
    finally:
        full.dispose()
    if not is_sqlite(ward_db):
        with ward_db.connect() as c:
            c.execute(text(f'ALTER DATABASE "{name}" RESET default_transaction_read_only'))
            c.commit()
    _integrity(ward_db)
    assert lab_count(ward_db) == 40


# ---------------------------------------------------------------------------- backup

def test_online_backup_under_writers_is_consistent_and_restores(ward_db, tmp_path,
                                                                  pg_restore_target) -> None:  # type: ignore[no-untyped-def]
    url = url_of(ward_db)
    assert import_file(ward_db, lab_file("BIG", 0, 20_000), "base.csv", now=NOW).ok
    stop = tmp_path / "stop"
    writers = [spawn("import", url, p, "200", "8", str(stop)) for p in ("W1", "W2")]
    deadline = time.monotonic() + 30
    while lab_count(ward_db) < 20_000 + 16:  # both writers are under way
        assert time.monotonic() < deadline
        time.sleep(0.1)
    dest = tmp_path / ("copy.db" if is_sqlite(ward_db) else "copy.dump")
    count_before = lab_count(ward_db)
    # a real process: in this one the backup is over within one writer's 8-row import on
    # PostgreSQL (measured), too short a window to be sure the writers ran during it
    done = subprocess.run([sys.executable, "-m", "core", "backup", str(dest), "--db", url],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    count_after = lab_count(ward_db)
    stop.write_text("stop")
    written = [finish(w)["written"] for w in writers]
    assert done.returncode == 0, done.stderr
    assert "backup written to" in done.stdout
    assert count_after > count_before, "the writers did not run during the backup"

    restored_url = pg_restore_target(dest) if not is_sqlite(ward_db) else f"sqlite:///{dest}"
    restored = make_engine(restored_url)
    try:
        _integrity(restored)
        init_db(restored)  # the copy opens as a normal database
        copied = lab_count(restored)
        assert count_before <= copied <= count_after
        assert _batches_match_rows(restored) >= 1 + 2
        rep = import_file(restored, lab_file("W3", 0, 8), "after.csv", now=NOW)
        assert rep.ok and rep.rows_new == 8
        assert lab_count(restored) == copied + 8
    finally:
        restored.dispose()
    assert lab_count(ward_db) == 20_000 + sum(written)
    print(f"{ward_db.dialect.name}: copy {copied} rows (before {count_before}, after "
          f"{count_after}), writers {written}")


@pytest.fixture
def pg_restore_target(request):  # type: ignore[no-untyped-def]
    """restore(dump) -> URL of a new PostgreSQL database holding the dump (pg_restore)."""

    def restore(dump: Path) -> str:
        url = request.getfixturevalue("pg_server").new_database()
        plain = url.replace("postgresql+psycopg://", "postgresql://")
        subprocess.run(["pg_restore", "--no-owner", "--exit-on-error", "-d", plain, str(dump)],
                       check=True, capture_output=True, timeout=60)
        return url

    return restore


# ---------------------------------------------------------------------------- every write path

def _content(engine: Engine) -> dict[str, list[tuple]]:  # type: ignore[type-arg]
    """Every row of every table (audit log and alembic_version included), in key order."""
    with engine.connect() as c:
        return {t: [tuple(r) for r in c.execute(text(f'SELECT * FROM "{t}" ORDER BY 1'))]
                for t in sorted(inspect(c).get_table_names())}


def _counts(content: dict[str, list[tuple]]) -> dict[str, int]:  # type: ignore[type-arg]
    return {t: len(rows) for t, rows in content.items()}


def _assert_refused(outcomes: dict[str, dict[str, Any]], sentence: str) -> None:
    """Each write path raised StorageFault with `sentence`; each import reported it."""
    assert set(outcomes) == set(write_paths({})) | set(import_paths()), outcomes
    for name, got in outcomes.items():
        if name in import_paths():
            assert got["raised"] is None and not got["written"], (name, got)
            assert len(got["errors"]) == 1 and sentence in got["errors"][0], (name, got)
        else:
            assert got["raised"] == "StorageFault", (name, got)
            assert sentence in got["message"] and "nothing was saved" in got["message"], \
                (name, got)


def _try_every_write(engine: Engine, ids: dict[str, int]) -> dict[str, dict[str, Any]]:
    """In this process: what each write path does on `engine` (see worker.write_all)."""
    out: dict[str, dict[str, Any]] = {}
    for name, write in write_paths(ids).items():
        try:
            out[name] = {"raised": None, "result": repr(write(engine))[:300]}
        except Exception as exc:  # noqa: BLE001 - judged by _assert_refused
            out[name] = {"raised": type(exc).__name__, "message": str(exc)}
    for name, imp in import_paths().items():
        rep = imp(engine)
        out[name] = {"raised": None, "written": rep.written,
                     "errors": [str(e) for e in rep.errors]}
    return out


_SYNC_ACTIONS = {f"alert_{a}" for a in ("fired", "refired", "reopened", "worsened",
                                          "resolved", "unsnoozed", "escalated")}


def _every_write_succeeds(engine: Engine, ids: dict[str, int]) -> None:
    """Once the fault is gone the same writes go through whole (so each one was a real change
    that the fault refused, and nothing half-written stands in the way), each audited."""
    before = _counts(_content(engine))
    outcomes = _try_every_write(engine, ids)
    for name, got in outcomes.items():
        assert got["raised"] is None and not got.get("errors"), (name, got)
    assert "no longer current" not in outcomes["verify"]["result"]
    content = _content(engine)
    after = _counts(content)
    # one audit row per changed row: 1 + 2 entered labs, setting, verify, correct,
    # entered-in-error, acknowledge, snooze, user, and one per import batch; besides them,
    # the alert changes that the writes' own evaluation made (core.store.unit_of_work)
    followed = sum(row[3] in _SYNC_ACTIONS for row in content["auditlog"][before["auditlog"]:])
    assert after["auditlog"] - before["auditlog"] - followed == 3 + 1 + 3 + 2 + 1 + 2, (
        before, after)
    assert after["labresult"] - before["labresult"] == 1 + 2 + 1 + 20 + 1


def _run_worker(args: list[str], *, prefix: list[str] | None = None,
                file_size_limit: int | None = None) -> dict:  # type: ignore[type-arg]
    """`python -m tests.reliability.worker ARGS` as another OS process; with a file size
    limit, every write past that many bytes fails as on a full disk (EFBIG, SIGXFSZ ignored)."""
    def limit() -> None:
        if file_size_limit is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    proc = subprocess.run([*(prefix or []), sys.executable, "-m", "tests.reliability.worker",
                           *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          preexec_fn=limit)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture
def write_db(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    """A SQLite file seeded for every write path, closed (WAL checkpointed and removed)."""
    folder = tmp_path / "db"
    folder.mkdir()
    db = folder / "ward.db"
    engine = make_engine(f"sqlite:///{db}")
    init_db(engine)
    ids = seed_for_writes(engine)
    engine.dispose()
    return db, ids


@pytest.mark.parametrize("what", ["file", "directory"])
def test_every_write_on_a_read_only_sqlite_database_is_refused_whole(
        write_db: tuple[Path, dict[str, int]], what: str) -> None:
    db, ids = write_db
    url = f"sqlite:///{db}"
    engine = make_engine(url)
    before = _content(engine)
    engine.dispose()
    raw = db.read_bytes()
    db.chmod(0o444)
    if what == "directory":
        db.parent.chmod(0o555)
    try:  # another OS user, as root would write through any mode
        outcomes = _run_worker(["write-all", url, json.dumps(ids)],
                               prefix=NO_OVERRIDE if os.geteuid() == 0 else [])
    finally:
        db.parent.chmod(0o755)
        db.chmod(0o644)
    _assert_refused(outcomes, READ_ONLY)
    assert db.read_bytes() == raw
    engine = make_engine(url)
    try:
        _integrity(engine)
        assert _content(engine) == before
        _every_write_succeeds(engine, ids)
    finally:
        engine.dispose()


def test_every_write_on_a_full_disk_is_refused_whole_at_commit(
        write_db: tuple[Path, dict[str, int]]) -> None:
    """The writer may not write one more byte to any file (its WAL frames fail at COMMIT)."""
    db, ids = write_db
    url = f"sqlite:///{db}"
    engine = make_engine(url)
    before = _content(engine)
    raw = db.read_bytes()
    engine.dispose()
    hold = sqlite3.connect(db)  # keeps -wal and -shm in place (no lock): only writes fail
    try:
        hold.execute("SELECT count(*) FROM patient").fetchone()
        outcomes = _run_worker(["write-all", url, json.dumps(ids)], file_size_limit=0)
    finally:
        hold.close()
    _assert_refused(outcomes, READ_ONLY)
    assert db.read_bytes() == raw
    engine = make_engine(url)
    try:
        _integrity(engine)
        assert _content(engine) == before
        _every_write_succeeds(engine, ids)
    finally:
        engine.dispose()


@pytest.fixture
def pg_write_db(pg_server) -> tuple[Engine, dict[str, int]]:  # type: ignore[no-untyped-def]
    engine = make_engine(pg_server.new_database())
    init_db(engine)
    ids = seed_for_writes(engine)
    yield engine, ids
    engine.dispose()


@pytest.mark.parametrize("fault", ["read_only", "no_rights", "lost_at_commit", "unreachable"])
def test_every_write_on_a_faulty_postgresql_is_refused_whole(
        pg_write_db: tuple[Engine, dict[str, int]], pg_server, fault: str) -> None:  # type: ignore[no-untyped-def]
    engine, ids = pg_write_db
    name = engine.url.database
    before = _content(engine)
    sentence = READ_ONLY
    if fault == "read_only":  # the DBA switched the database to read-only
        with engine.connect() as c:
            c.execute(text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'))
            c.commit()
        faulty = make_engine(url_of(engine))
    elif fault == "no_rights":  # an account that may read but no longer write
        role = f"ro_{name}"
        with engine.connect() as c:
            c.execute(text(f'CREATE ROLE "{role}" LOGIN'))
            c.execute(text(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{role}"'))
            c.commit()
        faulty = make_engine(url_of(engine).replace("//app@", f"//{role}@"))
    elif fault == "lost_at_commit":  # the server goes away just before each COMMIT
        sentence = UNREACHABLE
        faulty = make_engine(url_of(engine))

        @event.listens_for(faulty, "commit")
        def _lose_server(conn) -> None:  # type: ignore[no-untyped-def]
            pid = conn.connection.dbapi_connection.info.backend_pid
            with engine.connect() as admin:
                assert admin.execute(text("SELECT pg_terminate_backend(:p, 10000)"),
                                     {"p": pid}).scalar_one()
    else:  # nothing listens there
        sentence = UNREACHABLE
        faulty = make_engine(f"postgresql+psycopg://app@127.0.0.1:{free_port()}/{name}")
    try:
        outcomes = _try_every_write(faulty, ids)
    finally:
        faulty.dispose()
        if fault == "read_only":
            with engine.connect() as c:
                c.execute(text(f'ALTER DATABASE "{name}" RESET default_transaction_read_only'))
                c.commit()
    _assert_refused(outcomes, sentence)
    assert _content(engine) == before, _counts(_content(engine))
    _every_write_succeeds(engine, ids)


def test_refusals_that_are_not_storage_faults_are_unchanged(tmp_path: Path) -> None:
    """NotAllowed, bad input and other database errors pass through the guard as they were,
    even where the database cannot be reached at all."""
    nowhere = make_engine(f"postgresql+psycopg://app@127.0.0.1:{free_port()}/none")
    try:
        with pytest.raises(NotAllowed):
            enter_day(nowhere, "F1", NOW, labs=[("crp", "5", "mg/L")], user="v", role="viewer")
        with pytest.raises(ValueError, match="at least 10 characters"):
            create_user(nowhere, "x", "nurse", "short")
        with pytest.raises(CorrectionRefused, match="Pick a reason"):
            correct(nowhere, "labs", 1, {"value": "1"}, "because", "nurse-b")
        with pytest.raises(ValueError, match="expire in the future"), write_session(nowhere) as s:
            snooze(s, 1, "dr-c", "why", until=NOW, now=NOW)
        with pytest.raises(StorageFault, match=UNREACHABLE):
            create_user(nowhere, "x", "nurse", "a long password")
    finally:
        nowhere.dispose()
    boom = IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed: user.username"))
    with pytest.raises(IntegrityError), storage_guard():
        raise boom


# ---------------------------------------------------------------------------- CLI and backup

def _cli(*args: str, prefix: list[str] | None = None,
         file_size_limit: int | None = None) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    """`python -m core ARGS` as a real process: as another OS user (`prefix`, root writes
    through any mode) or with a file size limit, neither of which this process can take on."""

    def limit() -> None:
        if file_size_limit is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    return subprocess.run([*(prefix or []), sys.executable, "-m", "core", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, input="a long password\n",
                          preexec_fn=limit)


def test_cli_on_a_read_only_database_prints_the_sentence(
        write_db: tuple[Path, dict[str, int]]) -> None:
    db, _ids = write_db
    raw = db.read_bytes()
    db.chmod(0o444)
    db.parent.chmod(0o555)
    try:
        done = _cli("create-user", "night-nurse", "--role", "nurse", "--db", f"sqlite:///{db}",
                    prefix=NO_OVERRIDE if os.geteuid() == 0 else [])
    finally:
        db.parent.chmod(0o755)
        db.chmod(0o644)
    assert done.returncode == 1, done.stderr
    assert READ_ONLY in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert db.read_bytes() == raw


@pytest.mark.parametrize("fault", ["read_only_folder", "full_disk"])
def test_a_failed_backup_says_so_and_leaves_no_partial_copy(
        write_db: tuple[Path, dict[str, int]], tmp_path: Path, fault: str) -> None:
    db, _ids = write_db
    url = f"sqlite:///{db}"
    dest_dir = tmp_path / "backups"
    dest_dir.mkdir()
    dest = dest_dir / "ward.db"
    dest.write_bytes(b"yesterday's backup")
    raw = db.read_bytes()
    if fault == "read_only_folder":
        dest_dir.chmod(0o555)
        try:
            done = _cli("backup", str(dest), "--db", url,
                        prefix=NO_OVERRIDE if os.geteuid() == 0 else [])
        finally:
            dest_dir.chmod(0o755)
    else:  # room for the database's WAL index, not for a copy of the database
        done = _cli("backup", str(dest), "--db", url, file_size_limit=64 * 1024)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "The backup could not be written to" in done.stderr, done.stderr
    assert "no backup was made and the database is unchanged" in done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert sorted(p.name for p in dest_dir.iterdir()) == ["ward.db"]  # no .partial left
    assert dest.read_bytes() == b"yesterday's backup"
    assert db.read_bytes() == raw
