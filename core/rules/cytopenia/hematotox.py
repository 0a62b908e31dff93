"""CAR-HEMATOTOX baseline score (criteria §7)."""

from __future__ import annotations

import math

from core.rules.base import (
    Citation,
    EvidenceItem,
    Finding,
    Rule,
    RuleSpec,
    Severity,
    Status,
    Thresholds,
)
from core.rules.cytopenia.counting import C2, VERSION, D, U, th
from core.rules.cytopenia.replay import Cache, cached, end_index, full_series, rule_spec
from core.vocabulary.course import Course
from core.vocabulary.units import ANALYTES

HT_CITE = ("Rejeski et al., CAR-HEMATOTOX, Blood 2021;138(24):2499-2513",
           "10.1182/blood.2020010543")


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


def _points(analyte: str, x: float, t: Thresholds) -> int:
    if analyte == "platelets":
        return 2 if x < t["platelets_2"] else 1 if x <= t["platelets_1"] else 0
    if analyte == "anc":
        return 1 if x <= t["anc_1"] else 0
    if analyte == "hemoglobin":
        return 1 if x <= t["hemoglobin_1"] else 0
    if analyte == "crp":
        return 1 if x >= t["crp_1"] else 0
    return 2 if x >= t["ferritin_2"] else 1 if x >= t["ferritin_1"] else 0


_HT_ITEMS: tuple[tuple[str, int], ...] = (("platelets", 2), ("anc", 1), ("hemoglobin", 1),
                                          ("crp", 1), ("ferritin", 2))


def _car_hematotox_as_of(course: Course, t: Thresholds, cache: Cache, now: float,
                         as_of: float) -> Finding:
    ld = course.patient.lymphodepletion_day
    cutoff = (ld if ld is not None else t["fallback_baseline_day"]) + 1  # day's start + 1
    if as_of < cutoff:
        return _car_hematotox(course, t, ld, cutoff, as_of)
    # every baseline result is known: the score no longer changes (computed once per course)
    f = cached(cache, ("baseline", cutoff), lambda: _car_hematotox(course, t, ld, cutoff,
                                                                   as_of))
    return f


def _car_hematotox(course: Course, t: Thresholds, ld: float | None, cutoff: float,
                   as_of: float) -> Finding:
    rule_id = "car_hematotox"
    when = (f"before lymphodepletion (day {ld:g})" if ld is not None
            else f"on or before day {t['fallback_baseline_day']:g} (no lymphodepletion date)")
    breakdown: dict[str, int | None] = {}
    evidence: list[EvidenceItem] = []
    missing: list[str] = []
    latest_day = -math.inf
    for analyte, _max in _HT_ITEMS:
        # results with floor(day) < cutoff, i.e. day < ceil(cutoff), known by as_of
        s = full_series(course, analyte)
        k = end_index(s, math.ceil(cutoff) - 1, as_of)  # floor(day) < cutoff
        if not k:
            breakdown[analyte] = None
            missing.append(f"{ANALYTES[analyte].name} {when}")
            continue
        i = k - 1
        pts = _points(analyte, float(s.value[i]), t)
        breakdown[analyte] = pts
        latest_day = max(latest_day, float(s.day[i]))
        evidence.append(s.evidence(i, f"baseline {when}: {pts} point{'s' * (pts != 1)}"))
    lo = sum(p for p in breakdown.values() if p is not None)
    hi = lo + sum(m for a, m in _HT_ITEMS if breakdown[a] is None)
    high = t["high_risk_score"]
    extra: dict[str, object] = {"breakdown": breakdown, "score_complete": not missing}
    if missing:
        extra["score_at_most"] = hi
    if lo >= high:
        extra["risk_group"] = "high"
        status = Status.MET
    elif hi < high:
        extra["risk_group"] = "low"
        status = Status.NOT_MET
    else:
        extra["risk_group"] = None
        return Finding(rule=rule_id, status=Status.NOT_EVALUABLE, evidence=evidence,
                       missing=missing, extra=extra)
    since = float(math.floor(latest_day)) if math.isfinite(latest_day) else None
    return Finding(rule=rule_id, status=status, score=float(lo), since_day=since,
                   evidence=evidence, missing=missing, extra=extra,
                   episode_key="baseline" if status is Status.MET else None)


RULES: tuple[RuleSpec, ...] = (
    rule_spec(Rule(
        id="car_hematotox", title="CAR-HEMATOTOX score (baseline, before lymphodepletion)",
        version=VERSION,
        citation=Citation(HT_CITE[0], "score items and risk groups; criteria.md §7",
                          HT_CITE[1]),
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
    ), _car_hematotox_as_of),
)
