"""Shared fixtures: real SQLite files and a real PostgreSQL server started by the suite.

In CI (CI=true) nothing may skip for a missing dependency: a missing PostgreSQL or chromium
fails the run instead, so a missing install step can never pass unseen.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from bench._pg import free_port as free_port  # re-exported: tests/e2e/conftest.py
from bench._pg import have_postgres, start_local_pg
from core.store.db import init_db, make_engine

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ROOT = Path(__file__).resolve().parent.parent


def missing_dependency(what: str) -> None:
    """Fail in CI, skip with the install hint elsewhere."""
    if IN_CI:
        pytest.fail(f"{what} is missing in CI; .ci/run must install it")
    pytest.skip(f"{what} is not installed here")


class PgServer:
    def __init__(self, port: int, sockdir: str) -> None:
        self.port = port
        self.sockdir = sockdir
        self._counter = itertools.count()
        self.admin = create_engine(
            f"postgresql+psycopg://app@127.0.0.1:{port}/postgres", isolation_level="AUTOCOMMIT")

    def new_database(self) -> str:
        name = f"t{os.getpid()}_{next(self._counter)}"
        with self.admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        return f"postgresql+psycopg://app@127.0.0.1:{self.port}/{name}"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One throwaway server per test process (bench/_pg.py, shared with the benchmarks)."""
    if not have_postgres():
        missing_dependency("PostgreSQL (initdb, pg_ctl)")
    local = start_local_pg()
    server = PgServer(local.port, local.sockdir)
    try:
        yield server
    finally:
        server.admin.dispose()
        local.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A fresh, migrated database on each engine: a SQLite file, then real PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        url = request.getfixturevalue("pg_server").new_database()
    engine = make_engine(url)
    init_db(engine)
    yield engine
    engine.dispose()
