"""FHIR status and resource ids against what is stored: present, supersede, retract.

- A resource id we never stored is a new row (the CSV import's checks, including "a
  different value is already stored for this patient, item and time").
- A resource id we stored (source_record_id; a hand correction keeps it) compares the
  incoming values with the last version that came from FHIR: the same -> already present;
  different (status `amended` / `corrected`, a `final` that replaces a `preliminary`, or a
  `final` whose values changed in the EHR) -> a new row that supersedes the current one,
  with a reason naming the FHIR status, audited ("correct"). A hand correction made here is
  left alone while the EHR sends the version it corrected.
- `entered-in-error` on an id we stored marks its current rows entered_in_error (reason
  "entered-in-error in the source EHR (FHIR <type>/<id>)"), audited; an id we never had is
  skipped and counted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_, select
from sqlmodel import Session, SQLModel, col

from core.capture.corrections import retract_row, supersede_row
from core.store.db import IN_CHUNK
from core.store.models import LabResult, Observation, RecordStatus, Treatment

MODELS: dict[str, type[SQLModel]] = {"labs": LabResult, "observations": Observation,
                                     "treatments": Treatment}
COMPARED = {
    "labs": ("patient_pk", "analyte", "collected_at", "value", "qualifier", "ref_low",
             "ref_high", "preliminary"),
    "observations": ("patient_pk", "kind", "observed_at", "value_num", "value_text"),
    "treatments": ("patient_pk", "drug", "given_at", "dose", "dose_unit", "route"),
}
FINAL = RecordStatus.FINAL.value
_SOURCES = ("fhir", "manual")  # a hand correction of an imported row keeps its source id


def retract_reason(label: str) -> str:
    return f"entered-in-error in the source EHR (FHIR {label})"


def supersede_reason(label: str, status: str, was_preliminary: bool) -> str:
    status = status or "final"
    if status in ("amended", "corrected"):
        return f"{status} in the source EHR (FHIR {label}, status {status})"
    if was_preliminary and status == "final":
        return f"final result in the source EHR replaces the preliminary one (FHIR {label})"
    return f"changed in the source EHR (FHIR {label}, status {status})"


def by_source_id(session: Session, kind: str, ids: Iterable[str]) -> dict[str, list[Any]]:
    """source_record_id -> every stored row with it (FHIR and hand corrections), oldest
    first: the compared columns only (a re-sync reads thousands); `load` gives the row."""
    model: Any = MODELS[kind]
    cols = [model.id, model.source_record_id, model.source, model.status,
            *(getattr(model, name) for name in COMPARED[kind])]
    wanted = sorted({i for i in ids if i})
    out: dict[str, list[Any]] = {}
    for start in range(0, len(wanted), IN_CHUNK):
        chunk = wanted[start:start + IN_CHUNK]
        for row in session.execute(select(*cols).where(
                model.source_record_id.in_(chunk), model.source.in_(_SOURCES))
                .order_by(model.id)):
            out.setdefault(row.source_record_id, []).append(row)
    return out


def load(session: Session, kind: str, row: Any) -> Any:
    """The stored row itself (for a row read as columns by `by_source_id`)."""
    return session.get(MODELS[kind], row.id)


def by_row_key(session: Session, kind: str, keys: Iterable[str]) -> dict[str, Any]:
    model: Any = MODELS[kind]
    wanted = sorted(set(keys))
    out: dict[str, Any] = {}
    for start in range(0, len(wanted), IN_CHUNK):
        chunk = wanted[start:start + IN_CHUNK]
        for row in session.execute(select(model).where(model.row_key.in_(chunk))).scalars():
            out[row.row_key] = row
    return out


def current(session: Session, kind: str, row: Any) -> Any:
    """The newest version of a row: forward along supersedes_id."""
    model: Any = MODELS[kind]
    seen = {row.id}
    while row.status == RecordStatus.SUPERSEDED.value:
        nxt = session.execute(select(model).where(model.supersedes_id == row.id)
                              .order_by(model.id.desc())).scalars().first()
        if nxt is None or nxt.id in seen:
            break
        seen.add(nxt.id)
        row = nxt
    return row


def latest_and_current(rows: list[Any]) -> tuple[Any, Any | None]:
    """(the last version that came from FHIR, the row that is final now or None)."""
    from_fhir = [r for r in rows if r.source == "fhir"] or rows
    final = [r for r in rows if r.status == FINAL]
    return from_fhir[-1], (final[-1] if final else None)


def retract_targets(session: Session, rtype: str, rid: str) -> list[tuple[str, Any]]:
    """Every stored row an entered-in-error resource names: (kind, row)."""
    found: list[tuple[str, Any]] = []
    if rtype == "Observation":
        for kind in ("labs", "observations"):
            model: Any = MODELS[kind]
            found += [(kind, r) for r in session.execute(select(model).where(
                or_(model.source_record_id == rid,
                    model.source_record_id.startswith(f"{rid}#", autoescape=True)),
                model.source.in_(_SOURCES)).order_by(model.id)).scalars()]
    elif rtype == "MedicationAdministration":
        T, Ob = Treatment, Observation
        found += [("treatments", r) for r in session.execute(select(T).where(
            col(T.source_record_id) == rid, col(T.source).in_(_SOURCES))
            .order_by(col(T.id))).scalars()]
        derived = session.execute(select(Ob).where(
            col(Ob.kind).in_(("vasopressors", "vasopressin")), col(Ob.source) == "fhir",
            col(Ob.note).contains(f"(MedicationAdministration/{rid})", autoescape=True))
            .order_by(col(Ob.id))).scalars()
        found += [("observations", r) for r in derived]
    return found


def _norm(v: Any) -> Any:
    if isinstance(v, datetime):
        return (v if v.tzinfo else v.replace(tzinfo=UTC)).astimezone(UTC)
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def _blank(v: Any) -> bool:
    return v is None or v is False or (isinstance(v, str) and not v)


def _equal(a: Any, b: Any) -> bool:
    a, b = _norm(a), _norm(b)
    if _blank(a) or _blank(b):
        return _blank(a) and _blank(b)
    if isinstance(a, bool) or isinstance(b, bool):
        return bool(a == b)
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    return bool(a == b)


def same(kind: str, row: Any, fields: dict[str, Any]) -> bool:
    """Whether a stored row already holds these values (the fields that matter clinically)."""
    return all(_equal(getattr(row, name, None), fields.get(name)) for name in COMPARED[kind])


def supersede(session: Session, kind: str, old: Any, fields: dict[str, Any], *, reason: str,
              user: str, batch_id: int | None, source_id: str | None, patient_id: str) -> Any:
    """Insert the new version (supersedes_id = old) and mark the old one superseded."""
    return supersede_row(session, MODELS[kind], kind, old,
                         {**fields, "import_batch_id": batch_id}, source="fhir",
                         source_record_id=source_id, actor=user, reason=reason,
                         patient_id=patient_id)


def retract(session: Session, kind: str, row: Any, *, reason: str, user: str,
            patient_id: str) -> None:
    """Mark the row entered in error (an entered-in-error resource)."""
    retract_row(session, kind, row, actor=user, reason=reason, patient_id=patient_id)
