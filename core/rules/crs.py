"""ASTCT 2019 CRS grade from bedside observations (criteria.md §5.1).

The grade is the *current* grade of the evaluated ward day: for each input the latest
observation of that day is used. Fever (T >= 38.0 °C) is required for any grade unless the
patient has had an antipyretic, anti-cytokine (e.g. tocilizumab) or corticosteroid dose, after
which hypotension and hypoxia alone drive the grade. Grade = the more severe of hypotension and
hypoxia (at least 1 with fever). CTCAE organ grades never feed into it (§5.1).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass, field

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
    shared_evidence,
)
from core.rules.monitoring import GAP_KEY, current_prompts, gap_threshold
from core.rules.reading import Obs, course_index, end_of_day
from core.rules.stretches import DailyRule, episode_key, memo
from core.vocabulary.course import Course
from core.vocabulary.observations import DrugClass, drugs_in
from core.vocabulary.units import Evidence

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
    short_name="CRS", syndrome="graded", episode_kind="CRS",
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


def _first_waiver(course: Course) -> tuple[float, EvidenceItem] | None:
    """The first fever-waiving dose on or after day 0 (ties by drug name): its day and the
    evidence item every day after it shows (found once per course)."""

    def find() -> tuple[float, EvidenceItem] | None:
        drugs = course_index(course).drugs
        first = min(((d, drug) for drug in FEVER_WAIVER_DRUGS for d in drugs.get(drug, ())
                     if d >= 0.0), default=None)
        if first is None:
            return None
        wd, drug = first
        return wd, EvidenceItem(
            why=f"fever no longer required after {drug} (first given day {math.floor(wd)})",
            analyte=drug, day=wd)

    return memo(course, ("crs_first_waiver",), find)


class _Day:
    """What the grade reads on one ward day: the latest observation of each input charted
    that day (from its start to `end`) and the first fever-waiving dose by `end`."""

    __slots__ = ("obs", "day", "end", "waiver")

    def __init__(self, course: Course, day: int, end: float) -> None:
        self.obs = course_index(course).obs
        self.day, self.end = float(day), end
        waiver = _first_waiver(course)
        self.waiver = waiver if waiver is not None and waiver[0] <= end else None

    def latest(self, kind: str) -> Obs | None:
        s = self.obs.get(kind)
        if s is None:
            return None
        j = bisect_right(s.days, self.end) - 1
        if j < 0 or s.days[j] < self.day:
            return None
        num = s.nums[j]
        return Obs(kind, s.days[j], None if num != num else num, s.texts[j])


def _evidence(o: Obs | None, text: str) -> EvidenceItem:
    assert o is not None  # the branch that calls this read a value of `o`
    return o.evidence(text)


def _hypotension(today: _Day, t: Thresholds) -> tuple[int | None, list[EvidenceItem]]:
    vp = today.latest("vasopressors")
    vpn = today.latest("vasopressin")
    hyp = today.latest("hypotension")
    fl = today.latest("iv_fluids")
    n = vp.num if vp is not None and vp.num is not None else None
    if n is not None and n >= t["multiple_vasopressors"]:
        return 4, [_evidence(vp, f"{n:g} vasopressors (excluding vasopressin): grade 4")]
    if (n is not None and n >= 1) or (vpn is not None and vpn.is_yes):
        ev = []
        if n is not None and n >= 1:
            ev.append(_evidence(vp, "one vasopressor: grade 3"))
        if vpn is not None and vpn.is_yes:
            ev.append(vpn.evidence("vasopressin (with or without one vasopressor): grade 3"))
        return 3, ev
    if (hyp is not None and hyp.is_yes) or (fl is not None and fl.is_yes):
        src = hyp if hyp is not None and hyp.is_yes else fl
        return 2, [_evidence(src, "hypotension not requiring vasopressors: grade 2")]
    if (hyp is not None and not hyp.is_yes) or (
        n == 0 and fl is not None and not fl.is_yes
    ):
        src = hyp if hyp is not None else vp
        return 0, [_evidence(src, "no hypotension")]
    return None, []


def _hypoxia(today: _Day, t: Thresholds) -> tuple[int | None, list[EvidenceItem]]:
    dev = today.latest("oxygen_device")
    flow = today.latest("oxygen_flow")
    f = flow.num if flow is not None else None
    limit = t["low_flow_max_l_min"]
    d = dev.text if dev is not None else None
    if d in POSITIVE_PRESSURE:
        return 4, [_evidence(dev, "positive-pressure ventilation: grade 4")]
    if d in HIGH_FLOW_DEVICES:
        return 3, [_evidence(dev, f"{d.replace('_', ' ')}: grade 3")]
    if d in LOW_FLOW_DEVICES or (d is None and f is not None):
        if f is not None and f > limit:
            return 3, [_evidence(flow, f"oxygen {f:g} L/min > {limit:g} L/min (high-flow): "
                                       "grade 3")]
        if d is None and f is not None and f <= 0:
            return 0, [_evidence(flow, "no supplemental oxygen")]
        src = dev if dev is not None else flow
        return 2, [_evidence(src, f"low-flow oxygen (<= {limit:g} L/min) or blow-by: grade 2")]
    if d == "none":
        return 0, [_evidence(dev, "room air")]
    return None, []


def _crs_day(course: Course, day: int, t: Thresholds) -> CrsDay:
    """The CRS grade as of the end of ward day `day`."""
    today = _Day(course, day, min(end_of_day(day), course.as_of_day))
    temp = today.latest("temperature")
    waiver = today.waiver
    h, h_ev = _hypotension(today, t)
    x, x_ev = _hypoxia(today, t)
    ev: list[EvidenceItem] = []
    fever = None
    if temp is not None and temp.num is not None:
        fever = temp.num >= t["fever_c"]
        op = ">=" if fever else "<"
        ev.append(temp.evidence(f"temperature {temp.num:g} °C {op} {t['fever_c']:g} °C"))
    if waiver:
        ev.append(waiver[1])
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


def _finding(course: Course, day: int, t: Thresholds, today: CrsDay,
             since: int | None) -> Finding:
    missing, extra = list(today.missing), {}
    if today.grade is None and missing:
        end = min(end_of_day(day), course.as_of_day)
        missing = current_prompts(course, day, end, missing, PROMPT_INPUTS, t[GAP_KEY])
        if not missing:
            extra["outside_monitoring_window"] = True
    return Finding(
        rule=RULE.id, status=today.status, since_day=since, grade=today.grade,
        evidence=shared_evidence(today), missing=missing, extra=extra,
        episode_key=episode_key(since),
    )


# A day's grade reads only that day's observations, cut at the end of the day (and the
# course's as-of instant), so the replay runs on the full course (cut_days=False).
CRS = DailyRule(RULE, _crs_day, _finding, cut_days=False)
crs_day = CRS.day  # the CRS grade as of the end of a ward day (iec_hs reads it)
evaluate = CRS.evaluate  # the rule's evaluator by name (tests call it)

RULES: tuple[RuleSpec, ...] = (CRS.spec(),)
