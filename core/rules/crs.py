"""ASTCT 2019 CRS grade from bedside observations (criteria.md §5.1).

The grade is the *current* grade of the evaluated ward day: for each input the latest
observation of that day is used. Fever (T >= 38.0 °C) is required for any grade unless the
patient has had an antipyretic, anti-cytokine (e.g. tocilizumab) or corticosteroid dose, after
which hypotension and hypoxia alone drive the grade. Grade = the more severe of hypotension and
hypoxia (at least 1 with fever). CTCAE organ grades never feed into it (§5.1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from core.course import Course
from core.observations import DrugClass, drugs_in
from core.rules.base import (
    Citation,
    EvidenceItem,
    Finding,
    Rule,
    RuleSpec,
    Severity,
    Status,
    Threshold,
    Thresholds,
)
from core.rules.common import (
    daily,
    end_of_day,
    episode_key,
    evaluated_day,
    latest_observation,
    met_since,
    thresholds_key,
    treatment_days,
)
from core.rules.monitoring import GAP_KEY, current_prompts, gap_threshold
from core.units import Evidence

FEVER_WAIVER_DRUGS = tuple(sorted(
    drugs_in(DrugClass.ANTIPYRETIC) | drugs_in(DrugClass.ANTI_CYTOKINE)
    | drugs_in(DrugClass.STEROID)
))

POSITIVE_PRESSURE = ("cpap", "bipap", "ventilator")
HIGH_FLOW_DEVICES = ("high_flow_nc", "facemask", "non_rebreather", "venturi")
LOW_FLOW_DEVICES = ("low_flow_nc", "blow_by")

RULE = Rule(
    id="crs_grade",
    title="CRS grade (ASTCT 2019)",
    version="1.0",
    citation=Citation(
        source="Lee et al., Biol Blood Marrow Transplant 2019;25(4):625-638 (ASTCT consensus)",
        section="CRS grading table and footnotes; criteria.md §5.1",
        doi="10.1016/j.bbmt.2018.12.758",
    ),
    evidence=Evidence.C2,
    severity=Severity.WARNING,
    graded=True,
    escalates_at_grade=3,
    thresholds=(
        Threshold("fever_c", 38.0, "°C", Evidence.C2, "fever: temperature at or above", ">="),
        Threshold("low_flow_max_l_min", 6.0, "L/min", Evidence.C2,
                  "oxygen up to this flow by low-flow nasal cannula (or blow-by) is grade 2; "
                  "above it (high-flow) grade 3", "<="),
        Threshold("multiple_vasopressors", 2.0, "count", Evidence.C2,
                  "this many vasopressors (excluding vasopressin) or more is grade 4", ">="),
        gap_threshold(),
    ),
    inputs=("temperature", "hypotension", "iv_fluids", "vasopressors", "vasopressin",
            "oxygen_device", "oxygen_flow", "antipyretic / anti-cytokine / steroid doses"),
    choices=(
        "Current grade = the latest observation of each input on the evaluated ward day "
        "(not the day's worst); suggested episodes take the maximum over days.",
        "Fever is waived after any antipyretic, anti-cytokine (tocilizumab, siltuximab, "
        "anakinra, emapalumab) or corticosteroid dose given on or after day 0, for the rest "
        "of the course (the broader ASTCT form, §5.1); the drug and day are shown.",
        "Vasopressin alone counts as one vasopressor (grade 3); the vasopressor count "
        "excludes vasopressin.",
        "Hypotension is graded 2 when recorded (or an IV fluid bolus was given) without "
        "vasopressors; it is known absent only when 'hypotension: no' is recorded, or "
        "vasopressors 0 and no IV fluids.",
        "A low-flow cannula above the flow limit counts as high-flow (grade 3); a flow with no "
        "device recorded is taken as nasal cannula; a named high-flow device is grade 3 "
        "whatever the flow.",
        "With fever but hypotension or oxygen not logged, the grade is a lower bound (met, "
        "with the missing inputs listed).",
        "A day without observations neither starts nor ends a CRS stretch (since_day).",
        "'Not attributable to another cause' needs clinician review and is not checked.",
        "After the bedside monitoring phase [DESIGN]: a 'log today's ...' prompt is dropped "
        "when that input was charted before but not in the last monitoring_gap_days (3) "
        "days; a day left without a grade and without prompts is not_evaluable with empty "
        "missing and extra outside_monitoring_window (no nagging for outpatients). Charting "
        "the input again restores the prompt; a fever with uncharted BP/oxygen still asks.",
        "Alarm policy [DESIGN]: warning; severe from grade 3 (escalates_at_grade).",
    ),
    description="ASTCT consensus CRS grade 0-4 for the evaluated day (grade 5 = death is "
                "clinician-entered).",
)

MISSING_TEMP = "log today's temperature"
MISSING_BP = "log today's blood pressure status (hypotension yes/no, vasopressors)"
MISSING_O2 = "log today's oxygen device (or 'none' for room air) and flow"


@dataclass
class CrsDay:
    """CRS grade of one ward day (None = not evaluable)."""

    grade: int | None
    evidence: list[EvidenceItem] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def status(self) -> Status:
        if self.grade is None:
            return Status.NOT_EVALUABLE
        return Status.MET if self.grade >= 1 else Status.NOT_MET


def _hypotension(course: Course, day: int, end: float,
                 t: Thresholds) -> tuple[int | None, list[EvidenceItem]]:
    start = float(day)
    vp = latest_observation(course, "vasopressors", end, start)
    vpn = latest_observation(course, "vasopressin", end, start)
    hyp = latest_observation(course, "hypotension", end, start)
    fl = latest_observation(course, "iv_fluids", end, start)
    n = vp.num if vp is not None and vp.num is not None else None
    if n is not None and n >= t["multiple_vasopressors"]:
        return 4, [vp.evidence(f"{n:g} vasopressors (excluding vasopressin): grade 4")]
    if (n is not None and n >= 1) or (vpn is not None and vpn.is_yes):
        ev = []
        if n is not None and n >= 1:
            ev.append(vp.evidence("one vasopressor: grade 3"))
        if vpn is not None and vpn.is_yes:
            ev.append(vpn.evidence("vasopressin (with or without one vasopressor): grade 3"))
        return 3, ev
    if (hyp is not None and hyp.is_yes) or (fl is not None and fl.is_yes):
        src = hyp if hyp is not None and hyp.is_yes else fl
        return 2, [src.evidence("hypotension not requiring vasopressors: grade 2")]
    if (hyp is not None and not hyp.is_yes) or (
        n == 0 and fl is not None and not fl.is_yes
    ):
        src = hyp if hyp is not None else vp
        return 0, [src.evidence("no hypotension")]
    return None, []


def _hypoxia(course: Course, day: int, end: float,
             t: Thresholds) -> tuple[int | None, list[EvidenceItem]]:
    start = float(day)
    dev = latest_observation(course, "oxygen_device", end, start)
    flow = latest_observation(course, "oxygen_flow", end, start)
    f = flow.num if flow is not None else None
    limit = t["low_flow_max_l_min"]
    d = dev.text if dev is not None else None
    if d in POSITIVE_PRESSURE:
        return 4, [dev.evidence("positive-pressure ventilation: grade 4")]
    if d in HIGH_FLOW_DEVICES:
        return 3, [dev.evidence(f"{d.replace('_', ' ')}: grade 3")]
    if d in LOW_FLOW_DEVICES or (d is None and f is not None):
        if f is not None and f > limit:
            return 3, [flow.evidence(f"oxygen {f:g} L/min > {limit:g} L/min (high-flow): "
                                     "grade 3")]
        if d is None and f is not None and f <= 0:
            return 0, [flow.evidence("no supplemental oxygen")]
        src = dev if dev is not None else flow
        return 2, [src.evidence(f"low-flow oxygen (<= {limit:g} L/min) or blow-by: grade 2")]
    if d == "none":
        return 0, [dev.evidence("room air")]
    return None, []


def crs_day(course: Course, day: int, t: Thresholds) -> CrsDay:
    """The CRS grade as of the end of ward day `day` (cached for complete days)."""
    return daily(course, ("crs_grade", thresholds_key(t)), day,
                 lambda: _crs_day(course, day, t))


def _crs_day(course: Course, day: int, t: Thresholds) -> CrsDay:
    end = min(end_of_day(day), course.as_of_day)
    temp = latest_observation(course, "temperature", end, float(day))
    waiver = treatment_days(course, FEVER_WAIVER_DRUGS, end, start=0.0)
    h, h_ev = _hypotension(course, day, end, t)
    x, x_ev = _hypoxia(course, day, end, t)
    ev: list[EvidenceItem] = []
    fever = None
    if temp is not None and temp.num is not None:
        fever = temp.num >= t["fever_c"]
        op = ">=" if fever else "<"
        ev.append(temp.evidence(f"temperature {temp.num:g} °C {op} {t['fever_c']:g} °C"))
    if waiver:
        wd, drug = waiver[0]
        ev.append(EvidenceItem(
            why=f"fever no longer required after {drug} (first given day {math.floor(wd)})",
            analyte=drug, day=wd))
    ev += h_ev + x_ev
    known = [g for g in (h, x) if g is not None]
    m = max(known, default=0)
    missing = ([MISSING_BP] if h is None else []) + ([MISSING_O2] if x is None else [])
    if fever:
        return CrsDay(max(1, m), ev, missing)
    if waiver:
        if m >= 2 or not missing:
            return CrsDay(m if m >= 2 else 0, ev, missing)
        return CrsDay(None, ev, missing)
    if fever is False:
        return CrsDay(0, ev, [])
    return CrsDay(None, ev, [MISSING_TEMP] + missing)


PROMPT_INPUTS = {
    MISSING_TEMP: ("temperature",),
    MISSING_BP: ("hypotension", "vasopressors", "vasopressin", "iv_fluids"),
    MISSING_O2: ("oxygen_device", "oxygen_flow"),
}


def evaluate(course: Course, t: Thresholds) -> Finding:
    day = evaluated_day(course)
    today = crs_day(course, day, t)
    key = ("crs_grade", thresholds_key(t))
    since = met_since(course, key, day, today.status,
                      lambda d: crs_day(course, d, t).status)
    missing, extra = list(today.missing), {}
    if today.grade is None and missing:
        end = min(end_of_day(day), course.as_of_day)
        missing = current_prompts(course, day, end, missing, PROMPT_INPUTS, t[GAP_KEY])
        if not missing:
            extra["outside_monitoring_window"] = True
    return Finding(
        rule=RULE.id, status=today.status, since_day=since, grade=today.grade,
        evidence=list(today.evidence), missing=missing, extra=extra,
        episode_key=episode_key(since),
    )


RULES: tuple[RuleSpec, ...] = (RuleSpec(RULE, evaluate),)
