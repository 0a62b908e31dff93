"""Load the synthetic sample cohort (data/sample/) through the normal import path.

The sample is a snapshot of one day: every row but the patients' dates is placed by `day`
after infusion, and its latest row is early on the day it was written for. Seeding can move
it to another day by adding whole days to patients.csv's dates (in memory; the files on disk
stay as written), so the ward sees each patient on the same course day as in the snapshot.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine
from sqlmodel import col

from core.capture.importing import ImportReport, import_file
from core.store.db import session_scope
from core.store.faults import storage_guard
from core.store.models import Patient

SAMPLE_ORDER = ("patients", "labs", "observations", "episodes", "treatments", "events")
SEED_USER = "sample-seed"
DATE_COLUMNS = ("infusion_date", "lymphodepletion_start")  # patients.csv: what a shift moves
DAY_COLUMNS = ("day", "onset_day", "resolved_day")  # the other files: days after infusion


def is_empty(engine: Engine) -> bool:
    with session_scope(engine) as s:
        return s.execute(select(func.count()).select_from(Patient)).scalar_one() == 0


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def latest_row(sample_dir: Path) -> datetime | None:
    """The ward wall-clock time (naive) of the latest row in a sample folder; its date is the
    day the sample is a snapshot of. None without a patients.csv."""
    patients = sample_dir / "patients.csv"
    if not patients.exists():
        return None
    infusion = {r["patient_id"]: date.fromisoformat(r["infusion_date"]) for r in _rows(patients)}
    latest = max((datetime.combine(d, time(0)) for d in infusion.values()), default=None)
    for kind in SAMPLE_ORDER[1:]:
        path = sample_dir / f"{kind}.csv"
        if not path.exists():
            continue
        for row in _rows(path):
            start = infusion.get(row.get("patient_id", ""))
            for name in DAY_COLUMNS:
                if start is None or not row.get(name):
                    continue
                when = datetime.combine(start, time(0)) + timedelta(days=float(row[name]))
                latest = when if latest is None or when > latest else latest
    return latest


def live_shift(latest: datetime, tz: str, now: datetime | None = None) -> int:
    """Whole days to add so the latest row lands on the ward's latest day on which its time of
    day has passed: today, or yesterday while the ward's clock is still before it."""
    now = now or datetime.now(ZoneInfo(tz))
    local = now.astimezone(ZoneInfo(tz)).replace(tzinfo=None)
    return (local - latest) // timedelta(days=1)


def seeded_shift(engine: Engine, sample_dir: Path) -> int | None:
    """The shift the sample already in the database was seeded with (None if it is not)."""
    path = sample_dir / "patients.csv"
    if not path.exists():
        return None
    written = {r["patient_id"]: date.fromisoformat(r["infusion_date"]) for r in _rows(path)}
    with session_scope(engine) as s:
        stored = s.execute(select(col(Patient.patient_id), col(Patient.infusion_date)).where(
            col(Patient.source) == "sample", col(Patient.patient_id).in_(list(written)))).first()
    return None if stored is None else (stored[1] - written[stored[0]]).days


def shifted_patients(data: bytes, days: int) -> bytes:
    """patients.csv with `days` added to its dates (blank dates stay blank)."""
    reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig")))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=reader.fieldnames or [], lineterminator="\n")
    writer.writeheader()
    for row in reader:
        for name in DATE_COLUMNS:
            if row.get(name):
                row[name] = (date.fromisoformat(row[name]) + timedelta(days=days)).isoformat()
        writer.writerow(row)
    return out.getvalue().encode("utf-8")


@storage_guard()
def seed_sample(engine: Engine, sample_dir: Path, tz: str = "UTC",
                progress: Callable[[float, str], None] | None = None,
                shift_days: int = 0) -> list[ImportReport]:
    """Import every sample file in order; stops at the first rejected file.

    shift_days: added to patients.csv's dates, which moves every row placed by `day` by that
    many days (0 loads the snapshot as written; `live_shift` gives the one for today).
    """
    reports = []
    for i, kind in enumerate(SAMPLE_ORDER):
        path = sample_dir / f"{kind}.csv"
        if not path.exists():
            continue
        data = path.read_bytes()
        if kind == "patients" and shift_days:
            data = shifted_patients(data, shift_days)
        step = (lambda f, m, i=i, kind=kind: progress((i + f) / len(SAMPLE_ORDER),
                                                       f"{kind}: {m}")) if progress else None
        report = import_file(engine, data, path.name, kind=kind, user=SEED_USER,
                             tz=tz, source="sample", progress=step)
        reports.append(report)
        if not report.ok:
            break
    with session_scope(engine) as s:
        s.execute(update(Patient).where(col(Patient.source) == "sample")
                  .values(is_synthetic=True))
    return reports
