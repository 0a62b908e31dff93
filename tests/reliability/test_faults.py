"""Faults: a process killed mid-import, a read-only or full database, an online backup under
writers with a restore round trip. SQLite and PostgreSQL."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import event, func, select, text

from core.db import init_db, is_sqlite, make_engine
from core.importing import import_file
from core.models import AuditLog, ImportBatch, LabResult, Patient
from tests.reliability.conftest import ROOT, finish, lab_count, spawn, url_of
from tests.reliability.worker import NOW, lab_file

LARGE = 50_000
READ_ONLY = "The database cannot be written (read-only or disk full); nothing was saved"


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
