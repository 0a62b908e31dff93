"""Consistent online copies of the database while writers keep working.

The copy is written beside the destination as `<dest>.partial` and renamed over `dest` only
once it is whole, so a failed backup (read-only or full destination, lost server) leaves no
partial file and never spoils an earlier backup at `dest`: it raises `StorageFault` with a
sentence instead. The database itself is only read.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy.engine import Engine

from core.store.faults import StorageFault

FAILED = ("The backup could not be written to {dest} ({detail}); no backup was made and the "
          "database is unchanged. Check that folder's permissions and free space, then try "
          "again.")


def _failed(dest: Path, detail: str) -> StorageFault:
    line = (detail.strip().splitlines() or [""])[-1][:200] or "no detail"
    return StorageFault(FAILED.format(dest=dest, detail=line))


def backup(engine: Engine, dest: Path) -> Path:
    """SQLite: the online backup API (a consistent snapshot); PostgreSQL: pg_dump."""
    tmp = dest.with_suffix(dest.suffix + ".partial")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        if engine.dialect.name == "sqlite":
            _sqlite_copy(engine, tmp)
        else:
            _pg_dump(engine, tmp)
        tmp.replace(dest)
    except (OSError, sqlite3.OperationalError) as exc:  # read-only or full folder
        _discard(tmp)
        raise _failed(dest, str(exc) or type(exc).__name__) from exc
    except subprocess.CalledProcessError as exc:
        _discard(tmp)
        raise _failed(dest, exc.stderr or f"pg_dump exit status {exc.returncode}") from exc
    except BaseException:
        _discard(tmp)
        raise
    return dest


def _discard(tmp: Path) -> None:
    try:
        tmp.unlink(missing_ok=True)
    except OSError:
        pass


def _sqlite_copy(engine: Engine, tmp: Path) -> None:
    src_path = engine.url.database
    if not src_path or src_path == ":memory:":
        raise ValueError("an in-memory database cannot be backed up")
    src = sqlite3.connect(src_path, timeout=30)
    try:
        out = sqlite3.connect(tmp)
        try:
            with out:
                src.backup(out, pages=1024)
            ok = out.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            out.close()
    finally:
        src.close()
    if ok != "ok":
        raise RuntimeError(f"backup failed its integrity check: {ok}")


def _pg_dump(engine: Engine, tmp: Path) -> None:
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        raise RuntimeError("pg_dump is not installed; install the PostgreSQL client tools")
    url = engine.url.set(drivername="postgresql")
    subprocess.run([pg_dump, "--format=custom", f"--file={tmp}",
                    url.render_as_string(hide_password=False)], check=True,
                   capture_output=True, text=True)
