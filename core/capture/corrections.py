"""Corrections with a reason, entered-in-error, value history and second-person verification.

Nothing is deleted. A correction inserts a new row (no row_key, `supersedes_id` = the old
row) and marks the old row `superseded`; the new values pass through the import's own
validation (units, plausibility, unit mix-ups). Entered-in-error hides a row from rules and
plots (core.store.loading reads only `final` rows) but keeps it. Every write is audited with
before, after and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from core.access.permissions import require
from core.capture.entry import site_setting
from core.capture.importing import TABLES, Context
from core.capture.importing.validate import PREPARE
from core.store import audit
from core.store.faults import storage_guard
from core.store.models import LabResult, Patient, RecordStatus
from core.store.unit_of_work import write_session
from core.vocabulary.observations import OBSERVATION_KINDS
from core.vocabulary.units import fmt

REASONS = {
    "typo": "Typing error",
    "wrong_patient": "Entered for the wrong patient",
    "wrong_unit": "Wrong unit",
    "lab_corrected": "The laboratory corrected its result",
    "other": "Other (explain)",
}

# what a correction may change, per table, in the import's column names
EDITABLE = {
    "labs": ("patient_id", "collected_at", "value", "unit"),
    "observations": ("patient_id", "observed_at", "value", "note"),
    "episodes": ("patient_id", "grade", "onset", "resolved", "note"),
    "treatments": ("patient_id", "given_at", "drug", "dose", "dose_unit", "route"),
    "events": ("patient_id", "kind", "at", "note"),
    "missing": ("patient_id", "analyte", "day", "reason"),
}


class CorrectionRefused(ValueError):
    """A correction that cannot be made, with a sentence for the user."""


@dataclass(frozen=True)
class Reason:
    code: str
    text: str = ""

    def render(self) -> str:
        if self.code not in REASONS:
            raise CorrectionRefused("Pick a reason: " + ", ".join(REASONS) + ".")
        if self.code == "other" and not self.text.strip():
            raise CorrectionRefused("Explain the reason when it is 'other'.")
        return (self.code + (f": {self.text.strip()}" if self.text.strip() else ""))[:500]


def _as_reason(reason: Reason | str) -> str:
    if isinstance(reason, Reason):
        return reason.render()
    code, _, text = reason.partition(":")
    return Reason(code.strip(), text.strip()).render()


def _iso(t: datetime | None) -> str:
    if t is None:
        return ""
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).isoformat()


def _as_csv(kind: str, row: Any, patient_id: str) -> dict[str, str]:
    """A stored row in the import's column form (the inverse of prepare_<kind>)."""
    if kind == "labs":
        return {"patient_id": patient_id, "collected_at": _iso(row.collected_at),
                "analyte": row.analyte, "value": row.original_value,
                "unit": row.original_unit}
    if kind == "observations":
        value = row.value_text if row.value_text is not None else (
            "" if row.value_num is None else fmt(row.value_num).replace(",", ""))
        spec = OBSERVATION_KINDS.get(row.kind)
        if spec is not None and spec.type.value == "yes/no" and row.value_num is not None:
            value = "yes" if row.value_num else "no"
        return {"patient_id": patient_id, "observed_at": _iso(row.observed_at),
                "kind": row.kind, "value": value, "note": row.note or ""}
    if kind == "episodes":
        return {"patient_id": patient_id, "kind": str(row.kind),
                "grade": "" if row.grade is None else str(row.grade),
                "onset": _iso(row.onset), "resolved": _iso(row.resolved),
                "note": row.note or ""}
    if kind == "treatments":
        return {"patient_id": patient_id, "given_at": _iso(row.given_at), "drug": row.drug,
                "dose": "" if row.dose is None else repr(row.dose),
                "dose_unit": row.dose_unit or "", "route": row.route or ""}
    if kind == "events":
        return {"patient_id": patient_id, "kind": str(row.kind), "at": _iso(row.at),
                "note": row.note or ""}
    if kind == "missing":
        return {"patient_id": patient_id, "analyte": row.analyte, "day": str(row.day),
                "reason": row.reason}
    raise CorrectionRefused(f"Unknown table {kind!r}.")


def _load(session: Session, kind: str, record_id: int) -> tuple[Any, str]:
    if kind not in TABLES:
        raise CorrectionRefused(f"Unknown table {kind!r}; use one of {', '.join(TABLES)}.")
    row = session.get(TABLES[kind], record_id)
    if row is None:
        raise CorrectionRefused(f"No {kind} record {record_id}.")
    patient = session.get(Patient, row.patient_pk)
    assert patient is not None  # patient_pk is a foreign key
    return row, patient.patient_id


