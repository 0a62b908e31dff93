"""The value stored earlier for an OBX's patient, item and time, and what a later result does
to it (core.capture.hl7.results decides which): find it (`stored_rows`, one query per message),
compare it (`same_value`), supersede it with the new value, mark it entered in error (D/W) or make
a preliminary lab value final. Each change is audited with who and why.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import case, select
from sqlmodel import Session

from core.capture.corrections import retract_row, supersede_row
from core.capture.hl7.parse import PRELIMINARY, Result
from core.store import audit
from core.store.models import LabResult, Patient, RecordStatus

log = logging.getLogger(__name__)

SOURCE = "hl7"  # the source of every row HL7 writes (new, superseding)
_KEYS_PER_QUERY = 100  # (patient, item, time) triples per query


def stored_rows(session: Session, model: Any, labs: bool, rows: list[dict[str, Any]]) -> list[Any]:
    """For each row, the current (final) stored row of the same patient, item and time, if
    any (the newest): one query for a message's results, not one per OBX.

    The times are matched by the database (as a single row's `time == ?` would be: its
    DateTime storage decides), reported back as the position of the time in the query; the
    patient key and the item are compared here."""
    item = model.analyte if labs else model.kind
    time_col = model.collected_at if labs else model.observed_at
    keys = [(int(r["patient_pk"]), r["analyte" if labs else "kind"],
             r["collected_at" if labs else "observed_at"].astimezone(UTC)) for r in rows]
    unique = list(dict.fromkeys(keys))
    found: dict[tuple[int, str, datetime], Any] = {}
    for start in range(0, len(unique), _KEYS_PER_QUERY):
        chunk = set(unique[start:start + _KEYS_PER_QUERY])
        times = list(dict.fromkeys(when for _pk, _item, when in chunk))
        which = case(*((time_col == when, n) for n, when in enumerate(times)))
        query = select(model, which).where(
            model.status == RecordStatus.FINAL.value,
            model.patient_pk.in_(sorted({pk for pk, _i, _w in chunk})),
            item.in_(sorted({i for _pk, i, _w in chunk})),
            time_col.in_(times),
        ).order_by(model.id.desc())
        for stored, n in session.execute(query):
            key = (stored.patient_pk, getattr(stored, "analyte" if labs else "kind"), times[n])
            if key in chunk:
                found.setdefault(key, stored)
    return [found.get(key) for key in keys]


def same_value(current: Any, row: dict[str, Any], labs: bool) -> bool:
    if labs:
        q = row["qualifier"] if isinstance(row["qualifier"], str) else ""
        return abs(float(current.value) - float(row["value"])) < 1e-9 and (
            (current.qualifier or "") == q)
    num = row["value_num"]
    if num is None:
        return current.value_num is None and current.value_text == row["value_text"]
    return current.value_num is not None and abs(current.value_num - float(num)) < 1e-9


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """A prepared row's table fields (its values are plain already: `_records`)."""
    return {k: v for k, v in row.items() if not k.startswith("_")}


def _pid(session: Session, patient_pk: int) -> str:
    patient = session.get(Patient, patient_pk)
    assert patient is not None, patient_pk  # a clinical row's patient_pk is a foreign key
    return patient.patient_id


def supersede(session: Session, model: Any, name: str, old: Any, row: dict[str, Any],
               result: Result, control: str, why: str, actor: str) -> None:
    fields = _plain(row)
    if name == "labs":
        fields["preliminary"] = result.status == PRELIMINARY
    new = supersede_row(session, model, name, old, fields, source=SOURCE,
                        source_record_id=f"{control}/OBX{result.seq}"[:200], actor=actor,
                        reason=why, patient_id=_pid(session, old.patient_pk))
    log.info("HL7 %s: %s row %s superseded by %s (%s)", control, name, old.id, new.id, why)


def retract(session: Session, row: Any, name: str, why: str, actor: str) -> None:
    retract_row(session, name, row, actor=actor, reason=why,
                patient_id=_pid(session, row.patient_pk))
    log.info("HL7: %s row %s marked entered in error (%s)", name, row.id, why)


def finalise(session: Session, row: LabResult, why: str, actor: str) -> None:
    before = audit.snapshot(row)
    row.preliminary = False
    session.add(row)
    session.flush()
    audit.record(session, actor=actor, action="finalise", table_name="labs", record_id=row.id,
                 patient_id=_pid(session, row.patient_pk), before=before,
                 after=audit.snapshot(row), reason=why)
