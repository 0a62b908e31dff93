"""Consistent online copies of the database while writers keep working."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy.engine import Engine


def backup(engine: Engine, dest: Path) -> Path:
    """SQLite: the online backup API (a consistent snapshot); PostgreSQL: pg_dump."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if engine.dialect.name == "sqlite":
        src_path = engine.url.database
        if not src_path or src_path == ":memory:":
            raise ValueError("an in-memory database cannot be backed up")
        tmp = dest.with_suffix(dest.suffix + ".partial")
        src = sqlite3.connect(src_path, timeout=30)
        try:
            out = sqlite3.connect(tmp)
            with out:
                src.backup(out, pages=1024)
            ok = out.execute("PRAGMA integrity_check").fetchone()[0]
            out.close()
        finally:
            src.close()
        if ok != "ok":
            tmp.unlink(missing_ok=True)
            raise RuntimeError(f"backup failed its integrity check: {ok}")
        tmp.replace(dest)
        return dest
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        raise RuntimeError("pg_dump is not installed; install the PostgreSQL client tools")
    url = engine.url.set(drivername="postgresql")
    subprocess.run([pg_dump, "--format=custom", f"--file={dest}",
                    url.render_as_string(hide_password=False)], check=True)
    return dest
