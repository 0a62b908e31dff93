"""FHIR R4 import: a Bundle (JSON) or ndjson of Patient and Observation resources.

Resources are mapped onto the CSV kinds (patients, labs) and pass through the import's own
validation and write path (`core.importing.validate_rows` / `write_rows`), so units,
plausibility and idempotency rules are identical. Row numbers are the entry index + 1 in a
Bundle, the line number in ndjson; columns are FHIR paths.

Mapping:
- Patient.identifier[0].value -> patient_id; the infusion date (day 0) comes from an
  extension whose url ends in `infusion-date` (valueDate); the product from one ending in
  `car-t-product` or `product` (valueString). A Patient without an infusion date is refused
  unless the patient is already registered.
- Observation.code.coding[system=loinc] -> analyte (core.units.LOINC_TO_ANALYTE);
  valueQuantity value/unit (UCUM, same conversion table) with comparator < or > as the
  qualifier; referenceRange low/high; effectiveDateTime; subject -> the Patient.
- Idempotent: source_record_id is the resource id; a re-import adds nothing.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Engine

from core import audit
from core.faults import StorageFault
from core.importing import (
    Context,
    ImportReport,
    RowError,
    _patient_index,
    validate_rows,
    write_rows,
)
from core.models import ImportBatch, LabResult
from core.permissions import require
from core.unit_of_work import write_session
from core.units import ANALYTES, LOINC_TO_ANALYTE

LOINC_SYSTEM = "http://loinc.org"
Progress = Callable[[float, str], None]

PATIENT_PATHS = {"patient_id": "Patient.identifier", "infusion_date":
                 "Patient.extension(infusion-date)", "product": "Patient.extension(product)",
                 "birth_year": "Patient.birthDate", "sex": "Patient.gender"}
LAB_PATHS = {"patient_id": "Observation.subject", "analyte": "Observation.code.coding",
             "loinc": "Observation.code.coding", "value": "Observation.valueQuantity.value",
             "unit": "Observation.valueQuantity.unit",
             "qualifier": "Observation.valueQuantity.comparator",
             "collected_at": "Observation.effectiveDateTime",
             "ref_low": "Observation.referenceRange.low",
             "ref_high": "Observation.referenceRange.high"}


def _resources(data: bytes, errors: list[RowError]) -> list[tuple[int, dict]]:
    """(row, resource) pairs from a Bundle or ndjson; unreadable parts become errors."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        errors.append(RowError(0, "", "", "The file is not UTF-8 text; save it as UTF-8 JSON."))
        return []
    if not text.strip():
        errors.append(RowError(0, "", "", "The file is empty: there is nothing to import."))
        return []
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        lines = [ln for ln in text.splitlines()]
        if len([ln for ln in lines if ln.strip()]) <= 1:
            errors.append(RowError(0, "", "", f"The file is not valid JSON ({exc.msg} at line "
                                              f"{exc.lineno}, column {exc.colno})."))
            return []
        out = []  # ndjson: one resource per line
        for n, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                res = json.loads(line)
            except json.JSONDecodeError as e:
                errors.append(RowError(n, "", line[:60], f"Line {n} is not valid JSON "
                                                         f"({e.msg})."))
                continue
            out.append((n, res))
        return out
    if isinstance(doc, dict) and doc.get("resourceType") == "Bundle":
        entries = doc.get("entry") or []
        if not entries:
            errors.append(RowError(0, "Bundle.entry", "", "The Bundle has no entries."))
        return [(i + 1, (e or {}).get("resource") or {}) for i, e in enumerate(entries)]
    if isinstance(doc, dict) and "resourceType" in doc:
        return [(1, doc)]
    errors.append(RowError(0, "resourceType", "", "Expected a FHIR Bundle, a resource or "
                                                  "ndjson (one resource per line)."))
    return []


