"""A checked HL7 message (core.capture.hl7.check) applied to the clinical tables, inside the
caller's transaction.

New rows go through the import's write path (`insert_records`: `core.capture.importing`'s for
a few rows, without pandas). OBX-11: F/P insert (P marked preliminary); a final after a
preliminary finalises it (same value) or supersedes it; C supersedes the earlier value of the
same patient, item and time with a reason (or, for a value never received, stores it new
and says so); D/W mark the earlier value entered in error.

What happens to the earlier stored value is in `core.capture.hl7.stored`; an ADT message is
applied by `core.capture.hl7.adt`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from core.capture.codemap import Target
from core.capture.hl7.adt import apply_adt
from core.capture.hl7.check import Applied, Checked
from core.capture.hl7.parse import (
    CORRECTION,
    DELETE,
    FINAL,
    PRELIMINARY,
    Parsed,
    Problem,
    Result,
)
from core.capture.hl7.stored import SOURCE, finalise, retract, same_value, stored_rows, supersede
from core.capture.importing.writing import insert_records
from core.store.models import CodeTarget, LabResult, Observation

DUPLICATE_KEY = "205"  # HL7 table 0357


def write(session: Session, checked: Checked, actor: str) -> Applied:
    """Apply a checked message in the caller's transaction; raise Problem (the caller rolls
    back) for a result that conflicts with the value stored."""
    parsed, out = checked.parsed, checked.out
    if parsed.adt is not None:
        assert checked.adt_patient is not None
        apply_adt(session, parsed, parsed.adt, checked.adt_patient, actor, out)
        return out
    for kind, rows in checked.rows.items():
        _write(session, parsed, kind, checked.kinds[kind], rows, checked.stored.get(kind),
               actor, out)
    return out


def _write(session: Session, parsed: Parsed, kind: CodeTarget,
           items: list[tuple[Result, Target]], rows: list[dict[str, Any]],
           stored: tuple[list[Any], set[str]] | None, actor: str, out: Applied) -> None:
    labs = kind is CodeTarget.ANALYTE
    name = "labs" if labs else "observations"
    model: Any = LabResult if labs else Observation
    current_rows, taken = stored or (stored_rows(session, model, labs, rows), None)
    control = parsed.header.control_id
    new: list[tuple[dict[str, Any], Result]] = []
    for row, (result, _t), current in zip(rows, items, current_rows, strict=True):
        verb = {CORRECTION: "corrected", DELETE: "retracted"}.get(result.status, "")
        tag = f"HL7 OBX-11 {result.status_code}, message {control}"
        if result.status == DELETE:
            if current is None:
                out.notes.append(f"OBX #{result.seq} {result.status_code}: no stored value "
                                 "to retract")
                continue
            retract(session, current, name, f"{verb} by the laboratory ({tag})", actor)
            out.rows_written += 1
            continue
        if current is None:
            if result.status == CORRECTION:
                out.notes.append(f"OBX #{result.seq}: a correction for a value never received; "
                                 "stored as a new value")
            new.append((row, result))
            continue
        same = same_value(current, row, labs)
        prelim = labs and bool(current.preliminary)
        if same:
            if prelim and result.status in (FINAL, CORRECTION):
                finalise(session, current, f"made final by the laboratory ({tag})", actor)
                out.rows_written += 1
            continue
        if result.status == CORRECTION:
            why = f"corrected by the laboratory ({tag})"
        elif prelim:
            why = (f"final result replaces the preliminary ({tag})" if result.status == FINAL
                   else f"updated preliminary result ({tag})")
        elif result.status == PRELIMINARY:
            raise Problem("OBX", result.seq, 11, DUPLICATE_KEY,
                          f"{result.code_text}: a final value is already stored for this "
                          "patient and time; a preliminary cannot replace it")
        else:
            raise Problem("OBX", result.seq, 11, DUPLICATE_KEY,
                          f"{result.code_text}: a different value is already stored for "
                          "this patient and time; send the change as a correction (OBX-11 C)")
        supersede(session, model, name, current, row, result, control, why, actor)
        out.rows_written += 1
    if new:
        if taken is None:
            taken = set(session.execute(select(model.row_key).where(
                model.row_key.in_([row["_row_key"] for row, _r in new]))).scalars())
        records = []
        for row, result in new:
            # a key held by a retracted or superseded row: the new row goes in without one
            free = row["_row_key"] not in taken
            record = {**row, "_row_key": row["_row_key"] if free else None,
                      "_content": row["_content"] if free else None,
                      "source_record_id": f"{control}/OBX{result.seq}"[:200]}
            if labs:
                record["preliminary"] = result.status == PRELIMINARY
            records.append(record)
        insert_records(session, name, records, batch_id=None, user=actor, source=SOURCE)
        out.rows_written += len(records)
