"""Load the synthetic sample cohort (data/sample/) through the normal import path."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine

from core.db import session_scope
from core.faults import storage_guard
from core.importing import ImportReport, import_file
from core.models import Patient

SAMPLE_ORDER = ("patients", "labs", "observations", "episodes", "treatments", "events")
SEED_USER = "sample-seed"


def is_empty(engine: Engine) -> bool:
    with session_scope(engine) as s:
        return s.execute(select(func.count()).select_from(Patient)).scalar_one() == 0


@storage_guard()
def seed_sample(engine: Engine, sample_dir: Path, tz: str = "UTC",
                progress=None) -> list[ImportReport]:  # type: ignore[no-untyped-def]
    """Import every sample file in order; stops at the first rejected file."""
    reports = []
    for i, kind in enumerate(SAMPLE_ORDER):
        path = sample_dir / f"{kind}.csv"
        if not path.exists():
            continue
        step = (lambda f, m, i=i, kind=kind: progress((i + f) / len(SAMPLE_ORDER),
                                                       f"{kind}: {m}")) if progress else None
        report = import_file(engine, path.read_bytes(), path.name, kind=kind, user=SEED_USER,
                             tz=tz, source="sample", progress=step)
        reports.append(report)
        if not report.ok:
            break
    with session_scope(engine) as s:
        s.execute(update(Patient).where(Patient.source == "sample").values(is_synthetic=True))
    return reports