def _ext(res: dict, *suffixes: str) -> Any:
    for ext in res.get("extension") or []:
        url = str(ext.get("url", ""))
        if any(url.endswith(s) for s in suffixes):
            for key in ("valueDate", "valueDateTime", "valueString", "valueCode"):
                if key in ext:
                    return ext[key]
    return None


def _identifier(res: dict) -> str | None:
    for ident in res.get("identifier") or []:
        if ident.get("value"):
            return str(ident["value"])
    return None


def import_fhir(engine: Engine, data: bytes, file_name: str = "upload.json", *,
                user: str = "system", dry_run: bool = False, tz: str = "UTC",
                now: datetime | None = None, confirm_unusual: bool = False,
                progress: Progress | None = None, role: str | None = None) -> ImportReport:
    """Validate and (unless dry_run or any problem) write Patients and Observations.
    `role` (None = trusted caller) needs enter_data. Like `import_file`, a storage fault
    (read-only, full, server lost) comes back as the report's one error: nothing written."""
    require(role, "enter_data")
    started = time.perf_counter()
    try:
        return _import_fhir(engine, data, file_name, user=user, dry_run=dry_run, tz=tz,
                            now=now, confirm_unusual=confirm_unusual, progress=progress)
    except StorageFault as exc:  # read-only, disk full, server lost: rolled back
        message = str(exc)
        report = ImportReport(kind="fhir", file_name=file_name, dry_run=dry_run)
        report.errors = [RowError(0, "", "", message)]
        report.seconds = time.perf_counter() - started
        return report