@storage_guard()
def correct(engine: Engine, table: str, record_id: int, changes: dict[str, object],
            reason: Reason | str, user: str, *, confirm_unusual: bool = False,
            tz: str = "UTC", now: datetime | None = None, role: str | None = None) -> int:
    """Supersede a final row with corrected values; returns the new row's id.

    `changes` uses the import's column names (labs: value, unit, collected_at, patient_id).
    The corrected row passes the import's validation; a problem raises CorrectionRefused
    with the import's sentence. `role` (None = trusted caller) needs correct_data.
    """
    require(role, "correct_data")
    why = _as_reason(reason)
    bad = set(changes) - set(EDITABLE.get(table, ()))
    if bad:
        raise CorrectionRefused(f"{', '.join(sorted(bad))} cannot be corrected on {table}; "
                                f"editable: {', '.join(EDITABLE.get(table, ()))}.")
    now = now or datetime.now(UTC)
    with write_session(engine, actor=user) as session:
        old, pid = _load(session, table, record_id)
        if old.status != RecordStatus.FINAL.value:
            raise CorrectionRefused(f"This value is already {old.status}; correct the current "
                                    "value instead (see its history).")
        values = _as_csv(table, old, pid)
        values.update({k: "" if v is None else str(v) for k, v in changes.items()})
        if values == _as_csv(table, old, pid):
            raise CorrectionRefused("Nothing changed: give the corrected value.")
        from core.capture.importing import _patient_index

        ctx = Context(tz=tz, now=now, patients=_patient_index(session),
                      confirm_unusual=confirm_unusual,
                      confirm_hint="tick 'This unusual value is right' and save again")
        frame = pd.DataFrame([values], dtype=str)
        prepared = PREPARE[table](frame, ctx)
        if ctx.errors:
            raise CorrectionRefused(" ".join(e.message for e in ctx.errors))
        fields = {k: v for k, v in prepared.iloc[0].to_dict().items() if not k.startswith("_")}
        fields = {k: (None if (not isinstance(v, str) and pd.isna(v)) else v)
                  for k, v in fields.items()}
        for k, v in list(fields.items()):
            if isinstance(v, pd.Timestamp):
                fields[k] = v.to_pydatetime()
            elif hasattr(v, "item"):
                fields[k] = v.item()
        if table == "labs":
            fields["ref_low"], fields["ref_high"] = old.ref_low, old.ref_high
            fields["loinc"] = old.loinc
        new = supersede_row(session, TABLES[table], table, old, fields, source="manual",
                            source_record_id=old.source_record_id, actor=user, reason=why,
                            patient_id=pid)
        return int(new.id)


def supersede_row(session: Session, model: Any, table: str, old: Any, fields: dict[str, Any],
                  *, source: str, source_record_id: str | None, actor: str, reason: str,
                  patient_id: str) -> Any:
    """The one way a stored row is replaced (a nurse's correction, an HL7 OBX-11 C, a FHIR
    amended/corrected resource): the new version goes in as final with `supersedes_id` and
    the reason, the old one leaves 'final' first, and the change is audited."""
    new = model(**fields, source=source, source_record_id=source_record_id, entered_by=actor,
                entered_at=datetime.now(UTC), status=RecordStatus.FINAL.value,
                supersedes_id=old.id, correction_reason=reason[:500])
    before = audit.snapshot(old)
    if old.status == RecordStatus.FINAL.value:
        old.status = RecordStatus.SUPERSEDED.value
        session.add(old)
        session.flush()  # the old row leaves 'final' before the new one arrives
    session.add(new)
    session.flush()
    audit.record(session, actor=actor, action="correct", table_name=table, record_id=new.id,
                 patient_id=patient_id, before=before, after=audit.snapshot(new), reason=reason)
    return new


def retract_row(session: Session, table: str, row: Any, *, actor: str, reason: str,
                patient_id: str) -> None:
    """The one way a stored row is marked entered in error (a nurse's, an HL7 OBX-11 D/W, a
    FHIR entered-in-error resource): it stays, hidden from rules and plots, with the reason,
    and the change is audited."""
    before = audit.snapshot(row)
    row.status = RecordStatus.ENTERED_IN_ERROR.value
    row.correction_reason = reason[:500]
    session.add(row)
    session.flush()
    audit.record(session, actor=actor, action="entered_in_error", table_name=table,
                 record_id=row.id, patient_id=patient_id, before=before,
                 after=audit.snapshot(row), reason=reason)


@storage_guard()
def mark_entered_in_error(engine: Engine, table: str, record_id: int, reason: Reason | str,
                          user: str, *, role: str | None = None) -> None:
    """Hide a row from rules and plots (status entered_in_error); it stays for the audit."""
    require(role, "correct_data")
    why = _as_reason(reason)
    with write_session(engine, actor=user) as session:
        row, pid = _load(session, table, record_id)
        if row.status != RecordStatus.FINAL.value:
            raise CorrectionRefused(f"This value is already {row.status}.")
        retract_row(session, table, row, actor=user, reason=why, patient_id=pid)


