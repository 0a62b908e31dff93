"""As-of evaluation and one-pass replay of the haematotoxicity rules.

Each rule is one function of (course, thresholds, cache, now, as_of) that reads
nothing after `as_of`. `evaluate` calls it with the course's own instant; the replay hook
calls it on the full course as of the end of each day, without building day views. What
depends only on complete days (daily grids and their counts, hit lists) is built once per
course from every result, kept in the rule's per-course `cache`, and read by prefix, so a
day costs a few lookups plus its Finding.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.rules.base import EvidenceItem, Finding, Replayer, Rule, RuleSpec, Thresholds
from core.rules.ctcae import Series, current_day, series_of, series_of_full
from core.rules.cytopenia.counting import (
    carry_forward,
    count_prefixes,
    daily_worst,
    states_for,
    supported_mask,
)
from core.rules.reading import END_OF_DAY, course_index, lab_series
from core.rules.stretches import memo, thresholds_key
from core.vocabulary.course import Course

Cache = dict[object, Any]
AsOfEvaluator = Callable[[Course, Thresholds, Cache, float, float], Finding]


def _rule_cache(course: Course, t: Thresholds, rule_id: str) -> Cache:
    """The rule's per-course cache under thresholds `t` (one memo entry, fetched once per
    evaluation or replay, so the day loop does not hash the thresholds again)."""
    return memo(course, ("cw_cyto", rule_id, thresholds_key(t)), dict)


def cached(cache: Cache, key: object, compute: Callable[[], Any]) -> Any:
    try:
        return cache[key]
    except KeyError:
        value = cache[key] = compute()
        return value


def cached_evidence(cache: Cache, s: Series, i: int, why: str) -> EvidenceItem:
    """s.evidence(i, why), built once per course: the findings of different days share it,
    as the copies of a cached finding do (each finding still gets its own list)."""
    key = ("evidence", s.analyte, i, why)
    item = cache.get(key)
    if item is None:
        item = cache[key] = s.evidence(i, why)
    return item


def rule_spec(rule: Rule, as_of_evaluator: AsOfEvaluator) -> RuleSpec:
    """The rule with `as_of_evaluator` as its evaluator (at the course's own instant) and as
    its replay hook (as of the end of each day)."""

    def evaluate(course: Course, t: Thresholds) -> Finding:
        return as_of_evaluator(course, t, _rule_cache(course, t, rule.id), current_day(course),
                               course.as_of_day)

    evaluate.__name__ = f"evaluate_{rule.id}"
    return RuleSpec(rule, evaluate, _replayer(rule.id, as_of_evaluator))


def _replayer(rule_id: str, as_of_evaluator: AsOfEvaluator) -> Replayer:
    """A replay hook: `as_of_evaluator` as of the end of each day, on the full course."""

    def replay(course: Course, t: Thresholds, days: Sequence[int]) -> list[Finding]:
        cache = _rule_cache(course, t, rule_id)
        out = []
        for day in days:
            as_of = min(day + END_OF_DAY, course.as_of_day)  # the day view's as_of_day
            out.append(as_of_evaluator(course, t, cache, as_of, as_of))
        return out

    return replay


def full_series(course: Course, analyte: str) -> Series:
    """Every result of the analyte in the course, whatever the as-of instant."""
    src = lab_series(course, analyte)
    return series_of(course, analyte) if src is None else series_of_full(course, src)


def series_until(course: Course, analyte: str, as_of: float) -> Series:
    """The analyte's results with day <= as_of (views into the per-course arrays)."""
    s = full_series(course, analyte)
    k = 0 if s.src is None else s.src.count(as_of)
    if k >= len(s):
        return s
    return Series(analyte, s.day[:k], s.value[:k], s.ref_low[:k], s.ref_high[:k], s.src)


def end_index(s: Series, last: float, as_of: float) -> int:
    """Index after the last result of `s` with floor(day) <= last and day <= as_of."""
    if s.src is None:
        return 0
    i1 = s.src.count(as_of)
    if last < math.inf:
        i1 = min(i1, bisect.bisect_left(s.src.days, math.floor(last) + 1.0))
    return i1


@dataclass(frozen=True)
class Window:
    """An analyte's results from a window's first day on, with lookups built once per course:
    the results of the window as known at any instant are s[i0:i1] (results are in time
    order), so a day reads them with one bisection (`end_index`)."""

    s: Series  # every result of the analyte in the course
    i0: int  # index of the first result of the window
    hits: dict[str, list[int]]  # threshold key -> indices (>= i0) of results below it
    lowest: list[int]  # lowest[i1]: index of the lowest of s[i0:i1] as np.argmin, -1 if none


def window(course: Course, t: Thresholds, cache: Cache, analyte: str, start_key: str,
           cuts: tuple[tuple[str, bool], ...]) -> Window:
    """The window from day t[start_key] on, with the hits of each (threshold key, inclusive:
    <= or <) of `cuts`, computed once per course and thresholds."""

    def build() -> Window:
        s = full_series(course, analyte)
        i0 = 0 if s.src is None else bisect.bisect_left(s.src.days, int(t[start_key]))
        v = s.value[i0:]
        hits = {key: (i0 + np.flatnonzero(v <= t[key] if inclusive else v < t[key])).tolist()
                for key, inclusive in cuts}
        lowest, best, best_v = [-1] * (i0 + 1), -1, math.nan
        for i, x in enumerate(v.tolist(), i0):
            # np.argmin: the first minimum, or the first nan once there is one
            if best < 0 or (best_v == best_v and (x != x or x < best_v)):
                best, best_v = i, x
            lowest.append(best)
        return Window(s, i0, hits, lowest)

    return cached(cache, "window", build)


def platelet_tx(course: Course) -> list[float]:
    """Days of every platelet transfusion in the course (treatments and transfusion
    observations of platelets, whatever the as-of instant), sorted."""

    def build() -> list[float]:
        idx = course_index(course)
        days = [d for d in idx.drugs.get("platelet_transfusion", ()) if d == d]
        obs = idx.obs.get("transfusion")
        if obs is not None:
            days += [d for d, text in zip(obs.days, obs.texts, strict=True)
                     if text == "platelets" and d == d]
        return sorted(days)

    return memo(course, ("cw_cyto_platelet_tx",), build)


def _is_known_through(course: Course, analyte: str, platelets: bool, last: int,
                      as_of: float) -> bool:
    """Whether every result (and platelet transfusion) of days <= last is known by as_of."""
    src = lab_series(course, analyte)
    if src is not None and src.count(as_of) < bisect.bisect_left(src.days, last + 1.0):
        return False
    if platelets:
        tx = platelet_tx(course)
        return bisect.bisect_right(tx, as_of) >= bisect.bisect_left(tx, last + 1.0)
    return True


@dataclass(frozen=True)
class Counted:
    """Daily values of a window (day `first` on) and the counting machine's result for
    every prefix: index n of a list = the window's first n days."""

    s: Series  # the results counted (for evidence: row indices are the same in any cut)
    vals: np.ndarray  # carried-forward daily worst (nan = unknown day)
    idx: np.ndarray  # the series row of each day's value (-1 = none)
    counts: dict[tuple[str, str], list[int]]  # (threshold key, unknown rule) -> days counted
    firsts: dict[tuple[str, str], list[int | None]]  # -> first counted day index
    lowest: list[int]  # day index of the lowest value (first if tied; -1 if none)


def _count_window(s: Series, t: Thresholds, first: int, last: int,
                  cuts: tuple[tuple[str, bool, bool], ...], unknowns: tuple[str, ...],
                  tx_days: np.ndarray | None) -> Counted:
    """Count days first..last for each (threshold key, inclusive, transfusion rule) of `cuts`
    and each unknown-day rule; the day before `first` is read for carrying forward only."""
    vals, idx = daily_worst(s, first - 1, last)
    vals, idx = carry_forward(vals, idx, int(t["carry_forward_days"]))
    vals, idx = vals[1:], idx[1:]
    supported = None
    if tx_days is not None:
        supported = supported_mask(first, len(vals), tx_days, int(t["transfusion_window_days"]))
    recovery = int(t["recovery_days"])
    counts: dict[tuple[str, str], list[int]] = {}
    firsts: dict[tuple[str, str], list[int | None]] = {}
    for key, inclusive, transfusions in cuts:
        st = states_for(vals, t[key], inclusive, supported if transfusions else None)
        for unknown in unknowns:
            counts[key, unknown], firsts[key, unknown] = count_prefixes(st, recovery, unknown)
    lowest, best = [-1], -1
    for d, v in enumerate(vals.tolist()):
        if v == v and (best < 0 or v < vals[best]):
            best = d
        lowest.append(best)
    return Counted(s, vals, idx, counts, firsts, lowest)


def counted(course: Course, t: Thresholds, cache: Cache, analyte: str, platelets: bool,
            first: int, window_last: int, last: int, as_of: float,
            cuts: tuple[tuple[str, bool, bool], ...], unknowns: tuple[str, ...]) -> Counted:
    """_count_window over days first..last as known at as_of (last <= window_last).

    When every result and transfusion of those days is known, the counts over the whole
    window are built once per course from all results and read by prefix: the counting only
    looks back, so the first n days' counts do not depend on later days.
    """
    if _is_known_through(course, analyte, platelets, last, as_of):
        def build() -> Counted:
            s = full_series(course, analyte)
            tx = np.floor(np.asarray(platelet_tx(course))).astype(int) if platelets else None
            return _count_window(s, t, first, window_last, cuts, unknowns, tx)

        return cached(cache, "counted", build)
    tx = None
    if platelets:
        tx_all = platelet_tx(course)
        tx = np.floor(np.asarray(tx_all[:bisect.bisect_right(tx_all, as_of)])).astype(int)
    return _count_window(series_until(course, analyte, as_of), t, first, last, cuts,
                         unknowns, tx)
