"""`import_fhir`: one FHIR file, validated whole, then written in one transaction or not at
all (core.store.unit_of_work.write_session: the touched patients' alerts follow in it)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from core.access.permissions import require
from core.capture.codemap import CodeMap
from core.capture.fhir import status
from core.capture.fhir.classify import sort_entries
from core.capture.fhir.options import Options
from core.capture.fhir.patients import COLUMNS as PATIENT_COLUMNS
from core.capture.fhir.patients import PATIENT_PATHS, patient_rows
from core.capture.fhir.plan import Change, KindPlan, ctx_factory, plan_kind
from core.capture.fhir.read import Entry, latest_versions, patient_refs, read_entries
from core.capture.fhir.report import FhirReport
from core.capture.fhir.vasopressors import VASO_KINDS, StoredPlan, plan_stored, write_stored
from core.capture.importing import (
    Context,
    ImportReport,
    RowError,
    _patient_index,  # the import's own patient lookup
    validate_rows,
    write_rows,
)
from core.store import audit
from core.store.faults import StorageFault
from core.store.models import ImportBatch, Observation
from core.store.unit_of_work import write_session

Progress = Callable[[float, str], None]
KINDS = ("labs", "observations", "treatments")
OLDER = "an older version of a resource later in the same file"


def import_fhir(engine: Engine, data: bytes, file_name: str = "upload.json", *,
                user: str = "system", dry_run: bool = False, tz: str = "UTC",
                now: datetime | None = None, confirm_unusual: bool = False,
                progress: Progress | None = None, role: str | None = None,
                subjects: Mapping[str, str] | None = None) -> ImportReport:
    """Validate and (unless dry_run or any problem) write what a FHIR file holds (see
    core.capture.fhir). Returns a FhirReport (an ImportReport with `skipped`, `superseded` and
    `retracted`). `role` (None = trusted caller) needs enter_data. Like `import_file`, a
    storage fault (read-only, full, server lost) comes back as the report's one error.
    `subjects`: more subject references -> study ID / MRN, for resources whose Patient is
    not in the file (e.g. {"Patient/123": "SYN-001"} from a FHIR server); the file's own
    Patients win."""
    require(role, "enter_data")
    started = time.perf_counter()
    try:
        return _import_fhir(engine, data, file_name, user=user, dry_run=dry_run, tz=tz,
                            now=now, confirm_unusual=confirm_unusual, progress=progress,
                            subjects=subjects)
    except StorageFault as exc:  # read-only, disk full, server lost: rolled back
        report = FhirReport(kind="fhir", file_name=file_name, dry_run=dry_run)
        report.errors = [RowError(0, "", "", str(exc))]
        report.seconds = time.perf_counter() - started
        return report


def _import_fhir(engine: Engine, data: bytes, file_name: str, *, user: str, dry_run: bool,
                 tz: str, now: datetime | None, confirm_unusual: bool,
                 progress: Progress | None,
                 subjects: Mapping[str, str] | None = None) -> FhirReport:
    started = time.perf_counter()
    say = progress or (lambda _f, _m: None)
    report = FhirReport(kind="fhir", file_name=file_name, dry_run=dry_run)
    errors: list[RowError] = []
    say(0.0, "reading file")
    entries = read_entries(data, errors)
    report.rows_in_file = len(entries)
    entries, older = latest_versions(entries)
    if older:
        report.skip(OLDER, len(older))
    now = now or datetime.now(UTC)
    with write_session(engine, actor=user) as session:
        options = Options.load(session)
        known = _patient_index(session)
        refs = {**(subjects or {}), **patient_refs(entries)}
        found = sort_entries(entries, codes=CodeMap.load(session), options=options,
                             refs=refs, tz=tz, errors=errors, report=report)
        say(0.1, f"checking {len(entries):,} resources")
        p_rows, p_entries, registered = patient_rows(found.patients, known, found.products,
                                                     options, tz, errors)
        ctx_p = Context(tz=tz, now=now, patients=known, confirm_unusual=confirm_unusual)
        p_frame = pd.DataFrame(p_rows, columns=PATIENT_COLUMNS, dtype=str)
        prepared_p = validate_rows(session, "patients", p_frame, ctx_p) if p_rows else None
        errors += _patient_errors(ctx_p.errors, p_entries)
        # new patients count as known (placeholder keys) while their rows are checked
        pending = {r["patient_id"]: (-1 - i, pd.Timestamp(r["infusion_date"]).date())
                   for i, r in enumerate(p_rows) if r["patient_id"] not in known
                   and not pd.isna(pd.to_datetime(r["infusion_date"], errors="coerce"))}
        make_ctx = ctx_factory(tz, now, {**pending, **known}, confirm_unusual)
        # the vasopressor counts: this file's administrations with those stored before
        vaso = plan_stored(session, found.vaso, [e for e in found.retract
                                                 if e.rtype == "MedicationAdministration"],
                           known, now, file_name)
        mapped = found.mapped + vaso.derived
        plans = [plan_kind(session, kind, [m for m in mapped if m.kind == kind], make_ctx,
                           errors, file_name) for kind in KINDS]
        retractions, already_retracted = _retractions(session, found.retract, report,
                                                      vaso.retracted_ids)
        retractions = _reconcile(plans, retractions + vaso.vanished, vaso, known, file_name)
        _revive(session, plans, vaso, known, file_name)
        if errors:
            report.errors = sorted(errors, key=lambda e: (e.row, e.column))
            return _rolled_back(session, report, started)
        new_p = (prepared_p[~prepared_p["_present"]] if prepared_p is not None
                 else pd.DataFrame())
        report.superseded = sum(len(p.changes) for p in plans)
        report.retracted = len(retractions)
        report.rows_new = len(new_p) + sum(p.new_rows for p in plans) + len(retractions)
        report.rows_already_present = (registered + len(p_rows) - len(new_p)
                                       + sum(p.present for p in plans) + already_retracted)
        if dry_run or (report.rows_new == 0 and not vaso.writes):
            say(1.0, "done")
            return _rolled_back(session, report, started)
        sha = hashlib.sha256(data).hexdigest()
        batch = ImportBatch(kind="fhir", file_name=file_name[:255], file_sha256=sha,
                            rows_in_file=report.rows_in_file, rows_written=report.rows_new,
                            rows_already_present=report.rows_already_present,
                            imported_by=user)
        session.add(batch)
        session.flush()
        if len(new_p):
            write_rows(session, "patients", new_p, batch_id=batch.id, user=user, source="fhir")
        _write(session, plans, retractions, vaso, batch_id=batch.id, user=user, say=say)
        audit.record(session, actor=user, action="import", table_name="fhir",
                     record_id=batch.id, after={"file": file_name, "sha256": sha,
                                                "rows_written": report.rows_new,
                                                "superseded": report.superseded,
                                                "retracted": report.retracted,
                                                "skipped": dict(report.skipped),
                                                "vasopressor_administrations": {
                                                    "new": len(vaso.inserts),
                                                    "changed": len(vaso.changes),
                                                    "retracted": len(vaso.retracts)}},
                     reason=f"FHIR import of {file_name}")
        report.batch_id = batch.id
    report.written = True
    report.seconds = time.perf_counter() - started
    say(1.0, "done")
    return report


def _rolled_back(session: Session, report: FhirReport, started: float) -> FhirReport:
    session.rollback()
    report.seconds = time.perf_counter() - started
    return report


def _patient_errors(errors: list[RowError], entries: list[Entry]) -> list[RowError]:
    out = []
    for e in errors:
        i = e.row - 2
        row = entries[i].row if 0 <= i < len(entries) else 0
        out.append(RowError(row, PATIENT_PATHS.get(e.column, e.column), e.value, e.message))
    return out


def _retractions(session: Session, entries: list[Entry], report: FhirReport,
                 stored_ids: set[str]) -> tuple[list[tuple[str, Any, str]], int]:
    """(kind, row, reason) to mark entered_in_error, and how many were retracted already
    (`stored_ids`: vasopressor administrations whose stored row this file retracts)."""
    out: dict[tuple[str, int], tuple[str, Any, str]] = {}
    already = 0
    for e in entries:
        rows = status.retract_targets(session, e.rtype, e.rid) if e.rid else []
        final = [(kind, row) for kind, row in rows if row.status == status.FINAL]
        for kind, row in final:
            out.setdefault((kind, row.id), (kind, row, status.retract_reason(e.label)))
        if rows and not final:
            already += 1
        elif not rows and e.rid not in stored_ids:
            report.skip(f"{e.rtype}: entered-in-error, never imported")
    return list(out.values()), already


def _reconcile(plans: list[KindPlan], retractions: list[tuple[str, Any, str]],
               vaso: StoredPlan, known: Mapping[str, tuple[int, Any]],
               file_name: str) -> list[tuple[str, Any, str]]:
    """A derived vasopressor count that names a retracted administration but is still
    defined at its time (another drug starts or stops then) is not retracted: the file
    recomputed it, so it supersedes it (already planned when the count changed; re-noted
    here when only the drugs it names did). Each row is retracted once."""
    obs = next(p for p in plans if p.kind == "observations")
    superseded = {c.old.id for c in obs.changes}
    given = {(known[m.values["patient_id"]][0], m.values["kind"], m.values["observed_at"]): m
             for m in vaso.derived if m.values["patient_id"] in known}
    out: list[tuple[str, Any, str]] = []
    seen: set[tuple[str, int]] = set()
    for kind, row, reason in retractions:
        if (kind, row.id) in seen:
            continue
        seen.add((kind, row.id))
        if kind == "observations" and row.kind in VASO_KINDS:
            if row.id in superseded:
                continue
            at = row.observed_at
            at = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC)
            m = given.get((row.patient_pk, row.kind, at.isoformat()))
            if m is not None:
                fields = {"kind": row.kind, "observed_at": at, "value_num": row.value_num,
                          "value_text": row.value_text, "unit": row.unit,
                          "note": m.values["note"]}
                obs.changes.append(Change(m, row, fields, (
                    f"recomputed from the EHR's administration record in {file_name} "
                    f"({reason})")))
                obs.present -= 1  # the plan had found it unchanged
                continue
        out.append((kind, row, reason))
    return out


def _revive(session: Session, plans: list[KindPlan], vaso: StoredPlan,
            known: Mapping[str, tuple[int, Any]], file_name: str) -> None:
    """A count recomputed at a time whose stored row was retracted (its administration
    moved away, then back) and found "already present" by value: a new version of it."""
    obs = next(p for p in plans if p.kind == "observations")
    planned = {id(c.record) for c in obs.changes} | {
        id(r) for _frame, records in obs.inserts for r in records}
    wanted = {(known[m.values["patient_id"]][0], m.values["kind"], m.values["observed_at"]): m
              for m in vaso.derived if id(m) not in planned and m.values["patient_id"] in known}
    if not wanted:
        return
    Ob = Observation
    latest: dict[tuple[int, str, str], Any] = {}
    for row in session.execute(select(Ob).where(
            col(Ob.patient_pk).in_(sorted({k[0] for k in wanted})),
            col(Ob.kind).in_(VASO_KINDS)).order_by(col(Ob.id))).scalars():
        at = row.observed_at
        key = (row.patient_pk, row.kind,
               (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC).isoformat())
        kept = latest.get(key)
        if key in wanted and (kept is None or kept.status != status.FINAL):
            latest[key] = row  # the final row, else the newest
    for key, row in latest.items():
        if row.status == status.FINAL:
            continue
        m = wanted[key]
        value = m.values["value"]
        number = {"yes": 1.0, "no": 0.0}.get(value)
        fields = {"kind": row.kind, "observed_at": row.observed_at,
                  "value_num": float(value) if number is None else number,
                  "value_text": None, "unit": row.unit, "note": m.values["note"]}
        obs.changes.append(Change(m, row, fields, (
            f"recomputed from the EHR's administration record in {file_name} "
            f"(FHIR {m.entry.label})")))
        obs.present -= 1


def _write(session: Session, plans: list[KindPlan], retractions: list[tuple[str, Any, str]],
           vaso: StoredPlan, *, batch_id: int | None, user: str, say: Progress) -> None:
    pks = _patient_index(session)
    write_stored(session, vaso, pks, batch_id=batch_id, user=user)
    for plan in plans:
        for frame, records in plan.inserts:
            frame = frame.copy()
            frame["patient_pk"] = [pks[r.values["patient_id"]][0] for r in records]
            write_rows(session, plan.kind, frame, batch_id=batch_id, user=user, source="fhir",
                       progress=say)
        for change in plan.changes:
            pid = change.record.values["patient_id"]
            fields = {k: v for k, v in change.fields.items() if k != "source_record_id"}
            fields["patient_pk"] = pks[pid][0]
            old = status.load(session, plan.kind, change.old)
            status.supersede(session, plan.kind, old, fields, reason=change.reason,
                             user=user, batch_id=batch_id, source_id=change.record.source_id,
                             patient_id=pid)
    patient_of = {pk: pid for pid, (pk, _inf) in pks.items()}
    for kind, row, reason in retractions:
        if row.status != status.FINAL:
            continue  # a recomputed vasopressor count superseded it in this same file
        status.retract(session, kind, row, reason=reason, user=user,
                       patient_id=patient_of.get(row.patient_pk, ""))
