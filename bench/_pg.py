"""A throwaway local PostgreSQL server, for the test suite and the benchmarks.

initdb into a temporary folder, start on a free loopback port with fsync off, stop and remove
everything afterwards. initdb refuses to run as root, so as root the server runs as the
image's `postgres` user (../shared/stack-notes.md §5). The leading underscore keeps
`python -m bench` from running this file as a benchmark. Imports nothing from core.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_bin(name: str) -> str | None:
    """`initdb`/`pg_ctl` on PATH, else the newest Debian /usr/lib/postgresql/*/bin one."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def have_postgres() -> bool:
    return bool(pg_bin("initdb") and pg_bin("pg_ctl"))


@dataclass
class LocalPg:
    """A running server: superuser `app`, trust auth, on 127.0.0.1:`port`."""

    base: str
    port: int
    sockdir: str
    prefix: list[str] = field(default_factory=list)

    @property
    def data(self) -> str:
        return os.path.join(self.base, "data")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://app@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        pg_ctl = pg_bin("pg_ctl")
        if pg_ctl:
            subprocess.run(self.prefix + [pg_ctl, "-D", self.data, "-m", "immediate", "-w",
                                          "stop"], capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)


def start_local_pg(options: str = "-c max_connections=100", prefix: str = "cartwatch-pg-"
                   ) -> LocalPg:
    """initdb and start a server; `options` are extra postgres `-c` settings.

    Raises FileNotFoundError when initdb/pg_ctl are not installed, CalledProcessError
    (with the server's output) when they fail.
    """
    initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        raise FileNotFoundError("PostgreSQL (initdb, pg_ctl): apt-get install postgresql")
    base = tempfile.mkdtemp(prefix=prefix)
    os.chmod(base, 0o755)
    sock = os.path.join(base, "sock")
    os.mkdir(sock)
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(base, "postgres")
        shutil.chown(sock, "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    server = LocalPg(base=base, port=free_port(), sockdir=sock, prefix=run_as)
    try:
        subprocess.run(run_as + [initdb, "-D", server.data, "-U", "app", "--auth=trust",
                                 "-E", "UTF8", "--no-locale", "-N"],
                       check=True, capture_output=True)
        subprocess.run(run_as + [pg_ctl, "-D", server.data, "-l", os.path.join(base, "log"),
                                 "-w", "-t", "30", "-o",
                                 f"-c listen_addresses=127.0.0.1 -p {server.port} -k {sock} "
                                 f"-c fsync=off {options}", "start"],
                       check=True, capture_output=True)
    except BaseException:
        server.stop()
        raise
    return server
