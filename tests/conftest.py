"""Shared fixtures: real SQLite files and a real PostgreSQL server started by the suite.

In CI (CI=true) nothing may skip for a missing dependency: a missing PostgreSQL or chromium
fails the run instead, so a missing install step can never pass unseen.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from core.db import init_db, make_engine

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ROOT = Path(__file__).resolve().parent.parent


def missing_dependency(what: str) -> None:
    """Fail in CI, skip with the install hint elsewhere."""
    if IN_CI:
        pytest.fail(f"{what} is missing in CI; .ci/run must install it")
    pytest.skip(f"{what} is not installed here")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


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
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        missing_dependency("PostgreSQL (initdb, pg_ctl)")
    base = tempfile.mkdtemp(prefix="cartwatch-pg-")
    os.chmod(base, 0o755)
    sock = os.path.join(base, "sock")
    os.mkdir(sock)
    prefix: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root (stack-notes §5)
        shutil.chown(base, "postgres")
        shutil.chown(sock, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    data = os.path.join(base, "data")
    port = free_port()
    subprocess.run(prefix + [initdb, "-D", data, "-U", "app", "--auth=trust", "-E", "UTF8",
                             "--no-locale", "-N"], check=True, capture_output=True)
    subprocess.run(prefix + [pg_ctl, "-D", data, "-l", os.path.join(base, "log"), "-w",
                             "-t", "30", "-o",
                             f"-c listen_addresses=127.0.0.1 -p {port} -k {sock} "
                             "-c fsync=off -c max_connections=100", "start"],
                   check=True, capture_output=True)
    server = PgServer(port, sock)
    try:
        yield server
    finally:
        server.admin.dispose()
        subprocess.run(prefix + [pg_ctl, "-D", data, "-m", "immediate", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


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
