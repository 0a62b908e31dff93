"""Grading shared by the ICAHT and T-ICAHT rules: the early (days 0-30) counting rules
and the late (after day 30) depth tables.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from core.course import Course
from core.rules.base import EvidenceItem, Finding, Status, Thresholds
from core.rules.cytopenia.asof import (
    Cache,
    Counted,
    cached,
    cached_evidence,
    counted,
    end_index,
    window,
)
from core.rules.cytopenia.shared import censor_at
from core.units import ANALYTES


def _day_ranges(days: list[int]) -> str:
    """'3, 5-7, 12' from sorted day numbers."""
    out, start, prev = [], None, None
    for d in days + [None]:  # type: ignore[list-item]
        if start is not None and (d is None or d != prev + 1):
            out.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = None
        if d is not None and start is None:
            start = d
        prev = d
    return ", ".join(out)


def _missing_days(name: str, days: list[int]) -> list[str]:
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

    @cached_property
    def cuts(self) -> tuple[tuple[str, bool, bool], ...]:
        """(threshold key, inclusive, transfusion rule) per row, for _count_window."""
        return tuple((key, inclusive, self.platelets and key == "deep_cut")
                     for key, inclusive, _ in self.rows)


def early(g: EarlyGrading, course: Course, t: Thresholds, cache: Cache, now: float,
          as_of: float) -> Finding:
    start, window_end = 0, int(t["window_end_day"])
    cens, cens_kind = censor_at(course, as_of)
    today = math.floor(now) if math.isfinite(now) else start - 1
    end = min(window_end, today, math.floor(cens) if math.isfinite(cens) else window_end)
    if end >= today:
        return _early_finding(course, t, cache, g, end, today, cens, cens_kind, as_of)
    # The window closed before today: everything it reads is known, so the finding is the
    # same every later day (computed once per course, handed out to each: read-only).
    f = cached(cache, ("closed", end, cens, cens_kind),
               lambda: _early_finding(course, t, cache, g, end, today, cens, cens_kind, as_of))
    return f


def _early_finding(
    course: Course, t: Thresholds, cache: Cache, g: EarlyGrading, end: int, today: int,
    cens: float, cens_kind: str | None, as_of: float,
) -> Finding:
    rule_id, name = g.rule_id, ANALYTES[g.analyte].name
    start, window_end = 0, int(t["window_end_day"])
    c = counted(course, t, cache, g.analyte, g.platelets, start, window_end,
                max(end, start - 1), as_of, g.cuts, ("above", "below"))
    if end == today and end >= start and c.vals[end - start] != c.vals[end - start]:
        end -= 1  # today's sample may simply not be back yet (nan): count up to yesterday
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
    lo_grade = hi_grade = 0
    first_day: int | None = None
    for key, _inclusive, grades in g.rows:
        lo, first = c.counts[key, "above"][n], c.firsts[key, "above"][n]
        hi = c.counts[key, "below"][n]
        extra[f"days_{key}"] = lo
        if hi != lo:
            extra[f"days_{key}_at_most"] = hi
        if first is not None and (first_day is None or first < first_day):
            first_day = first
        for days_key, grade in grades:
            if lo >= t[days_key]:
                lo_grade = max(lo_grade, grade)
            if hi >= t[days_key]:
                hi_grade = max(hi_grade, grade)
    missing: list[str] = []
    if hi_grade != lo_grade:
        unknown_days = [start + d for d in np.flatnonzero(np.isnan(c.vals[:n])).tolist()]
        missing = _missing_days(name, unknown_days)
    key0, incl0, _ = g.rows[0]
    label = f"{name} {'<=' if incl0 else '<'} {t[key0]:g} x 10^9/L"
    evidence = _early_evidence(cache, c, n, start, first_day, label, name)
    if hi_grade != lo_grade:
        extra["grade_at_most"] = hi_grade
        if lo_grade == 0:
            extra["grade_at_least"] = 0
            return Finding(rule=rule_id, status=Status.NOT_EVALUABLE, evidence=evidence,
                           missing=missing, extra=extra)
        extra["grade_is_lower_bound"] = True
    if lo_grade == 0:
        return Finding(rule=rule_id, status=Status.NOT_MET, grade=0, evidence=evidence,
                       missing=missing, extra=extra)
    since = float(start + (first_day or 0))
    return Finding(rule=rule_id, status=Status.MET, grade=lo_grade, since_day=since,
                   evidence=evidence, missing=missing, extra=extra,
                   episode_key=f"since-day-{int(since)}")


def _early_evidence(cache: Cache, c: Counted, n: int, start: int, first_day: int | None,
                    label: str, name: str) -> list[EvidenceItem]:
    """The first counted day's value and the lowest value of the window's first n days."""
    s, out = c.s, []
    if first_day is not None and c.idx[first_day] >= 0:
        out.append(cached_evidence(cache, s, int(c.idx[first_day]),
                                   f"{label} from day {start + first_day}"))
    k = c.lowest[n]
    if k >= 0:
        i = int(c.idx[k])
        if not out or i != int(c.idx[first_day or 0]):
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
    since = float(math.floor(s.day[since_i]))  # type: ignore[index]
    return Finding(rule=rule_id, status=Status.MET, grade=grade, since_day=since, evidence=ev,
                   extra=extra, episode_key=f"since-day-{int(since)}")


EARLY_CHOICES = (
    "Daily value = the lowest result of the calendar day.",
    "Carry forward: a missing day takes the previous measured day's value for at most "
    "carry_forward_days (1); a second consecutive missing day is unknown.",
    "Unknown days are bounded both ways: same grade -> that grade; lower bound >= 1 -> met "
    "with that grade and grade_at_most; lower bound 0 -> not_evaluable listing the days.",
    "Today without a result yet is left out of the count (results may not be back); grades "
    "before day 30 are 'so far' (extra provisional_until_day 30).",
    "Censoring: the window ends on the day of the first progression, next_therapy or death "
    "event (that day included).",
    "A trailing run above threshold shorter than recovery_days at the end of the window is "
    "not counted (recovery not yet shown to fail).",
    "Alarm policy [DESIGN]: warning; severe from grade 3 (escalates_at_grade).",
)
