"""ASTCT 2019 ICANS grade: ICE (age >= 12) or CAPD (< 12) and the other domains (§5.2-5.4).

Grade = the most severe domain on the evaluated ward day, using the latest observation of each
domain that day. Age is the patient's age in the calendar year of the evaluated day (only the
birth year is stored).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
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
    Threshold,
    Thresholds,
    shared_evidence,
)
from core.rules.monitoring import GAP_KEY, current_prompts, gap_threshold
from core.rules.reading import Obs, ObsSeries, course_index, end_of_day, latest_observation
from core.rules.stretches import DailyRule, day_series, episode_key
from core.vocabulary.course import Course
from core.vocabulary.units import Evidence

RULE = Rule(
    id="icans_grade",
    title="ICANS grade (ASTCT 2019, ICE or CAPD)",
    version="1.0",
    citation=Citation(
        source="Lee et al., Biol Blood Marrow Transplant 2019;25(4):625-638 (ASTCT consensus); "
               "CAPD: Traube et al., Crit Care Med 2014;42(3):656-663",
        section="ICE score and ICANS grading tables; criteria.md §5.2, §5.3, §5.4",
        doi="10.1016/j.bbmt.2018.12.758",
    ),
    evidence=Evidence.C2,
    severity=Severity.WARNING,
    graded=True,
    escalates_at_grade=3,
    short_name="ICANS", syndrome="graded", episode_kind="ICANS",
    thresholds=(
        Threshold("ice_min_age_years", 12, "years", Evidence.C2,
                  "ICE score from this age; CAPD below it", ">="),
        Threshold("ice_normal", 10, "points", Evidence.C2, "ICE score at or above: normal", ">="),
        Threshold("ice_grade1_min", 7, "points", Evidence.C2,
                  "ICE from this score up to 9 is grade 1", ">="),
        Threshold("ice_grade2_min", 3, "points", Evidence.C2,
                  "ICE from this score up to 6 is grade 2; below it grade 3", ">="),
        Threshold("capd_delirium", 9, "points", Evidence.C,
                  "CAPD at or above: grade 3 (delirium cut-point)", ">="),
        Threshold("capd_symptom_min", 1, "points", Evidence.C2,
                  "CAPD from this score up to the cut-point is grade 1 (awakens spontaneously) "
                  "or 2 (awakens to voice)", ">="),
        gap_threshold(),
    ),
    inputs=("ice_score", "capd_score", "unable_to_assess", "consciousness", "seizure",
            "motor_weakness", "cerebral_edema", "birth_year"),
    choices=(
        "Current grade = the latest observation of each domain on the evaluated ward day.",
        "Age = calendar year of the evaluated day minus birth year (day precision is not "
        "stored); without a birth year the recorded tool is used (ICE first).",
        "If only the other tool is recorded (ICE for a child, CAPD for an adult) it is used "
        "and the evidence says so.",
        "Consciousness 'spontaneous' is read as normal alertness (domain grade 0): grade 1 "
        "needs an ICE 7-9 or CAPD 1-8, as in the §5.3 worked example.",
        "'Unable to perform ICE' in a patient who is not unarousable = ICE 0 while awake "
        "(global aphasia) = grade 3; 'unable to perform CAPD' = grade 4 (§5.4).",
        "Seizure, motor weakness and cerebral oedema are event observations: absent unless "
        "logged that day. An ICE/CAPD result (or 'unable to assess') is required to call "
        "grade 0.",
        "With ICE < 10 or CAPD >= 1 but consciousness not logged, the grade is a lower bound "
        "(met, consciousness listed as missing).",
        "Tremor/myoclonus and intracranial haemorrhage are outside ICANS grading (§5.3) and "
        "are not inputs; grade 5 (death) is clinician-entered.",
        "After the bedside monitoring phase [DESIGN]: a 'record today's ...' prompt is "
        "dropped when that input was charted before but not in the last monitoring_gap_days "
        "(3) days; a day left without a grade and without prompts is not_evaluable with empty "
        "missing and extra outside_monitoring_window. Charting it again restores the prompt.",
        "Alarm policy [DESIGN]: warning; severe from grade 3 (escalates_at_grade).",
    ),
    description="ASTCT consensus ICANS grade 0-4 for the evaluated day.",
)

LOC_GRADE = {"spontaneous": 0, "voice": 2, "tactile": 3, "unarousable": 4}
SEIZURE_GRADE = {"none": 0, "rapidly_resolving": 3, "prolonged_or_repetitive": 4}
EDEMA_GRADE = {"none": 0, "focal": 3, "diffuse": 4}

MISSING_ICE = "record today's ICE score (or 'unable to assess')"
MISSING_CAPD = "record today's CAPD score (or 'unable to assess')"
MISSING_LOC = "log today's level of consciousness"
MISSING_AGE = "record the patient's birth year (ICE from age 12, CAPD under 12)"


@dataclass
class IcansDay:
    grade: int | None
    evidence: list[EvidenceItem] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    tool: str | None = None

    @property
    def status(self) -> Status:
        if self.grade is None:
            return Status.NOT_EVALUABLE
        return Status.MET if self.grade >= 1 else Status.NOT_MET


def _is_child(course: Course, day: int, t: Thresholds) -> bool | None:
    by = course.patient.birth_year
    if by is None:
        return None
    when = course.patient.infusion_date + timedelta(days=day)
    return when.year - by < t["ice_min_age_years"]


def _ice_grade(ice: Obs, t: Thresholds) -> tuple[int, str]:
    s = ice.num or 0.0
    if s >= t["ice_normal"]:
        return 0, f"ICE {s:g}/10: normal"
    if s >= t["ice_grade1_min"]:
        return 1, f"ICE {s:g} ({t['ice_grade1_min']:g}-9): grade 1"
    if s >= t["ice_grade2_min"]:
        return 2, f"ICE {s:g} ({t['ice_grade2_min']:g}-{t['ice_grade1_min'] - 1:g}): grade 2"
    return 3, f"ICE {s:g} (<= {t['ice_grade2_min'] - 1:g}): grade 3"


# The observation kinds a day's grade reads (the latest of each logged that day), in the order
# `_grade` takes them.
KINDS = ("ice_score", "capd_score", "unable_to_assess", "consciousness", "seizure",
         "motor_weakness", "cerebral_edema")


def _icans_day(course: Course, day: int, t: Thresholds) -> IcansDay:
    """The ICANS grade as of the end of ward day `day`."""
    end, start = min(end_of_day(day), course.as_of_day), float(day)
    today = [latest_observation(course, kind, end, start) for kind in KINDS]
    return _grade(*today, child=_is_child(course, day, t), t=t)


def _grade(ice: Obs | None, capd: Obs | None, unable: Obs | None, loc: Obs | None,
           seizure: Obs | None, motor: Obs | None, edema: Obs | None, *, child: bool | None,
           t: Thresholds) -> IcansDay:
    """The day's grade from the latest observation of each of KINDS that day."""
    ev: list[EvidenceItem] = []
    missing: list[str] = []
    if child is None and ice is None and capd is None:
        missing.append(MISSING_AGE)
    use_capd = (child is True and (capd is not None or ice is None)) or (
        child is None and ice is None and capd is not None) or (
        child is False and ice is None and capd is not None)
    tool = "CAPD" if use_capd else "ICE"

    enceph: int | None = None
    needs_loc = False
    if unable is not None and unable.is_yes:
        enceph = 4 if use_capd else 3
        ev.append(unable.evidence(
            "unable to perform CAPD: grade 4" if use_capd
            else "unable to perform ICE while not unarousable (ICE 0): grade 3"))
    elif use_capd and capd is not None:
        s = capd.num or 0.0
        if s >= t["capd_delirium"]:
            enceph, why = 3, f"CAPD {s:g} >= {t['capd_delirium']:g}: grade 3"
        elif s >= t["capd_symptom_min"]:
            enceph, why = 1, f"CAPD {s:g} (< {t['capd_delirium']:g}): grade 1 or more"
            needs_loc = True
        else:
            enceph, why = 0, f"CAPD {s:g}: no delirium symptoms"
        if child is False:
            why += " (CAPD used: no ICE recorded for a patient aged 12 or over)"
        ev.append(capd.evidence(why))
    elif ice is not None:
        enceph, why = _ice_grade(ice, t)
        needs_loc = enceph >= 1
        if child is True:
            why += " (ICE used: no CAPD recorded for a child under 12)"
        ev.append(ice.evidence(why))

    others: list[int] = []
    if loc is not None and loc.text in LOC_GRADE:
        g = LOC_GRADE[loc.text]
        others.append(g)
        ev.append(loc.evidence(f"awakens {'to ' if loc.text in ('voice', 'tactile') else ''}"
                               f"{loc.text}: grade {g}" if g else "awake, alert"))
    elif needs_loc:
        missing.append(MISSING_LOC)
    for o, table, label in ((seizure, SEIZURE_GRADE, "seizure"),
                            (edema, EDEMA_GRADE, "cerebral oedema")):
        if o is not None and table.get(o.text or "", 0):
            g = table[o.text or ""]
            others.append(g)
            ev.append(o.evidence(f"{label} {(o.text or '').replace('_', ' ')}: grade {g}"))
    if motor is not None and motor.is_yes:
        others.append(4)
        ev.append(motor.evidence("deep focal motor weakness: grade 4"))

    worst_other = max(others, default=0)
    if enceph is None:
        missing.insert(0, MISSING_CAPD if (child is True) else MISSING_ICE)
        if worst_other >= 1:
            return IcansDay(worst_other, ev, missing, tool)
        return IcansDay(None, ev, missing, tool)
    return IcansDay(max(enceph, worst_other), ev, missing, tool)


