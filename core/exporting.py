"""Exports: a patient's data as CSV (all final rows, original and canonical units)."""

from __future__ import annotations

import io

from sqlalchemy.engine import Engine

from core.db import session_scope
from core.loading import load_courses

_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: object) -> object:
    """Defuse spreadsheet formula injection in text cells (OWASP CSV injection)."""
    if isinstance(value, str) and value.startswith(_FORMULA_PREFIXES):
        return "'" + value
    return value


def export_patient_csv(engine: Engine, patient_id: str, tz: str) -> str:
    with session_scope(engine) as s:
        courses = load_courses(s, tz, [patient_id], active_only=False)
    if not courses:
        raise ValueError(f"no patient {patient_id!r}")
    labs = courses[0].labs.copy()
    labs.insert(0, "patient_id", patient_id)
    cols = ["patient_id", "analyte", "day", "collected_at", "value", "unit", "qualifier",
            "original_value", "original_unit", "ref_low", "ref_high", "verified"]
    labs = labs[cols].sort_values(["day", "analyte"])
    labs = labs.map(neutralise)
    buf = io.StringIO()
    labs.to_csv(buf, index=False)
    return buf.getvalue()
