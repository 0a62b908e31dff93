"""Reliability fixtures: a migrated database (SQLite file or real PostgreSQL) with patients,
and helpers that run `tests.reliability.worker` as real OS processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from core.capture.importing import import_file
from core.store.models import LabResult
from tests.reliability.worker import NOW

ROOT = Path(__file__).resolve().parents[2]
PATIENTS = ("W1", "W2", "W3", "W4", "BIG")


def url_of(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


@pytest.fixture
def ward_db(store: Engine) -> Engine:
    """The `store` database with the patients the workers write for."""
    rows = "\n".join(f"{p},2025-12-01,axi-cel" for p in PATIENTS)
    rep = import_file(store, f"patient_id,infusion_date,product\n{rows}\n".encode(),
                      "patients.csv", now=NOW)
    assert rep.ok, rep.errors
    return store


# root writes through any file mode: drop that capability so chmod means what it says
NO_OVERRIDE = ["setpriv", "--bounding-set=-dac_override,-dac_read_search",
               "--inh-caps=-dac_override,-dac_read_search", "--"]


def spawn(*args: str, respect_modes: bool = False) -> subprocess.Popen:
    prefix = NO_OVERRIDE if respect_modes and os.geteuid() == 0 else []
    return subprocess.Popen([*prefix, sys.executable, "-m", "tests.reliability.worker", *args],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def finish(proc: subprocess.Popen, timeout: float = 60) -> dict:
    """Wait for a worker; it must succeed and never have met 'database is locked'."""
    out, err = proc.communicate(timeout=timeout)
    assert "database is locked" not in err, err
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def lab_count(engine: Engine, patient_pk: int | None = None) -> int:
    stmt = select(func.count()).select_from(LabResult)
    if patient_pk is not None:
        stmt = stmt.where(LabResult.patient_pk == patient_pk)
    with engine.connect() as c:
        return int(c.execute(stmt).scalar_one())
