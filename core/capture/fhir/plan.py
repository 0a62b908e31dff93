"""Which mapped rows are new, already present or supersede a stored one (no writes here).

New rows pass `core.capture.importing.validate_rows` (the CSV import's checks, units, data-entry
limits and natural-key idempotency). Rows whose resource id we stored, and derived rows
(the vasopressor count, matched by natural key), pass the same per-kind preparation and
length checks, then are compared with what is stored (core.capture.fhir.status)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
from sqlmodel import Session

from core.capture.fhir import status
from core.capture.fhir.read import Mapped
from core.capture.importing import (  # the import's own helpers
    Context,
    RowError,
    _check_lengths,
    _hash,
    _records,
    validate_rows,
)
from core.capture.importing.validate import PREPARE

COLUMNS = {
    "labs": ["patient_id", "collected_at", "analyte", "value", "unit", "qualifier", "ref_low",
             "ref_high", "loinc"],
    "observations": ["patient_id", "observed_at", "kind", "value", "unit", "note"],
    "treatments": ["patient_id", "given_at", "drug", "dose", "dose_unit", "route"],
}


@dataclass
class Change:
    """A superseding row: the mapped record, the row it replaces, the new fields."""

    record: Mapped
    old: Any
    fields: dict[str, Any]
    reason: str


@dataclass
class KindPlan:
    kind: str
    inserts: list[tuple[pd.DataFrame, list[Mapped]]] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    present: int = 0

    @property
    def new_rows(self) -> int:
        return sum(len(frame) for frame, _ in self.inserts) + len(self.changes)


def renumber(errors: list[RowError], records: list[Mapped]) -> list[RowError]:
    """Frame-row errors (row = index + 2) -> the resource's position and FHIR path."""
    out = []
    for e in errors:
        i = e.row - 2
        rec = records[i] if 0 <= i < len(records) else None
        column = e.column.split(" or ")[0]
        path = rec.paths.get(column, e.column) if rec is not None else e.column
        out.append(RowError(rec.row if rec is not None else 0, path, e.value, e.message))
    return out


def _frame(kind: str, records: list[Mapped]) -> pd.DataFrame:
    return pd.DataFrame([r.values for r in records], columns=COLUMNS[kind], dtype=str)


def _with_source(kind: str, prepared: pd.DataFrame, records: list[Mapped]) -> pd.DataFrame:
    prepared = prepared.copy()
    prepared["source_record_id"] = [r.source_id for r in records]
    if kind == "labs":
        prepared["preliminary"] = [r.preliminary for r in records]
    return prepared


def plan_kind(session: Session, kind: str, records: list[Mapped], ctx_of: Any,
              errors: list[RowError], file_name: str) -> KindPlan:
    """Sort one kind's records into inserts, changes and present (errors go to `errors`)."""
    plan = KindPlan(kind)
    if not records:
        return plan
    stored = status.by_source_id(session, kind, [r.source_id for r in records
                                                 if not r.by_key and r.source_id])
    plain: list[Mapped] = []
    known: list[Mapped] = []
    for r in records:
        (known if r.by_key or r.source_id in stored else plain).append(r)
    if plain:
        ctx: Context = ctx_of()
        prepared = validate_rows(session, kind, _frame(kind, plain), ctx)
        errors += renumber(ctx.errors, plain)
        if not ctx.errors:
            prepared = _with_source(kind, prepared, plain)
            plan.present += int(prepared["_present"].sum())
            keep = ~prepared["_present"].to_numpy()
            if keep.any():
                plan.inserts.append((prepared[keep], [r for r, k in zip(plain, keep,
                                                                        strict=True) if k]))
    if known:
        ctx = ctx_of()
        prepared = PREPARE[kind](_frame(kind, known), ctx)
        _check_lengths(kind, prepared, ctx)
        errors += renumber(ctx.errors, known)
        if not ctx.errors:
            _compare(session, plan, _with_source(kind, prepared, known), known, stored,
                     file_name)
    return plan


def _compare(session: Session, plan: KindPlan, prepared: pd.DataFrame, known: list[Mapped],
             stored: dict[str, list[Any]], file_name: str) -> None:
    kind = plan.kind
    prepared["_row_key"] = _hash(kind, prepared["_natural"])
    prepared["_content"] = _hash(kind, prepared["_value_key"])
    keyed = status.by_row_key(session, kind, [k for k, r in zip(
        prepared["_row_key"], known, strict=True) if r.by_key])
    fresh: list[int] = []
    columns = [c for c in prepared.columns if not c.startswith("_")]
    for i, (rec, fields) in enumerate(zip(known, _records(prepared[columns]), strict=True)):
        if rec.by_key:
            row = keyed.get(prepared["_row_key"].iloc[i])
            if row is None:
                fresh.append(i)
                continue
            compare_with = target = status.current(session, kind, row)
            reason = (f"recomputed from the EHR's administration record in {file_name} "
                      f"(FHIR {rec.entry.label})")
        else:
            compare_with, target = status.latest_and_current(stored[str(rec.source_id)])
            target = target if target is not None else compare_with
            reason = status.supersede_reason(rec.entry.label, rec.entry.status,
                                             bool(getattr(compare_with, "preliminary", False)))
        if status.same(kind, compare_with, fields):
            plan.present += 1
        else:
            plan.changes.append(Change(rec, target, fields, reason))
    if fresh:
        plan.inserts.append((prepared.iloc[fresh], [known[i] for i in fresh]))


def ctx_factory(tz: str, now: datetime, patients: dict[str, Any],
                confirm_unusual: bool) -> Any:
    def make() -> Context:
        return Context(tz=tz, now=now, patients=patients, confirm_unusual=confirm_unusual)
    return make
