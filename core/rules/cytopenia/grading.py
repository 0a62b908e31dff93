"""Grading shared by the ICAHT and T-ICAHT rules: the early (days 0-30) counting rules
and the late (after day 30) depth tables.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from core.rules.base import EvidenceItem, Finding, Status, Thresholds
from core.rules.ctcae import Series
from core.rules.cytopenia.counting import (
    bridge,
    censor_at,
    count_days,
    daily_worst,
    states_for,
    supported_mask,
)
from core.rules.cytopenia.replay import (
    Cache,
    cached,
    cached_evidence,
    end_index,
    platelet_tx,
    series_until,
    window,
)
from core.rules.lab_overdue import RULE as OVERDUE_RULE
from core.rules.lab_overdue import MonitoringSchedule
from core.rules.reading import course_index
from core.rules.stretches import configured_thresholds
from core.vocabulary.course import Course
from core.vocabulary.units import ANALYTES


def _day_ranges(days: list[int]) -> str:
    """'3, 5-7, 12' from sorted day numbers."""
    out: list[str] = []
    start: int | None = None
    prev: int | None = None
    for d in [*days, None]:
        if start is not None and prev is not None and (d is None or d != prev + 1):
            out.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = None
        if d is not None and start is None:
            start = d
        prev = d
    return ", ".join(out)


def _prompt_days(name: str, days: list[int]) -> list[str]:
    if not days:
        return []
    label = "day" if len(days) == 1 else "days"
    return [f"{name} result for {label} {_day_ranges(days)} (or record why it was not drawn)"]


@dataclass(frozen=True)
class EarlyGrading:
    """An early rule's grading table and what it counts."""

    rule_id: str
    analyte: str
    # per row: (threshold key, inclusive, ((days key, grade), ...))
    rows: tuple[tuple[str, bool, tuple[tuple[str, int], ...]], ...]
    platelets: bool  # the transfusion rule applies to the deep cut


def early(g: EarlyGrading, course: Course, t: Thresholds, cache: Cache, now: float,
          as_of: float) -> Finding:
    window_end = int(t["window_end_day"])
    cens, cens_kind = censor_at(course, as_of)
    today = math.floor(now) if math.isfinite(now) else -1
    end = min(window_end, today, math.floor(cens) if math.isfinite(cens) else window_end)
    prompt_end = prompt_last_day(course, t, g.analyte, as_of)
    if end >= today:
        return _early_finding(course, t, cache, g, end, today, cens, cens_kind, as_of,
                              prompt_end)
    # The window closed before today: everything it reads is known, so the finding is the
    # same every later day (computed once per course, handed out to each: read-only).
    return cached(cache, ("closed", end, cens, cens_kind, prompt_end),
                  lambda: _early_finding(course, t, cache, g, end, today, cens, cens_kind,
                                         as_of, prompt_end))


def prompt_last_day(course: Course, t: Thresholds, analyte: str, as_of: float) -> int:
    """The last day a missing result is worth a prompt to log it (or why not): the end of
    the inpatient monitoring phase, i.e. lab_overdue's schedule for the analyte (site
    settings included), or the day of discharge if that comes first. The course knows a
    discharge by its last_followup event (the importer marks the patient discharged by it)."""
    sched = MonitoringSchedule.from_thresholds(configured_thresholds(course, OVERDUE_RULE))
    if sched.every.get(analyte, 0) <= 0:
        return -1
    last = sched.last_day
    for kind, day in course_index(course).events:
        if day > as_of:
            break
        if kind == "last_followup":
            last = min(last, math.floor(day))
            break
    return last


def _grade(g: EarlyGrading, t: Thresholds, counts: dict[str, int]) -> int:
    grade = 0
    for key, _inclusive, grades in g.rows:
        for days_key, row_grade in grades:
            if counts[key] >= t[days_key]:
                grade = max(grade, row_grade)
    return grade