def _import_fhir(engine: Engine, data: bytes, file_name: str, *, user: str, dry_run: bool,
                 tz: str, now: datetime | None, confirm_unusual: bool,
                 progress: Progress | None) -> ImportReport:
    started = time.perf_counter()
    say = progress or (lambda _f, _m: None)
    report = ImportReport(kind="fhir", file_name=file_name, dry_run=dry_run)
    errors: list[RowError] = []
    say(0.0, "reading file")
    resources = _resources(data, errors)
    report.rows_in_file = len(resources)
    # patient references: "Patient/<id>" or a Bundle fullUrl -> identifier value
    refs: dict[str, str] = {}
    patients: list[tuple[int, dict]] = []
    observations: list[tuple[int, dict]] = []
    for row, res in resources:
        rtype = res.get("resourceType") if isinstance(res, dict) else None
        if rtype == "Patient":
            pid = _identifier(res)
            if pid and res.get("id"):
                refs[f"Patient/{res['id']}"] = pid
            patients.append((row, res))
        elif rtype == "Observation":
            observations.append((row, res))
        else:
            errors.append(RowError(row, "resourceType", str(rtype or ""),
                                   f"Only Patient and Observation resources are imported, not "
                                   f"{rtype or 'a resource without a resourceType'}."))
    now = now or datetime.now(UTC)
    with write_session(engine, actor=user) as session:
        known = _patient_index(session)
        p_rows, p_idx = [], []
        for row, res in patients:
            pid = _identifier(res)
            if not pid:
                errors.append(RowError(row, "Patient.identifier", "", "The Patient has no "
                                       "identifier value (the study ID or MRN)."))
                continue
            infusion = _ext(res, "infusion-date", "infusionDate")
            if not infusion:
                if pid in known:
                    continue  # registered already: nothing to add
                errors.append(RowError(
                    row, "Patient.extension(infusion-date)", pid,
                    f"Patient {pid} has no infusion date (day 0). Add the infusion-date "
                    "extension, or register the patient first with a patients CSV."))
                continue
            birth = str(res.get("birthDate") or "")[:4]
            p_rows.append({"patient_id": pid, "infusion_date": str(infusion)[:10],
                           "product": str(_ext(res, "car-t-product", "product") or "not stated"),
                           "sex": str(res.get("gender") or ""), "birth_year": birth})
            p_idx.append(row)
        l_rows, l_idx, l_ids = [], [], []
        for row, res in observations:
            lab = _observation(row, res, refs, errors)
            if lab is not None:
                l_rows.append(lab)
                l_idx.append(row)
                l_ids.append(str(res.get("id") or ""))
        say(0.1, f"checking {len(resources):,} resources")
        ctx_p = Context(tz=tz, now=now, patients=known, confirm_unusual=confirm_unusual)
        p_frame = pd.DataFrame(p_rows, columns=["patient_id", "infusion_date", "product", "sex",
                                                "birth_year"], dtype=str)
        prepared_p = validate_rows(session, "patients", p_frame, ctx_p) if p_rows else None
        errors += _renumber(ctx_p.errors, p_idx, PATIENT_PATHS)
        # new patients count as known (placeholder keys) while their labs are checked
        pending = {r["patient_id"]: (-1 - i, pd.Timestamp(r["infusion_date"]).date())
                   for i, r in enumerate(p_rows) if r["patient_id"] not in known
                   and not pd.isna(pd.to_datetime(r["infusion_date"], errors="coerce"))}
        ctx_l = Context(tz=tz, now=now, patients={**pending, **known},
                        confirm_unusual=confirm_unusual)
        l_frame = pd.DataFrame(l_rows, columns=["patient_id", "collected_at", "analyte",
                                                "value", "unit", "qualifier", "ref_low",
                                                "ref_high", "loinc"], dtype=str)
        prepared_l = None
        if l_rows:
            prepared_l = validate_rows(session, "labs", l_frame, ctx_l)
            if not ctx_l.errors:
                _present_by_resource_id(session, prepared_l, l_ids)
        errors += _renumber(ctx_l.errors, l_idx, LAB_PATHS)
        if errors:
            report.errors = sorted(errors, key=lambda e: (e.row, e.column))
            session.rollback()
            report.seconds = time.perf_counter() - started
            return report
        new_p = prepared_p[~prepared_p["_present"]] if prepared_p is not None else None
        new_l = prepared_l[~prepared_l["_present"]] if prepared_l is not None else None
        report.rows_new = (0 if new_p is None else len(new_p)) + (0 if new_l is None
                                                                  else len(new_l))
        # every other resource is stored already (or a registered patient with nothing new)
        report.rows_already_present = len(resources) - report.rows_new
        if dry_run or report.rows_new == 0:
            session.rollback()
            report.seconds = time.perf_counter() - started
            say(1.0, "done")
            return report
        sha = hashlib.sha256(data).hexdigest()
        batch = ImportBatch(kind="fhir", file_name=file_name[:255], file_sha256=sha,
                            rows_in_file=len(resources), rows_written=report.rows_new,
                            rows_already_present=report.rows_already_present,
                            imported_by=user)
        session.add(batch)
        session.flush()
        if new_p is not None and len(new_p):
            write_rows(session, "patients", new_p, batch_id=batch.id, user=user, source="fhir")
        if new_l is not None and len(new_l):
            pks = _patient_index(session)
            new_l = new_l.copy()
            new_l["patient_pk"] = l_frame.loc[new_l.index, "patient_id"].map(
                lambda p: pks[p][0])
            new_l["source_record_id"] = [l_ids[i] or None for i in new_l.index]
            write_rows(session, "labs", new_l, batch_id=batch.id, user=user, source="fhir",
                       progress=say)
        audit.record(session, actor=user, action="import", table_name="fhir",
                     record_id=batch.id, after={"file": file_name, "sha256": sha,
                                                "rows_written": report.rows_new},
                     reason=f"FHIR import of {file_name}")
        report.batch_id = batch.id
    report.written = True
    report.seconds = time.perf_counter() - started
    say(1.0, "done")
    return report


