"""CAR-HEMATOTOX baseline score (criteria §7)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from core.rules.base import (
    Citation,
    EvidenceItem,
    Finding,
    Rule,
    RuleSpec,
    Severity,
    Status,
    Thresholds,
    status_where,
)
from core.rules.cytopenia.counting import C2, VERSION, D, U, th
from core.rules.frames import Columns, Ward
from core.rules.series import Series, take
from core.rules.tables import NONE
from core.vocabulary.units import ANALYTES

HEMATOTOX_THRESHOLDS = (
    th("platelets_1", 175, "10^9/L", U, "1 point at or below (175 itself: higher point)",
       "<="),
    th("platelets_2", 75, "10^9/L", U, "2 points below (75 itself: 1 point, table 75-175)",
       "<"),
    th("anc_1", 1.2, "10^9/L", U, "1 point at or below", "<="),
    th("hemoglobin_1", 9.0, "g/dL", U, "1 point at or below", "<="),
    th("crp_1", 30, "mg/L", U, "1 point at or above (3.0 mg/dL)", ">="),
    th("ferritin_1", 650, "ng/mL", U, "1 point at or above", ">="),
    th("ferritin_2", 2000, "ng/mL", U, "2 points at or above (2,000 itself: higher point)",
       ">="),
    th("high_risk_score", 2, "points", C2, "high risk at or above", ">="),
    th("fallback_baseline_day", -5, "day", D,
       "without a lymphodepletion date, use results on or before this day", "<="),
)


# each item's cuts, in the order of the breakdown: its n-th row ("<item>_<n>") gives n points
_CUTS = {item: [c for c in HEMATOTOX_THRESHOLDS if c.key.startswith(f"{item}_")]
         for item in ("platelets", "anc", "hemoglobin", "crp", "ferritin")}
_PASSES = {"<": np.less, "<=": np.less_equal, ">=": np.greater_equal}


def _points(analyte: str, x: np.ndarray, t: Thresholds) -> np.ndarray:
    """Each item's points: the most points of a cut the value passes, compared as the cut's
    row declares (criteria §7; boundary values take the higher-point side)."""
    return np.max([n * _PASSES[c.op](x, t[c.key]) for n, c in enumerate(_CUTS[analyte], 1)],
                  axis=0)


def judge(ward: Ward, t: Thresholds) -> Columns:
    """Per grid row: each item's baseline result known then (its position in ward.labs),
    its points, and the score's lower (known items) and upper bound (missing items at their
    maximum)."""
    grid = ward.days
    key, as_of = grid["key"], grid["end"]
    ld = np.array([p.lymphodepletion_day for p in ward.patients], dtype=float)[key]  # None: NaN
    cutoff = np.where(np.isnan(ld), t["fallback_baseline_day"], ld) + 1  # day's start + 1
    out: dict[str, Any] = {}
    lo = np.zeros(len(key), dtype=np.int64)
    hi = np.zeros(len(key), dtype=np.int64)
    latest = np.full(len(key), -np.inf)
    for analyte, cuts in _CUTS.items():
        # the latest result with floor(day) < cutoff, i.e. day < ceil(cutoff), known by then
        rows = Series.lab(ward, analyte).dated()
        i0, i1 = rows.window(key, -np.inf, np.ceil(cutoff) - 1, as_of)
        has = i1 > i0
        j = np.where(has, i1 - 1, NONE)  # the latest, NONE: none
        pts = _points(analyte, rows.values(j), t)
        out[f"{analyte}_at"] = rows.frame_pos(j)
        out[f"{analyte}_points"] = np.where(has, pts, -1)
        lo += np.where(has, pts, 0)
        hi += np.where(has, pts, len(cuts))  # a missing item at its most points
        latest = np.maximum(latest, take(rows.day, j, -np.inf))
    high = t["high_risk_score"]
    status = status_where(lo >= high, hi < high)
    decided = status != Status.NOT_EVALUABLE.value
    return {
        "status": status, "score": lo, "score_at_most": hi,
        "since_day": np.where(decided & np.isfinite(latest), np.floor(latest), np.nan), **out,
        "ld": ld,
        # one alert episode per course: the baseline score does not change after day 0
        "episode_key": np.where(status == Status.MET.value, "baseline", "")}


def explain(ward: Ward, row: Mapping[str, Any], t: Thresholds) -> Finding:
    rule_id = "car_hematotox"
    ld = row["ld"]
    when = (f"before lymphodepletion (day {ld:g})" if ld == ld
            else f"on or before day {t['fallback_baseline_day']:g} (no lymphodepletion date)")
    breakdown: dict[str, int | None] = {}
    evidence: list[EvidenceItem] = []
    missing: list[str] = []
    for analyte in _CUTS:
        if row[f"{analyte}_at"] < 0:
            breakdown[analyte] = None
            missing.append(f"{ANALYTES[analyte].name} {when}")
            continue
        pts = int(row[f"{analyte}_points"])
        breakdown[analyte] = pts
        evidence.append(ward.lab_evidence(int(row[f"{analyte}_at"]),
                                          f"baseline {when}: {pts} point{'s' * (pts != 1)}"))
    extra: dict[str, object] = {"breakdown": breakdown, "score_complete": not missing}
    if missing:
        extra["score_at_most"] = int(row["score_at_most"])
    status = Status(row["status"])
    extra["risk_group"] = {Status.MET: "high", Status.NOT_MET: "low"}.get(status)
    since = row["since_day"]  # None unless decided
    return Finding(rule=rule_id, status=status,
                   score=None if status is Status.NOT_EVALUABLE else float(row["score"]),
                   since_day=None if since is None else float(since),
                   evidence=evidence, missing=missing, extra=extra)


RULES: tuple[RuleSpec, ...] = (
    RuleSpec(Rule(
        id="car_hematotox", title="CAR-HEMATOTOX score (baseline, before lymphodepletion)",
        version=VERSION,
        citation=Citation("Rejeski et al., CAR-HEMATOTOX, Blood 2021;138(24):2499-2513",
                          "score items and risk groups; criteria.md §7",
                          "10.1182/blood.2020010543"),
        evidence=U, severity=Severity.INFO, thresholds=HEMATOTOX_THRESHOLDS,
        inputs=("platelets", "anc", "hemoglobin", "crp", "ferritin"), scored=True,
        # [DESIGN] never alerts: a risk stratification from baseline labs, not an event
        short_name="CAR-HEMATOTOX", informational=True,
        choices=(
            "Boundary values (175, 1.2, 9.0, 3.0 mg/dL, 650, 2,000) take the higher-point "
            "side (criteria §7); platelets exactly 75 = 1 point (table 75-175).",
            "Baseline = last result on or before the lymphodepletion start day (labs of that "
            "day are taken as drawn before chemotherapy); without a lymphodepletion date, the "
            "last result on or before day -5.",
            "Incomplete items: score = points of the known items (lower bound) with "
            "score_at_most; risk is reported when the missing items cannot change it.",
            "Met = high risk (score >= 2).",
        ),
        description="ANC, Hb, platelets, CRP, ferritin before lymphodepletion; 0-7 points, "
                    "high risk >= 2.",
    ), judge=judge, explain=explain, by_instant=True),
)