def _early_finding(
    course: Course, t: Thresholds, cache: Cache, g: EarlyGrading, end: int, today: int,
    cens: float, cens_kind: str | None, as_of: float, prompt_end: int,
) -> Finding:
    rule_id, name = g.rule_id, ANALYTES[g.analyte].name
    start, window_end = 0, int(t["window_end_day"])
    s = series_until(course, g.analyte, as_of)
    raw, idx = daily_worst(s, start - 1, max(end, start - 1))
    if end == today and end >= start and raw[-1] != raw[-1]:
        end -= 1  # today's sample may simply not be back yet: count up to yesterday
    n = end - start + 1
    extra: dict[str, object] = {"window": f"days {start}-{window_end}"}
    if cens_kind is not None and cens <= window_end:
        extra["censored"] = {"event": cens_kind, "day": cens}
    elif end < window_end:
        extra["provisional_until_day"] = window_end
        extra["so_far_through_day"] = end
    if n <= 0:
        extra["window_opens_day"] = start
        return Finding(rule=rule_id, status=Status.NOT_EVALUABLE, extra=extra)
    filled = bridge(raw[:n + 1], int(t["bridge_days"]))[1:]
    raw, idx = raw[1:n + 1], idx[1:n + 1]
    measured = ~np.isnan(raw)
    unmeasured = [start + d for d in np.flatnonzero(~measured).tolist()]
    asked = [d for d in unmeasured if d <= prompt_end]
    extra["measured_days"] = int(measured.sum())
    extra["window_days"] = n
    if not measured.any():
        return Finding(rule=rule_id, status=Status.NOT_EVALUABLE, extra=extra,
                       missing=_prompt_days(name, asked)
                       or [f"an {name} result in days {start}-{end}"])
    supported = None
    if g.platelets:
        tx = [d for d in platelet_tx(course) if d <= as_of]
        supported = supported_mask(start, n, np.floor(np.asarray(tx)).astype(int),
                                   int(t["transfusion_window_days"]))
    recovery, longest = int(t["recovery_days"]), bool(t["count_longest_run"])
    in_phase = np.zeros(n, dtype=bool)
    in_phase[[d - start for d in asked]] = True
    # "low" = at the first cut (e.g. ANC 0.5), or as deep as bridged if deeper: never above
    # the bridged estimate, so the bounds hold the estimate between them
    key0, incl0, _ = g.rows[0]
    low = np.fmin(filled, t[key0] if incl0 else np.nextafter(t[key0], -np.inf))
    variants = {  # daily values: as bridged; unmeasured days high / low; same in phase only
        "est": filled,
        "unmeasured_high": np.where(measured, raw, np.inf),
        "unmeasured_low": np.where(measured, raw, low),
        "phase_high": np.where(in_phase, np.inf, filled),
        "phase_low": np.where(in_phase, low, filled),
    }
    counts: dict[str, dict[str, int]] = {v: {} for v in variants}
    first_day: int | None = None
    for key, inclusive, _grades in g.rows:
        tx_rule = supported if g.platelets and key == "deep_cut" else None
        for v, vals in variants.items():
            days, first = count_days(states_for(vals, t[key], inclusive, tx_rule), recovery,
                                     "above", longest)
            counts[v][key] = days
            if v == "est" and first is not None and (first_day is None or first < first_day):
                first_day = first
    grade = _grade(g, t, counts["est"])
    lo, hi = _grade(g, t, counts["unmeasured_high"]), _grade(g, t, counts["unmeasured_low"])
    for key, _inclusive, _grades in g.rows:
        extra[f"days_{key}"] = counts["est"][key]
        if counts["unmeasured_low"][key] != counts["est"][key]:
            extra[f"days_{key}_if_unmeasured_low"] = counts["unmeasured_low"][key]
    extra["grade_if_unmeasured_low"] = hi
    extra["grade_if_unmeasured_high"] = lo
    label = f"{name} {'<=' if incl0 else '<'} {t[key0]:g} x 10^9/L"
    summary = f"grade {grade} · {int(measured.sum())} of {n} days measured"
    if hi > grade:
        summary += f" · at most grade {hi} if the unmeasured days were low ({label})"
    if lo < grade:
        summary += f" · grade {lo} if the unmeasured days were not low"
    extra["summary"] = summary
    missing: list[str] = []
    if _grade(g, t, counts["phase_high"]) != _grade(g, t, counts["phase_low"]):
        missing = _prompt_days(name, asked)  # inpatient days that could change the grade
    evidence = _early_evidence(cache, s, raw, idx, t[key0], incl0, start, first_day, label,
                               name)
    if grade == 0:
        return Finding(rule=rule_id, status=Status.NOT_MET, grade=0, evidence=evidence,
                       missing=missing, extra=extra)
    since = float(start + (first_day or 0))
    return Finding(rule=rule_id, status=Status.MET, grade=grade, since_day=since,
                   evidence=evidence, missing=missing, extra=extra,
                   episode_key=f"since-day-{int(since)}")