def _finding(course: Course, day: int, t: Thresholds, today: IcansDay,
             since: int | None) -> Finding:
    missing = list(today.missing)
    extra: dict[str, Any] = {"tool": today.tool}
    if today.grade is None and missing:
        end = min(end_of_day(day), course.as_of_day)
        missing = current_prompts(course, day, end, missing, PROMPT_INPUTS, t[GAP_KEY])
        if not missing or missing == [MISSING_AGE]:
            missing = []
            extra["outside_monitoring_window"] = True
    return Finding(
        rule=RULE.id, status=today.status, since_day=since, grade=today.grade,
        evidence=shared_evidence(today), missing=missing, extra=extra,
        episode_key=episode_key(since),
    )


def replay(course: Course, t: Thresholds, days: Sequence[int]) -> list[Finding]:
    """The findings as of the end of each of `days` in one pass: each day's latest
    observations located for all days at once, and a day's grade computed once per set of
    observations and age group (days with nothing logged share one)."""
    idx = course_index(course)
    series = [idx.obs.get(kind) for kind in KINDS]
    graded: dict[tuple, IcansDay] = {}

    def results(ds: list[int], ends: list[float]) -> list[IcansDay]:
        starts, cut = np.asarray(ds, dtype=float), np.asarray(ends, dtype=float)
        cols = []
        for s in series:  # position of the kind's latest observation that day, -1 if none
            if s is None:
                cols.append([-1] * len(ds))
                continue
            on = np.asarray(s.days, dtype=float)
            j = np.searchsorted(on, cut, side="right") - 1
            cols.append(np.where((j >= 0) & (on[np.maximum(j, 0)] >= starts), j, -1).tolist())
        out = []
        for d, js in zip(ds, zip(*cols, strict=True), strict=True):
            child = _is_child(course, d, t)
            found = graded.get((js, child))
            if found is None:
                today = [None if j < 0 or s is None else _observation(kind, s, j)
                         for kind, s, j in zip(KINDS, series, js, strict=True)]
                found = graded[js, child] = _grade(*today, child=child, t=t)
            out.append(found)
        return out

    return [_finding(course, day, t, today, since)
            for day, today, since in day_series(course, days, results)]


def _observation(kind: str, s: ObsSeries, j: int) -> Obs:
    num = s.nums[j]
    return Obs(kind, s.days[j], None if num != num else num, s.texts[j])


PROMPT_INPUTS = {
    MISSING_ICE: ("ice_score", "capd_score", "unable_to_assess"),
    MISSING_CAPD: ("ice_score", "capd_score", "unable_to_assess"),
    MISSING_LOC: ("consciousness",),
}


ICANS = DailyRule(RULE, _icans_day, _finding)  # its evaluate; the replay is the one above
evaluate = ICANS.evaluate  # the rule's evaluator by name (tests call it)

RULES: tuple[RuleSpec, ...] = (RuleSpec(RULE, evaluate, replay),)
