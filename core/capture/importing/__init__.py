"""CSV import: validate every row, then write all of them in one transaction or none.

`import_file` is the one code path used by `python -m core import`, the import page and the
benchmark. A rejected file leaves the database exactly as it was.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from core.access.permissions import require
from core.capture.codemap import CodeMap
from core.capture.importing.legacy import same_as_legacy
from core.capture.importing.reading import (
    KINDS,
    FileRejected,
    RowError,
    read_csv_bytes,
    template_csv,
)
from core.capture.importing.validate import PREPARE, Context
from core.capture.importing.writing import TABLES, Progress, _hash, insert_records, write_rows
from core.capture.importing.writing import _records as _records  # re-exported (fhir/plan)
from core.store import audit
from core.store.db import table_of
from core.store.faults import StorageFault
from core.store.models import ImportBatch, Patient
from core.store.unit_of_work import write_session

__all__ = ["ImportReport", "RowError", "import_file", "template_csv", "KINDS", "FileRejected",
           "Context", "validate_rows", "write_rows", "insert_records", "TABLES", "Progress"]

MAX_UPLOAD_BYTES = 50 * 2**20  # also .streamlit/config.toml server.maxUploadSize (MB)


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


def _patient_index(session: Session,
                   ids: Collection[str] | None = None) -> dict[str, tuple[int, date]]:
    """study ID -> (primary key, infusion date): every patient, or those of `ids` (a
    message's few)."""
    P = Patient
    query = select(col(P.patient_id), col(P.id), col(P.infusion_date))
    if ids is not None:
        if not ids:
            return {}
        query = query.where(col(P.patient_id).in_(list(ids)))
    rows = session.execute(query).all()
    out: dict[str, tuple[int, date]] = {}
    for pid, pk, inf in rows:
        assert pk is not None  # a stored row's primary key
        out[pid] = (pk, inf)
    return out


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


def _check_lengths(kind: str, prepared: pd.DataFrame, ctx: Context,
                   rows: list[dict[str, Any]] | None = None) -> None:
    """Text longer than its column is refused with a sentence (PostgreSQL would otherwise
    fail the whole transaction with 'value too long'; SQLite would store it silently).
    `rows`: `_records(prepared)`, when the caller has them (read there, not column by
    column)."""
    model = Patient if kind == "patients" else TABLES[kind]
    dtypes = prepared.dtypes
    for name, column in table_of(model).columns.items():
        limit = getattr(column.type, "length", None)
        if not limit or name not in prepared.columns:
            continue
        dtype = dtypes[name]
        if not (pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)):
            continue
        values = [r[name] for r in rows] if rows is not None else prepared[name].tolist()
        # len() of the text cells (a list comprehension: cheaper than .str.len() at any size)
        too_long = [(idx, v) for idx, v in zip(prepared.index, values, strict=True)
                    if isinstance(v, str) and len(v) > limit]
        for idx, text in too_long:
            if any(e.row == int(idx) + 2 and e.column == name for e in ctx.errors):
                continue  # already refused with the kind's own sentence
            ctx.errors.append(RowError(
                int(idx) + 2, name, text[:30] + "…",
                f"The {name.replace('_', ' ')} is too long: {len(text):,} characters, "
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
    differs &= ~same_as_legacy(session, kind, prepared, differs)
    for idx in differs[differs].index:
        ctx.errors.append(RowError(
            int(idx) + 2, "value" if {"value", "value_num"} & set(prepared.columns) else "",
            "", "A different value is already stored for this patient, item and time. "
                "To change it, correct the stored value with a reason instead of re-importing."))
    prepared["_present"] = present