def _early_evidence(cache: Cache, s: Series, raw: np.ndarray, idx: np.ndarray, cut: float,
                    inclusive: bool, start: int, first_day: int | None, label: str,
                    name: str) -> list[EvidenceItem]:
    """The first measured result below the cut from the first counted day on, and the
    lowest measured result of the window so far."""
    out: list[EvidenceItem] = []
    first_i = -1
    if first_day is not None:
        below = raw[first_day:] <= cut if inclusive else raw[first_day:] < cut
        hits = np.flatnonzero(below)
        if len(hits):
            first_i = int(idx[first_day + int(hits[0])])
            out.append(cached_evidence(cache, s, first_i,
                                       f"{label} from day {start + first_day}"))
    if (~np.isnan(raw)).any():
        i = int(idx[int(np.nanargmin(raw))])
        if i != first_i:
            out.append(cached_evidence(cache, s, i, f"lowest {name} in the window so far"))
    return out


def _late_window(t: Thresholds, end_key: str | None, now: float, cens: float,
                 cens_kind: str | None) -> tuple[int, float, dict[str, object]]:
    start = int(t["late_start_day"])
    end_limit = t[end_key] if end_key else math.inf
    last = min(math.floor(now) if math.isfinite(now) else -math.inf, end_limit,
               math.floor(cens) if math.isfinite(cens) else math.inf)
    extra: dict[str, object] = {"window": f"days {start}-" + (f"{int(end_limit)}"
                                                             if end_key else "")}
    if cens_kind is not None:
        extra["censored"] = {"event": cens_kind, "day": cens}
    elif end_key and (not math.isfinite(now) or now < end_limit):
        extra["provisional_until_day"] = int(end_limit)
    return start, last, extra


Deepen = Callable[[Course, Thresholds, Cache, int, float, float, dict[str, object]], int]


@dataclass(frozen=True)
class LateGrading:
    """A late rule's depth table: grade g when at least min_values results of the window are
    below row g's cut."""

    rule_id: str
    analyte: str
    end_key: str | None  # threshold key of the window's last day (None: no end day)
    cuts: tuple[tuple[str, bool], ...]  # per grade from 1: (threshold key, inclusive: <= or <)
    lists_results: bool  # a not evaluable finding shows the window's results as evidence
    # the grade past the last row's, from (course, t, cache, start, last, as_of, extra)
    deepen: Deepen | None = None