def history(engine: Engine, table: str, record_id: int) -> list[dict[str, Any]]:
    """Every version of a value, oldest first: back through supersedes_id, then forward."""
    model = TABLES[table]
    with Session(engine) as s:
        row = s.get(model, record_id)
        if row is None:
            return []
        chain = [row]
        while chain[0].supersedes_id is not None:
            prev = s.get(model, chain[0].supersedes_id)
            if prev is None:
                break
            chain.insert(0, prev)
        while True:
            nxt = s.execute(select(model).where(
                model.supersedes_id == chain[-1].id)).scalars().first()
            if nxt is None:
                break
            chain.append(nxt)
        return [audit.snapshot(r) or {} for r in chain]


# ---------------------------------------------------------------------------- verification

def verification_required(engine: Engine) -> bool:
    return bool(site_setting(engine, "require_verification", False))


def verification_queue(engine: Engine, patient_id: str | None = None) -> pd.DataFrame:
    """Hand-entered or corrected lab values (final, not yet verified), oldest first."""
    L = LabResult
    stmt = (select(col(L.id), col(Patient.patient_id), col(L.analyte), col(L.collected_at),
                   col(L.original_value), col(L.original_unit), col(L.value), col(L.unit),
                   col(L.confirmed_unusual), col(L.entered_by), col(L.entered_at),
                   col(L.correction_reason))
            .join(Patient, col(Patient.id) == col(L.patient_pk))
            .where(col(L.status) == RecordStatus.FINAL.value, col(L.verified_at).is_(None),
                   col(L.source) == "manual")
            .order_by(col(L.entered_at), col(L.id)))
    if patient_id:
        stmt = stmt.where(col(Patient.patient_id) == patient_id)
    with engine.connect() as c:
        return pd.DataFrame(c.execute(stmt).all(),
                            columns=["id", "patient_id", "analyte", "collected_at",
                                     "original_value", "original_unit", "value", "unit",
                                     "confirmed_unusual", "entered_by", "entered_at",
                                     "correction_reason"])


@storage_guard()
def verify(engine: Engine, lab_ids: list[int], user: str, *,
           role: str | None = None) -> list[str]:
    """Second-person verification of lab values. Returns refusals (one sentence each);
    values the user entered themselves are refused (four eyes), the rest are verified."""
    require(role, "correct_data")
    refused: list[str] = []
    with write_session(engine, actor=user) as session:
        for lab_id in lab_ids:
            row = session.get(LabResult, lab_id)
            if row is None or row.status != RecordStatus.FINAL.value:
                refused.append(f"Value {lab_id} is no longer current; it was not verified.")
                continue
            if row.entered_by == user:
                refused.append(f"Value {lab_id} ({row.analyte}) was entered by you: another "
                               "person must verify it.")
                continue
            if row.verified_at is not None:
                continue
            before = audit.snapshot(row)
            row.verified_by, row.verified_at = user, datetime.now(UTC)
            session.add(row)
            session.flush()
            patient = session.get(Patient, row.patient_pk)
            assert patient is not None  # patient_pk is a foreign key
            audit.record(session, actor=user, action="verify", table_name="labs",
                         record_id=row.id, patient_id=patient.patient_id, before=before,
                         after=audit.snapshot(row), reason="second-person verification")
    return refused


def recent_values(engine: Engine, patient_id: str, limit: int = 200) -> pd.DataFrame:
    """A patient's current (final) lab values and observations, newest first, for picking one
    to correct: columns table, id, when, item, shown."""
    from core.store.models import Observation

    L, Ob = LabResult, Observation
    with engine.connect() as c:
        labs = c.execute(
            select(col(L.id), col(L.collected_at), col(L.analyte), col(L.original_value),
                   col(L.original_unit))
            .join(Patient, col(Patient.id) == col(L.patient_pk))
            .where(col(Patient.patient_id) == patient_id,
                   col(L.status) == RecordStatus.FINAL.value)
            .order_by(col(L.collected_at).desc()).limit(limit)).all()
        obs = c.execute(
            select(col(Ob.id), col(Ob.observed_at), col(Ob.kind), col(Ob.value_num),
                   col(Ob.value_text), col(Ob.unit))
            .join(Patient, col(Patient.id) == col(Ob.patient_pk))
            .where(col(Patient.patient_id) == patient_id,
                   col(Ob.status) == RecordStatus.FINAL.value)
            .order_by(col(Ob.observed_at).desc()).limit(limit)).all()
    from core.vocabulary.units import ANALYTES

    rows = [{"table": "labs", "id": i, "when": t, "item": ANALYTES[a].name if a in ANALYTES
             else a, "shown": f"{v} {u}"} for i, t, a, v, u in labs]
    rows += [{"table": "observations", "id": i, "when": t,
              "item": OBSERVATION_KINDS[k].label if k in OBSERVATION_KINDS else k,
              "shown": vt if vt is not None else f"{fmt(vn) if vn is not None else ''}"
                                                 f"{' ' + u if u else ''}"}
             for i, t, k, vn, vt, u in obs]
    frame = pd.DataFrame(rows, columns=["table", "id", "when", "item", "shown"])
    return frame.sort_values("when", ascending=False, kind="stable").reset_index(drop=True)
