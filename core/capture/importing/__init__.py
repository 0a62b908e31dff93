"""CSV import: validate every row, then write all of them in one transaction or none.

`import_file` is the one code path used by `python -m core import`, the import page and the
benchmark. A rejected file leaves the database exactly as it was.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from core.access.permissions import require
from core.capture.codemap import CodeMap
from core.capture.importing.reading import (
    KINDS,
    FileRejected,
    RowError,
    read_csv_bytes,
    template_csv,
)
from core.capture.importing.validate import PREPARE, Context
from core.store import audit
from core.store.db import table_of
from core.store.faults import StorageFault
from core.store.models import (
    CLINICAL_TABLES,
    EventKind,
    ImportBatch,
    MissingLab,
    Patient,
    PatientStatus,
)
from core.store.unit_of_work import touch, write_session

__all__ = ["ImportReport", "RowError", "import_file", "template_csv", "KINDS", "FileRejected",
           "Context", "validate_rows", "write_rows", "TABLES"]

# every table a file kind writes to (clinical tables plus explained gaps); typed loosely:
# the tables share columns (patient_pk, status, row_key, ...) but no declared base
TABLES: dict[str, type[Any]] = {**CLINICAL_TABLES, "missing": MissingLab}

Progress = Callable[[float, str], None]
MAX_UPLOAD_BYTES = 50 * 2**20  # also .streamlit/config.toml server.maxUploadSize (MB)
_CHUNK = 5_000


@dataclass
class ImportReport:
    kind: str | None
    file_name: str
    rows_in_file: int = 0
    rows_new: int = 0
    rows_already_present: int = 0
    errors: list[RowError] = field(default_factory=list)
    written: bool = False
    dry_run: bool = False
    batch_id: int | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        if self.errors:
            return (f"{self.file_name}: rejected, {len(self.errors)} problem(s) in "
                    f"{self.rows_in_file} row(s); nothing was written.")
        verb = "would add" if self.dry_run else "added"
        return (f"{self.file_name}: {self.kind}, {self.rows_in_file} row(s): {verb} "
                f"{self.rows_new}, already present {self.rows_already_present}.")

    def errors_frame(self) -> pd.DataFrame:
        return pd.DataFrame([e.to_json() for e in self.errors],
                            columns=["row", "column", "value", "message"])


def _hash(prefix: str, s: pd.Series) -> pd.Series:
    text = (prefix + "|" + s.astype(object).where(s.notna(), "").astype(str)).tolist()
    sha = hashlib.sha256
    return pd.Series([sha(x.encode()).hexdigest()[:40] for x in text], index=s.index,
                     dtype=object)


def _patient_index(session: Session) -> dict[str, tuple[int, date]]:
    P = Patient
    rows = session.execute(select(col(P.patient_id), col(P.id), col(P.infusion_date))).all()
    out: dict[str, tuple[int, date]] = {}
    for pid, pk, inf in rows:
        assert pk is not None  # a stored row's primary key
        out[pid] = (pk, inf)
    return out


def _records(frame: pd.DataFrame) -> list[dict]:
    """Frame -> list of dicts with Python datetimes and None for missing values."""
    columns: list[list] = []
    for name in frame.columns:
        s = frame[name]
        missing = s.isna().to_numpy()
        if isinstance(s.dtype, pd.DatetimeTZDtype):
            values = list(s.dt.to_pydatetime())
        elif s.dtype == object:
            values = s.tolist()
        else:
            values = s.astype(object).tolist()
        values = [None if m else (v.item() if isinstance(v, np.generic) else v)
                  for v, m in zip(values, missing, strict=True)]
        columns.append(values)
    names = list(frame.columns)
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def import_file(
    engine: Engine,
    data: bytes,
    file_name: str = "upload.csv",
    *,
    kind: str | None = None,
    user: str = "system",
    dry_run: bool = False,
    confirm_unusual: bool = False,
    tz: str = "UTC",
    now: datetime | None = None,
    source: str = "csv",
    progress: Progress | None = None,
    role: str | None = None,
) -> ImportReport:
    """Validate and (unless dry_run or any row is bad) write a CSV file of one kind.

    `role` is the signed-in user's role (None = trusted caller such as the CLI): importing
    needs enter_data, an episodes file also document_episode (core.access.permissions)."""
    require(role, "enter_data")
    if kind == "episodes":
        require(role, "document_episode")
    started = time.perf_counter()
    report = ImportReport(kind=kind, file_name=file_name, dry_run=dry_run)
    say = progress or (lambda _f, _m: None)
    if len(data) > MAX_UPLOAD_BYTES:
        report.errors = [RowError(0, "", "", (
            f"The file is {len(data) / 2**20:,.1f} MB; the largest file accepted is "
            f"{MAX_UPLOAD_BYTES / 2**20:,.0f} MB. Split it into smaller files; nothing was "
            "saved."))]
        return report
    say(0.0, "reading file")
    try:
        kind, frame = read_csv_bytes(data, kind)
    except FileRejected as exc:
        report.errors = exc.errors
        return report
    if kind == "episodes":  # detected from the header
        require(role, "document_episode")
    report.kind, report.rows_in_file = kind, len(frame)
    now = now or datetime.now(UTC)
    sha = hashlib.sha256(data).hexdigest()
    try:
        return _import_frame(engine, report, kind, frame, data, sha, started, say,
                             user=user, dry_run=dry_run, confirm_unusual=confirm_unusual,
                             tz=tz, now=now, source=source)
    except StorageFault as exc:  # read-only, disk full, server lost: rolled back
        report.errors = [RowError(0, "", "", str(exc))]
        report.written, report.batch_id, report.rows_new = False, None, 0
        report.seconds = time.perf_counter() - started
        return report


def _import_frame(engine: Engine, report: ImportReport, kind: str, frame: pd.DataFrame,
                  data: bytes, sha: str, started: float, say: Progress, *, user: str,
                  dry_run: bool, confirm_unusual: bool, tz: str, now: datetime,
                  source: str) -> ImportReport:
    file_name = report.file_name
    with write_session(engine, actor=user) as session:
        ctx = Context(tz=tz, now=now, patients=_patient_index(session),
                      confirm_unusual=confirm_unusual,
                      local_codes=CodeMap.load(session).local_codes())
        say(0.1, f"checking {len(frame):,} rows")
        prepared = validate_rows(session, kind, frame, ctx)
        if ctx.errors:
            report.errors = sorted(ctx.errors, key=lambda e: (e.row, e.column))
            session.rollback()
            report.seconds = time.perf_counter() - started
            return report
        new = prepared[~prepared["_present"]]
        report.rows_new = len(new)
        report.rows_already_present = int(prepared["_present"].sum())
        if dry_run or new.empty:
            session.rollback()
            report.seconds = time.perf_counter() - started
            say(1.0, "done")
            return report
        batch = ImportBatch(kind=kind, file_name=file_name[:255], file_sha256=sha,
                            rows_in_file=len(frame), rows_written=len(new),
                            rows_already_present=report.rows_already_present,
                            imported_by=user)
        session.add(batch)
        session.flush()
        write_rows(session, kind, new, batch_id=batch.id, user=user, source=source,
                   progress=say)
        audit.record(session, actor=user, action="import", table_name=kind,
                     record_id=batch.id, after={"file": file_name, "sha256": sha,
                                                "rows_written": len(new),
                                                "rows_already_present":
                                                    report.rows_already_present},
                     reason=f"bulk import of {file_name}")
        report.batch_id = batch.id
    report.written = True
    report.seconds = time.perf_counter() - started
    say(1.0, "done")
    return report


def validate_rows(session: Session, kind: str, frame: pd.DataFrame,
                  ctx: Context) -> pd.DataFrame:
    """Every check of the import on a frame of strings (CSV columns of `kind`), no writes.

    Returns the prepared rows with `_present` (already stored) marked; problems go to
    `ctx.errors`. The entry form, FHIR import and CSV import all pass through here.
    """
    prepared = PREPARE[kind](frame, ctx)
    _check_lengths(kind, prepared, ctx)
    if not ctx.errors:
        _check_existing(session, kind, prepared, ctx)
    return prepared


def _check_lengths(kind: str, prepared: pd.DataFrame, ctx: Context) -> None:
    """Text longer than its column is refused with a sentence (PostgreSQL would otherwise
    fail the whole transaction with 'value too long'; SQLite would store it silently)."""
    model = Patient if kind == "patients" else TABLES[kind]
    for name, column in table_of(model).columns.items():
        limit = getattr(column.type, "length", None)
        if not limit or name not in prepared.columns:
            continue
        cells = prepared[name]
        if not (pd.api.types.is_object_dtype(cells) or pd.api.types.is_string_dtype(cells)):
            continue
        try:
            sizes = cells.str.len().fillna(0)
        except AttributeError:  # not a column of text
            sizes = cells.map(lambda v: len(v) if isinstance(v, str) else 0)
        for idx in sizes[sizes > limit].index:
            if any(e.row == int(idx) + 2 and e.column == name for e in ctx.errors):
                continue  # already refused with the kind's own sentence
            text = str(prepared.at[idx, name])
            ctx.errors.append(RowError(
                int(idx) + 2, name, text[:30] + "…",
                f"The {name.replace('_', ' ')} is too long: {sizes[idx]:,} characters, "
                f"at most {limit:,}. Shorten it; nothing was saved."))


def _check_existing(session: Session, kind: str, prepared: pd.DataFrame, ctx: Context) -> None:
    """Mark rows already stored; a stored row with other values for the same key is an error."""
    if kind == "patients":
        existing = {p.patient_id: p for p in session.execute(
            select(Patient).where(col(Patient.patient_id).in_(list(prepared["patient_id"])))
        ).scalars()}
        present = []
        for idx, row in prepared.iterrows():
            p = existing.get(row["patient_id"])
            if p is None:
                present.append(False)
                continue
            if p.infusion_date != row["infusion_date"] or p.product != row["product"]:
                ctx.errors.append(RowError(
                    int(idx) + 2, "patient_id", row["patient_id"],
                    f"Patient {row['patient_id']} is already registered with infusion date "
                    f"{p.infusion_date} and product {p.product}; this row differs. Correct the "
                    "patient record instead of re-importing."))
            present.append(True)
        prepared["_present"] = present
        return
    model = TABLES[kind]
    prepared["_row_key"] = _hash(kind, prepared["_natural"])
    prepared["_content"] = _hash(kind, prepared["_value_key"])
    keys = list(prepared["_row_key"])
    stored: dict[str, str] = {}
    for i in range(0, len(keys), 900):
        chunk = keys[i:i + 900]
        for rk, ch in session.execute(
            select(model.row_key, model.content_hash).where(model.row_key.in_(chunk))
        ):
            stored[rk] = ch
    present = prepared["_row_key"].isin(stored.keys())
    differs = present & (prepared["_row_key"].map(stored) != prepared["_content"])
    for idx in differs[differs].index:
        ctx.errors.append(RowError(
            int(idx) + 2, "value" if "value" in prepared.columns else "",
            "", "A different value is already stored for this patient, item and time. "
                "To change it, correct the stored value with a reason instead of re-importing."))
    prepared["_present"] = present


# SQLAlchemy's SQLite DATETIME storage format (UTC, no offset), so rows written here read
# back exactly like rows written through SQLAlchemy (tests/core/test_importing.py checks it)
_SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"


def _sqlite_column(s: pd.Series) -> list:
    """One column as SQLite parameters: the conversions SQLAlchemy would make, vectorised."""
    missing = s.isna().to_numpy()
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        values = s.dt.tz_convert("UTC").dt.strftime(_SQLITE_DATETIME).tolist()
    elif s.dtype == bool:
        values = s.astype(int).tolist()
    else:
        values = s.astype(object).tolist()
    out: list[object] = []
    for v, m in zip(values, missing, strict=True):
        if m:
            out.append(None)
        elif isinstance(v, datetime):
            out.append(v.astimezone(UTC).strftime(_SQLITE_DATETIME))
        elif isinstance(v, np.generic):
            out.append(v.item())
        elif isinstance(v, bool):
            out.append(int(v))
        else:
            out.append(v)
    return out


def _sqlite_insert(session: Session, table: str, frame: pd.DataFrame) -> None:
    """executemany on the session's own SQLite connection, inside its write transaction.

    SQLAlchemy's per-parameter processing costs more than SQLite's insert at 100,000 rows.
    """
    names = list(frame.columns)
    rows = list(zip(*(_sqlite_column(frame[c]) for c in names), strict=True))
    sql = (f'INSERT INTO "{table}" ({", ".join(names)}) '
           f'VALUES ({", ".join("?" * len(names))})')
    raw = session.connection().connection.driver_connection
    assert raw is not None  # the session's connection is open
    raw.executemany(sql, rows)


def write_rows(session: Session, kind: str, new: pd.DataFrame, *, batch_id: int | None,
               user: str, source: str, progress: Progress | None = None) -> None:
    """Insert prepared, validated rows (from `validate_rows`, `_present` rows removed)."""
    say = progress or (lambda _f, _m: None)
    cols = [c for c in new.columns if not c.startswith("_")]
    frame = new[cols].copy()
    now = datetime.now(UTC)
    if kind == "patients":
        frame["import_batch_id"] = batch_id
        frame["entered_by"] = user
        frame["entered_at"] = now
        frame["source"] = source
        session.execute(insert(Patient), _records(frame))
        return
    model = TABLES[kind]
    touch(session, frame["patient_pk"].unique())  # bulk rows bypass the ORM's flush
    frame["row_key"] = new["_row_key"]
    frame["content_hash"] = new["_content"]
    frame["import_batch_id"] = batch_id
    frame["source"] = source
    frame["entered_by"] = user
    frame["entered_at"] = now
    frame["status"] = "final"
    total = len(frame)
    sqlite = session.get_bind().dialect.name == "sqlite"
    for start in range(0, total, _CHUNK):
        part = frame.iloc[start:start + _CHUNK]
        if sqlite:
            _sqlite_insert(session, table_of(model).name, part)
        else:
            # a Core executemany on the table: the ORM's per-row bookkeeping costs more
            # than the insert itself at 100,000 rows
            session.execute(table_of(model).insert(), _records(part))
        say(0.3 + 0.7 * min(1.0, (start + len(part)) / total),
            f"writing rows {start + len(part):,} of {total:,}")
    if kind == "events":
        _apply_event_status(session, new)


def _apply_event_status(session: Session, new: pd.DataFrame) -> None:
    """A death event marks the patient deceased; a last follow-up marks them discharged."""
    for kind, status in ((EventKind.LAST_FOLLOWUP, PatientStatus.DISCHARGED),
                         (EventKind.DEATH, PatientStatus.DECEASED)):
        pks = [int(p) for p in new.loc[new["kind"] == kind.value, "patient_pk"].unique()]
        if pks:
            session.execute(update(Patient).where(col(Patient.id).in_(pks)).values(
                status=status.value))