def late(g: LateGrading, course: Course, t: Thresholds, cache: Cache, now: float,
         as_of: float) -> Finding:
    rule_id, name = g.rule_id, ANALYTES[g.analyte].name
    start, last, extra = _late_window(t, g.end_key, now, *censor_at(course, as_of))
    if last < start:
        extra["window_opens_day"] = start
        return Finding(rule=rule_id, status=Status.NOT_EVALUABLE, extra=extra)
    w = window(course, t, cache, g.analyte, "late_start_day", g.cuts)
    s, i0 = w.s, w.i0
    i1 = max(i0, end_index(s, last, as_of))
    need = int(t["min_values"])
    extra["results_in_window"] = i1 - i0
    grade, since_i = 0, None
    for row, (key, _inclusive) in enumerate(g.cuts, 1):
        hits = w.hits[key]
        if bisect.bisect_left(hits, i1) >= need:  # hits in the window
            grade = row
            since_i = hits[0] if since_i is None else since_i
    if grade == len(g.cuts) and g.deepen is not None:
        grade = g.deepen(course, t, cache, start, last, as_of, extra)
    if grade == 0 and i1 - i0 < need:
        article = "an" if name[0] in "AEIOU" else "a"
        return Finding(rule=rule_id, status=Status.NOT_EVALUABLE, extra=extra,
                       evidence=[cached_evidence(cache, s, i, "result after day 30")
                                 for i in range(i0, i1)] if g.lists_results else [],
                       missing=[f"{'a repeat' if i1 > i0 else article} {name} result after "
                                f"day {start - 1}"])
    if grade == 0:
        return Finding(rule=rule_id, status=Status.NOT_MET, grade=0, extra=extra,
                       evidence=[cached_evidence(cache, s, w.lowest[i1], "lowest after day 30")])
    key, inclusive = g.cuts[min(grade, len(g.cuts)) - 1]
    why = f"{'<=' if inclusive else '<'} {t[key]:g} x 10^9/L after day 30"
    ev = [cached_evidence(cache, s, i, why) for i in w.hits[key][:need]]
    since = float(math.floor(s.day[since_i]))
    return Finding(rule=rule_id, status=Status.MET, grade=grade, since_day=since, evidence=ev,
                   extra=extra, episode_key=f"since-day-{int(since)}")


EARLY_CHOICES = (
    "Daily value = the lowest result of the calendar day (public grader, Liang/Fred Hutch "
    "automatedicahtgrading, criteria §6.1 third pass).",
    "Gaps between values (outpatient counts 2-3 times a week): up to bridge_days (7) "
    "unmeasured days between two results are filled by linear interpolation, and the last "
    "result is carried up to bridge_days after it (the grader's na.approx maxgap 7, rule 2); "
    "longer gaps stay unknown and count as not low. Only results of days up to the window's "
    "last day are used.",
    "Recovery = first of recovery_days (3) consecutive days above the threshold; shorter "
    "interruptions are counted into the period (grader: exceedances joined across gaps of "
    "<= 2 days; criteria §6.1).",
    "Cumulative vs longest run (site setting count_longest_run): 0 (default, criteria §6.1 / "
    "T-ICAHT footnote) counts the cumulative days of every period in the window; 1 counts "
    "only the longest period, as the public grader does.",
    "A grade is given whenever at least one day of the window is measured; missing days do "
    "not make it not_evaluable. extra: measured_days of window_days, "
    "grade_if_unmeasured_low (every unmeasured day at the first cut, e.g. ANC 0.5, or deeper "
    "where bridged) and grade_if_unmeasured_high (every unmeasured day above it) bound it; "
    "summary states them.",
    "Prompts to log a missing result (or why it was not drawn) only for unmeasured days of "
    "the inpatient monitoring phase (lab_overdue's schedule for the analyte, ended earlier "
    "by a discharge: the last_followup event) and only when those days could change the "
    "grade; never for outpatient days.",
    "Today without a result yet is left out of the count (results may not be back); grades "
    "before day 30 are 'so far' (extra provisional_until_day 30).",
    "Censoring: the window ends on the day of the first progression, next_therapy or death "
    "event (that day included). The grader also ends it at last follow-up and calls a "
    "never-recovered period from days 0-3 grade 4 at an early death; neither is done here.",
    "A trailing run above threshold shorter than recovery_days at the end of the window is "
    "not counted (recovery not yet shown to fail).",
    "Alarm policy [DESIGN]: warning; severe from grade 3 (escalates_at_grade).",
)
