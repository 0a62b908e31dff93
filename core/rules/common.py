"""Helpers the rules share: baseline, reference limits, latest values, evidence items.

Conventions of criteria.md §0.2 [DESIGN]:
- baseline = the last value before lymphodepleting chemotherapy; if there is none, the last
  value on or before the infusion day (day < 1);
- ULN/LLN come from the lab result's own reference range; without one the catalogue default
  (core/units.py) is used and the evidence says "default reference range used".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from core.course import Course
from core.rules.base import EvidenceItem
from core.units import ANALYTES


@dataclass(frozen=True)
class Value:
    """One lab value as the rules use it (canonical unit) with where it came from."""

    analyte: str
    day: float
    value: float
    qualifier: str | None = None
    ref_low: float | None = None
    ref_high: float | None = None
    original_value: str | None = None
    original_unit: str | None = None
    verified: bool | None = None
    default_range: bool = False

    @property
    def unit(self) -> str:
        return ANALYTES[self.analyte].unit

    def evidence(self, why: str) -> EvidenceItem:
        note = why + (" (default reference range used)" if self.default_range else "")
        shown = f"{self.qualifier}{self.value:g}" if self.qualifier else self.value
        return EvidenceItem(
            why=note, analyte=self.analyte, day=self.day, value=shown, unit=self.unit,
            original_value=self.original_value, original_unit=self.original_unit,
            verified=self.verified,
        )


def _is_missing(x: object) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def to_value(row: pd.Series | dict) -> Value:
    a = ANALYTES[row["analyte"]]
    ref_low = None if _is_missing(row.get("ref_low")) else float(row["ref_low"])
    ref_high = None if _is_missing(row.get("ref_high")) else float(row["ref_high"])
    default = ref_low is None and ref_high is None
    if default:
        ref_low, ref_high = a.ref_low, a.ref_high
    q = row.get("qualifier")
    verified = row.get("verified")
    return Value(
        analyte=row["analyte"], day=float(row["day"]), value=float(row["value"]),
        qualifier=None if _is_missing(q) else q, ref_low=ref_low, ref_high=ref_high,
        original_value=None if _is_missing(row.get("original_value")) else
        str(row["original_value"]),
        original_unit=None if _is_missing(row.get("original_unit")) else
        str(row["original_unit"]),
        verified=None if _is_missing(verified) else bool(verified),
        default_range=default,
    )


def values(course: Course, analyte: str) -> list[Value]:
    """All values of an analyte in time order."""
    return [to_value(r) for r in course.series(analyte).to_dict("records")]


def latest(course: Course, analyte: str) -> Value | None:
    s = course.series(analyte)
    return None if s.empty else to_value(s.iloc[-1].to_dict())


def baseline(course: Course, analyte: str) -> Value | None:
    """Last value before lymphodepletion, else last value before day 1 [DESIGN §0.2]."""
    s = course.series(analyte)
    ld = course.patient.lymphodepletion_day
    if ld is not None:
        before = s[s["day"] < ld]
        if not before.empty:
            return to_value(before.iloc[-1].to_dict())
    before = s[s["day"] < 1]
    return None if before.empty else to_value(before.iloc[-1].to_dict())


def uln(v: Value) -> float | None:
    return v.ref_high


def lln(v: Value) -> float | None:
    return v.ref_low