def _present_by_resource_id(session: Any, prepared: pd.DataFrame, ids: list[str]) -> None:
    """A resource id already imported from FHIR counts as present (idempotent by id)."""
    wanted = [i for i in ids if i]
    if not wanted:
        return
    stored = set(session.execute(select(LabResult.source_record_id).where(
        LabResult.source == "fhir",
        LabResult.source_record_id.in_(wanted))).scalars())  # type: ignore[union-attr]
    if stored:
        prepared["_present"] = prepared["_present"] | pd.Series(
            [i in stored for i in ids], index=prepared.index)


def _renumber(errors: list[RowError], rows: list[int], paths: dict[str, str]) -> list[RowError]:
    """Frame-row errors (row = index + 2) -> resource rows and FHIR paths."""
    out = []
    for e in errors:
        i = e.row - 2
        row = rows[i] if 0 <= i < len(rows) else 0
        column = paths.get(e.column.split(" or ")[0], e.column)
        out.append(RowError(row, column, e.value, e.message))
    return out


_MONITORED = ", ".join(a.name for a in ANALYTES.values())


def _observation(row: int, res: dict, refs: dict[str, str],
                 errors: list[RowError]) -> dict[str, str] | None:
    """An Observation as a labs CSV row, or None with errors recorded."""
    before = len(errors)
    codings = (res.get("code") or {}).get("coding") or []
    loincs = [str(c.get("code")) for c in codings
              if c.get("system") in (LOINC_SYSTEM, None) and c.get("code")]
    analyte_loinc = next((c for c in loincs if c in LOINC_TO_ANALYTE), None)
    if analyte_loinc is None:
        shown = ", ".join(loincs) or "none"
        errors.append(RowError(row, "Observation.code.coding", shown,
                               f"No LOINC code we monitor (got {shown}); the monitored "
                               f"analytes are {_MONITORED}."))
    subject = res.get("subject") or {}
    pid = None
    if isinstance(subject.get("identifier"), dict):
        pid = subject["identifier"].get("value")
    ref = str(subject.get("reference") or "")
    if not pid and ref:
        pid = refs.get(ref) or (ref.split("/", 1)[1] if ref.startswith("Patient/") else None)
    if not pid:
        errors.append(RowError(row, "Observation.subject", ref,
                               "The Observation has no subject Patient reference."))
    qty = res.get("valueQuantity")
    value = unit = comparator = ""
    if not isinstance(qty, dict) or qty.get("value") is None:
        errors.append(RowError(row, "Observation.valueQuantity.value", "",
                               "The Observation has no valueQuantity value (a number with "
                               "its unit)."))
    else:
        value = str(qty.get("value"))
        unit = str(qty.get("unit") or qty.get("code") or "")
        comparator = str(qty.get("comparator") or "")
        if not unit:
            errors.append(RowError(row, "Observation.valueQuantity.unit", value,
                                   "The valueQuantity has no unit."))
        if comparator and comparator not in ("<", ">"):
            errors.append(RowError(row, "Observation.valueQuantity.comparator", comparator,
                                   "Only the comparators < and > are accepted."))
    when = res.get("effectiveDateTime") or (res.get("effectivePeriod") or {}).get("start")
    if not when:
        errors.append(RowError(row, "Observation.effectiveDateTime", "",
                               "The Observation has no effectiveDateTime (when the sample "
                               "was taken)."))
    if res.get("status") in ("entered-in-error", "cancelled"):
        errors.append(RowError(row, "Observation.status", str(res.get("status")),
                               "This Observation is marked entered-in-error or cancelled; "
                               "leave it out of the file."))
    if len(errors) > before:
        return None
    ref_range = (res.get("referenceRange") or [{}])[0] or {}
    return {"patient_id": str(pid), "collected_at": str(when),
            "analyte": LOINC_TO_ANALYTE[analyte_loinc], "value": value, "unit": unit,  # type: ignore[index]
            "qualifier": comparator,
            "ref_low": str((ref_range.get("low") or {}).get("value", "")),
            "ref_high": str((ref_range.get("high") or {}).get("value", "")),
            "loinc": analyte_loinc or ""}
