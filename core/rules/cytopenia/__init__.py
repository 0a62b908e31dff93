"""Haematotoxicity rules: ICAHT (§6.1), T-ICAHT (§6.3), prolonged cytopenia (§6.2) and
CAR-HEMATOTOX (§7) of criteria.md.

Counting model (criteria §6.1/§6.3, implementation [DESIGN]): one value per day (the day's
lowest, i.e. worst, result); a missing day takes the previous day's measured value for at
most `carry_forward_days` day(s), otherwise the day is unknown. Days are walked through a
small state machine: a neutropenic/thrombocytopenic period starts on the first day at or
below the threshold and lasts until recovery, the first of `recovery_days` consecutive days
above it; interruptions shorter than that are counted in. For platelets below 20, a day
within `transfusion_window_days` after a platelet transfusion is never a recovery day.

Early grades use every day 0-30; an unknown day is bounded both ways (counted as above and
as below): equal grades are reported as such, a lower bound >= 1 is reported as met with
`grade_at_most`, otherwise the rule is not evaluable and lists the days to log.

Replay (backtesting) runs the same as-of functions as `evaluate`, once per day on the full
course, reading per-course tables by prefix (see "As-of evaluation and one-pass replay").
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from core.course import Course
from core.rules.base import (
    Citation,
    EvidenceItem,
    Finding,
    Replayer,
    Rule,
    RuleSpec,
    Severity,
    Status,
    Threshold,
    Thresholds,
)
from core.rules.common import (
    END_OF_DAY,
    course_index,
    lab_series,
    memo,
    observations_until,
    thresholds_key,
    treatment_days,
)
from core.rules.ctcae import Series, current_day, series_of, series_of_full
from core.units import ANALYTES, Evidence

VERSION = "1.0"
C, C2, U, D = Evidence.C, Evidence.C2, Evidence.UNCONFIRMED, Evidence.DESIGN
CENSOR_EVENTS = ("progression", "next_therapy", "death")

ICAHT_CITE = ("Rejeski et al., EHA/EBMT ICAHT consensus grading, Blood 2023;142(10):865-877",
              "10.1182/blood.2023020578")
TICAHT_CITE = ("Rejeski et al., T-ICAHT grading, Blood 2025", "10.1182/blood.2025028833")
HT_CITE = ("Rejeski et al., CAR-HEMATOTOX, Blood 2021;138(24):2499-2513",
           "10.1182/blood.2020010543")


def _th(key: str, value: float, unit: str, ev: Evidence, description: str,
        op: str = "") -> Threshold:
    return Threshold(key=key, value=value, unit=unit, evidence=ev, description=description,
                     op=op)


# ---------------------------------------------------------------------------------------------
# Shared pieces: daily grid, counting machine, censoring, transfusions
# ---------------------------------------------------------------------------------------------

BELOW, ABOVE, SUPPORTED, UNKNOWN = 1, 0, 2, -1


def daily_worst(s: Series, first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
    """(value, row index) of the lowest result on each day first..last (nan / -1 if none)."""
    n = last - first + 1
    vals = np.full(max(n, 0), np.nan)
    idx = np.full(max(n, 0), -1, dtype=int)
    if n <= 0 or len(s) == 0:
        return vals, idx
    days = np.floor(s.day).astype(int) - first
    for i in np.flatnonzero((days >= 0) & (days < n)):
        d = days[i]
        v = s.value[i]
        if idx[d] < 0 or v < vals[d]:
            vals[d], idx[d] = v, i
    return vals, idx


def carry_forward(vals: np.ndarray, idx: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """Fill up to `limit` missing days after each measured day with its value."""
    out_v, out_i = vals.copy(), idx.copy()
    last_seen, gap = -1, 0
    for d in range(len(vals)):
        if idx[d] >= 0:
            last_seen, gap = d, 0
        elif last_seen >= 0:
            gap += 1
            if gap <= limit:
                out_v[d], out_i[d] = vals[last_seen], idx[last_seen]
    return out_v, out_i


def count_prefixes(states: np.ndarray, recovery_days: int, unknown: str
                   ) -> tuple[list[int], list[int | None]]:
    """count_days of every prefix states[:n], n = 0..len(states), in one pass.

    The machine only looks back, so a prefix's result is the running count plus the days an
    unfinished period would add at that point (its supported days before a trailing run
    above). A replay reads day n's count at index n instead of re-walking the window.
    """
    as_unknown = {"above": ABOVE, "below": BELOW}.get(unknown, SUPPORTED)
    counts: list[int] = [0]
    firsts: list[int | None] = [None]
    count, first = 0, None
    in_period, pending, a_run = False, 0, 0
    for d, st in enumerate(states.tolist()):
        if st == UNKNOWN:
            st = as_unknown
        if st == BELOW:
            if not in_period:
                in_period = True
                first = d if first is None else first
            count += pending + 1
            pending, a_run = 0, 0
        elif in_period:
            pending += 1
            if st == ABOVE:
                a_run += 1
                if a_run >= recovery_days:
                    count += pending - a_run
                    in_period, pending, a_run = False, 0, 0
            else:
                a_run = 0
        # supported days before an unfinished trailing recovery count in
        counts.append(count + (pending - a_run if in_period else 0))
        firsts.append(first)
    return counts, firsts


def count_days(states: np.ndarray, recovery_days: int, unknown: str) -> tuple[int, int | None]:
    """(days counted, first counted day index) of the period(s) below threshold.

    states: BELOW / ABOVE / SUPPORTED (above, but not a recovery day) / UNKNOWN per day.
    unknown: "above" or "below" (bounds), or "bridge" (counted only when the period goes on).
    """
    counts, firsts = count_prefixes(states, recovery_days, unknown)
    return counts[-1], firsts[-1]


def censor_day(course: Course) -> tuple[float, str | None]:
    """The first progression / next therapy / death day (inclusive) known as of now."""
    return _censor_at(course, course.as_of_day)


def _censor_at(course: Course, as_of: float) -> tuple[float, str | None]:
    for kind, day in course_index(course).events:
        if day > as_of:
            break
        if kind in CENSOR_EVENTS:
            return float(day), kind
    return math.inf, None


def platelet_transfusion_days(course: Course) -> np.ndarray:
    """Days (floored) of platelet transfusions from treatments and transfusion observations."""
    days = [d for d, _ in treatment_days(course, ("platelet_transfusion",), math.inf)]
    days += [o.day for o in observations_until(course, "transfusion", math.inf)
             if o.text == "platelets"]
    return np.floor(np.asarray(days, dtype=float)).astype(int)


def supported_mask(first: int, n: int, tx_days: np.ndarray, window: int) -> np.ndarray:
    """True for each day first..first+n-1 within `window` days after a platelet transfusion."""
    out = np.zeros(n, dtype=bool)
    for t in tx_days:
        lo, hi = max(t - first, 0), min(t - first + window, n - 1)
        if hi >= lo:
            out[lo:hi + 1] = True
    return out


def states_for(vals: np.ndarray, cut: float, inclusive: bool,
               supported: np.ndarray | None = None) -> np.ndarray:
    below = vals <= cut if inclusive else vals < cut
    st = np.where(np.isnan(vals), UNKNOWN, np.where(below, BELOW, ABOVE))
    if supported is not None:
        st = np.where((st == ABOVE) & supported, SUPPORTED, st)
    return st


def _unit(analyte: str) -> str:
    unit = ANALYTES[analyte].unit
    return f"x {unit}" if unit.startswith("10^") else unit


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


# ---------------------------------------------------------------------------------------------
# As-of evaluation and one-pass replay
# ---------------------------------------------------------------------------------------------
# Each rule below is one function of (course, thresholds, cache, now, as_of) that reads
# nothing after `as_of`. `evaluate` calls it with the course's own instant; the replay hook
# calls it on the full course as of the end of each day, without building day views. What
# depends only on complete days (daily grids and their counts, hit lists) is built once per
# course from every result, kept in the rule's per-course `cache`, and read by prefix, so a
# day costs a few lookups plus its Finding.

Cache = dict[object, Any]
AsOfEvaluator = Callable[[Course, Thresholds, Cache, float, float], Finding]


def _cache(course: Course, t: Thresholds, rule_id: str) -> Cache:
    """The rule's per-course cache under thresholds `t` (one memo entry, fetched once per
    evaluation or replay, so the day loop does not hash the thresholds again)."""
    return memo(course, ("cw_cyto", rule_id, thresholds_key(t)), dict)


def _cached(cache: Cache, key: object, compute: Callable[[], Any]) -> Any:
    try:
        return cache[key]
    except KeyError:
        value = cache[key] = compute()
        return value


def _evidence(cache: Cache, s: Series, i: int, why: str) -> EvidenceItem:
    """s.evidence(i, why), built once per course: the findings of different days share it,
    as the copies of a cached finding do (each finding still gets its own list)."""
    key = ("evidence", s.analyte, i, why)
    item = cache.get(key)
    if item is None:
        item = cache[key] = s.evidence(i, why)
    return item


def _replayer(rule_id: str, as_of_evaluator: AsOfEvaluator) -> Replayer:
    """A replay hook: `as_of_evaluator` as of the end of each day, on the full course."""

    def replay(course: Course, t: Thresholds, days: Sequence[int]) -> list[Finding]:
        cache = _cache(course, t, rule_id)
        out = []
        for day in days:
            as_of = min(day + END_OF_DAY, course.as_of_day)  # the day view's as_of_day
            out.append(as_of_evaluator(course, t, cache, as_of, as_of))
        return out

    return replay


def _copy(f: Finding) -> Finding:
    """A distinct Finding equal to a cached one (callers may mutate lists and extra)."""
    return Finding(rule=f.rule, status=f.status, since_day=f.since_day, grade=f.grade,
                   score=f.score, evidence=list(f.evidence), missing=list(f.missing),
                   extra=dict(f.extra), episode_key=f.episode_key)


def _full(course: Course, analyte: str) -> Series:
    """Every result of the analyte in the course, whatever the as-of instant."""
    src = lab_series(course, analyte)
    return series_of(course, analyte) if src is None else series_of_full(course, src)


def _series_until(course: Course, analyte: str, as_of: float) -> Series:
    """The analyte's results with day <= as_of (views into the per-course arrays)."""
    s = _full(course, analyte)
    k = 0 if s.src is None else s.src.count(as_of)
    if k >= len(s):
        return s
    return Series(analyte, s.day[:k], s.value[:k], s.ref_low[:k], s.ref_high[:k], s.src)


def _window_end(s: Series, last: float, as_of: float) -> int:
    """Index after the last result of `s` with floor(day) <= last and day <= as_of."""
    if s.src is None:
        return 0
    i1 = s.src.count(as_of)
    if last < math.inf:
        i1 = min(i1, bisect.bisect_left(s.src.days, math.floor(last) + 1.0))
    return i1


@dataclass(frozen=True)
class _Window:
    """An analyte's results from a window's first day on, with lookups built once per course:
    the results of the window as known at any instant are s[i0:i1] (results are in time
    order), so a day reads them with one bisection (`_window_end`)."""

    s: Series  # every result of the analyte in the course
    i0: int  # index of the first result of the window
    hits: dict[str, list[int]]  # threshold key -> indices (>= i0) of results below it
    lowest: list[int]  # lowest[i1]: index of the lowest of s[i0:i1] as np.argmin, -1 if none


def _window(course: Course, t: Thresholds, cache: Cache, analyte: str, start_key: str,
            cuts: tuple[tuple[str, bool], ...]) -> _Window:
    """The window from day t[start_key] on, with the hits of each (threshold key, inclusive:
    <= or <) of `cuts`, computed once per course and thresholds."""

    def build() -> _Window:
        s = _full(course, analyte)
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
        return _Window(s, i0, hits, lowest)

    return _cached(cache, "window", build)


def _platelet_tx(course: Course) -> list[float]:
    """Days of every platelet transfusion in the course (platelet_transfusion_days' sources,
    whatever the as-of instant), sorted."""

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
        tx = _platelet_tx(course)
        return bisect.bisect_right(tx, as_of) >= bisect.bisect_left(tx, last + 1.0)
    return True


@dataclass(frozen=True)
class _Counted:
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
                  tx_days: np.ndarray | None) -> _Counted:
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
    return _Counted(s, vals, idx, counts, firsts, lowest)


def _counted(course: Course, t: Thresholds, cache: Cache, analyte: str, platelets: bool,
             first: int, window_last: int, last: int, as_of: float,
             cuts: tuple[tuple[str, bool, bool], ...], unknowns: tuple[str, ...]) -> _Counted:
    """_count_window over days first..last as known at as_of (last <= window_last).

    When every result and transfusion of those days is known, the counts over the whole
    window are built once per course from all results and read by prefix: the counting only
    looks back, so the first n days' counts do not depend on later days.
    """
    if _is_known_through(course, analyte, platelets, last, as_of):
        def build() -> _Counted:
            s = _full(course, analyte)
            tx = np.floor(np.asarray(_platelet_tx(course))).astype(int) if platelets else None
            return _count_window(s, t, first, window_last, cuts, unknowns, tx)

        return _cached(cache, "counted", build)
    tx = None
    if platelets:
        tx_all = _platelet_tx(course)
        tx = np.floor(np.asarray(tx_all[:bisect.bisect_right(tx_all, as_of)])).astype(int)
    return _count_window(_series_until(course, analyte, as_of), t, first, last, cuts,
                         unknowns, tx)


# ---------------------------------------------------------------------------------------------
# Early (days 0-30) counting rules, shared by icaht_early and ticaht_early
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Grading:
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


def _early(course: Course, t: Thresholds, cache: Cache, g: _Grading, now: float,
           as_of: float) -> Finding:
    start, window_end = 0, int(t["window_end_day"])
    cens, cens_kind = _censor_at(course, as_of)
    today = math.floor(now) if math.isfinite(now) else start - 1
    end = min(window_end, today, math.floor(cens) if math.isfinite(cens) else window_end)
    if end >= today:
        return _early_finding(course, t, cache, g, end, today, cens, cens_kind, as_of)
    # The window closed before today: everything it reads is known, so the finding is the
    # same every later day (computed once per course; a copy is returned).
    f = _cached(cache, ("closed", end, cens, cens_kind),
                lambda: _early_finding(course, t, cache, g, end, today, cens, cens_kind, as_of))
    return _copy(f)


def _early_finding(
    course: Course, t: Thresholds, cache: Cache, g: _Grading, end: int, today: int,
    cens: float, cens_kind: str | None, as_of: float,
) -> Finding:
    rule_id, name = g.rule_id, ANALYTES[g.analyte].name
    start, window_end = 0, int(t["window_end_day"])
    c = _counted(course, t, cache, g.analyte, g.platelets, start, window_end,
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


def _early_evidence(cache: Cache, c: _Counted, n: int, start: int, first_day: int | None,
                    label: str, name: str) -> list[EvidenceItem]:
    """The first counted day's value and the lowest value of the window's first n days."""
    s, out = c.s, []
    if first_day is not None and c.idx[first_day] >= 0:
        out.append(_evidence(cache, s, int(c.idx[first_day]),
                             f"{label} from day {start + first_day}"))
    k = c.lowest[n]
    if k >= 0:
        i = int(c.idx[k])
        if not out or i != int(c.idx[first_day or 0]):
            out.append(_evidence(cache, s, i, f"lowest {name} in the window so far"))
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


# ---------------------------------------------------------------------------------------------
# icaht_early / icaht_late (§6.1)
# ---------------------------------------------------------------------------------------------

ICAHT_EARLY_THRESHOLDS = (
    _th("cut", 0.5, "10^9/L", U, "ANC at or below this counts as a neutropenic day", "<="),
    _th("deep_cut", 0.1, "10^9/L", U, "ANC at or below this counts as a profound day", "<="),
    _th("g1_days", 1, "days", U, "grade 1: days with ANC <= 0.5", ">="),
    _th("g2_days", 7, "days", U, "grade 2: days with ANC <= 0.5", ">="),
    _th("g3_days", 14, "days", U, "grade 3: days with ANC <= 0.5", ">="),
    _th("g4_days", 30, "days", U, "grade 4: days with ANC <= 0.5", ">="),
    _th("g3_deep_days", 7, "days", U,
        "grade 3: days with ANC <= 0.1 (third-party code; 7-13 days)", ">="),
    _th("g4_deep_days", 14, "days", U, "grade 4: days with ANC <= 0.1", ">="),
    _th("window_end_day", 30, "day", C, "early ICAHT covers days 0-30", "<="),
    _th("recovery_days", 3, "days", C, "recovery = first of this many days above", ">="),
    _th("carry_forward_days", 1, "days", D, "a missing day takes the last value this long",
        "<="),
)


_ICAHT_EARLY = _Grading("icaht_early", "anc", (
    ("cut", True, (("g1_days", 1), ("g2_days", 2), ("g3_days", 3), ("g4_days", 4))),
    ("deep_cut", True, (("g3_deep_days", 3), ("g4_deep_days", 4))),
), platelets=False)


def _icaht_early(course: Course, t: Thresholds, cache: Cache, now: float,
                 as_of: float) -> Finding:
    return _early(course, t, cache, _ICAHT_EARLY, now, as_of)


def evaluate_icaht_early(course: Course, t: Thresholds) -> Finding:
    return _icaht_early(course, t, _cache(course, t, "icaht_early"), current_day(course),
                        course.as_of_day)


ICAHT_LATE_THRESHOLDS = (
    _th("late_start_day", 31, "day", C, "late ICAHT: after day +30", ">="),
    _th("g1_cut", 1.5, "10^9/L", U, "grade 1: ANC nadir at or below", "<="),
    _th("g2_cut", 1.0, "10^9/L", U, "grade 2: ANC nadir at or below", "<="),
    _th("g3_cut", 0.5, "10^9/L", U, "grade 3: ANC nadir at or below", "<="),
    _th("g4_cut", 0.1, "10^9/L", U, "grade 4: ANC nadir at or below", "<="),
    _th("min_values", 2, "results", C, "a late grade needs at least this many results", ">="),
)


_ICAHT_LATE_CUTS = (("g1_cut", True), ("g2_cut", True), ("g3_cut", True), ("g4_cut", True))


def evaluate_icaht_late(course: Course, t: Thresholds) -> Finding:
    return _icaht_late(course, t, _cache(course, t, "icaht_late"), current_day(course),
                       course.as_of_day)


def _icaht_late(course: Course, t: Thresholds, cache: Cache, now: float,
                as_of: float) -> Finding:
    rule_id, name = "icaht_late", ANALYTES["anc"].name
    start, last, extra = _late_window(t, None, now, *_censor_at(course, as_of))
    if last < start:
        extra["window_opens_day"] = start
        return Finding(rule=rule_id, status=Status.NOT_EVALUABLE, extra=extra)
    w = _window(course, t, cache, "anc", "late_start_day", _ICAHT_LATE_CUTS)
    s, i0 = w.s, w.i0
    i1 = max(i0, _window_end(s, last, as_of))
    need = int(t["min_values"])
    grade, since_i = 0, None
    for g, (key, _inclusive) in enumerate(_ICAHT_LATE_CUTS, 1):
        hits = w.hits[key]
        if bisect.bisect_left(hits, i1) >= need:  # hits in the window
            grade = g
            if since_i is None:
                since_i = hits[0]
    extra["results_in_window"] = i1 - i0
    if grade == 0 and i1 - i0 < need:
        return Finding(rule=rule_id, status=Status.NOT_EVALUABLE, extra=extra,
                       evidence=[_evidence(cache, s, i, "result after day 30")
                                 for i in range(i0, i1)],
                       missing=[f"{'a repeat' if i1 > i0 else 'an'} {name} result after "
                                f"day {start - 1}"])
    if grade == 0:
        return Finding(rule=rule_id, status=Status.NOT_MET, grade=0, extra=extra,
                       evidence=[_evidence(cache, s, w.lowest[i1], "lowest after day 30")])
    cut = t[f"g{grade}_cut"]
    ev = [_evidence(cache, s, i, f"<= {cut:g} x 10^9/L after day 30")
          for i in w.hits[f"g{grade}_cut"][:need]]
    since = float(math.floor(s.day[since_i]))  # type: ignore[index]
    return Finding(rule=rule_id, status=Status.MET, grade=grade, since_day=since, evidence=ev,
                   extra=extra, episode_key=f"since-day-{int(since)}")


# ---------------------------------------------------------------------------------------------
# ticaht_early / ticaht_late (§6.3)
# ---------------------------------------------------------------------------------------------

TICAHT_EARLY_THRESHOLDS = (
    _th("cut", 50, "10^9/L", C, "platelets below this count as a day for grades 1-2", "<"),
    _th("deep_cut", 20, "10^9/L", C, "platelets below this count as a day for grades 3-4", "<"),
    _th("g1_days", 1, "days", C, "grade 1: days with platelets < 50", ">="),
    _th("g2_days", 7, "days", C, "grade 2: days with platelets < 50", ">="),
    _th("g3_deep_days", 1, "days", C, "grade 3: days with platelets < 20", ">="),
    _th("g4_deep_days", 14, "days", C, "grade 4: days with platelets < 20", ">="),
    _th("window_end_day", 30, "day", C, "early T-ICAHT covers days 0-30", "<="),
    _th("recovery_days", 3, "days", C, "recovery = first of this many days >= 20", ">="),
    _th("transfusion_window_days", 7, "days", C,
        "no recovery within this many days after a platelet transfusion", "<="),
    _th("carry_forward_days", 1, "days", D, "a missing day takes the last value this long",
        "<="),
)


_TICAHT_EARLY = _Grading("ticaht_early", "platelets", (
    ("cut", False, (("g1_days", 1), ("g2_days", 2))),
    ("deep_cut", False, (("g3_deep_days", 3), ("g4_deep_days", 4))),
), platelets=True)


def _ticaht_early(course: Course, t: Thresholds, cache: Cache, now: float,
                  as_of: float) -> Finding:
    return _early(course, t, cache, _TICAHT_EARLY, now, as_of)


def evaluate_ticaht_early(course: Course, t: Thresholds) -> Finding:
    return _ticaht_early(course, t, _cache(course, t, "ticaht_early"), current_day(course),
                         course.as_of_day)


TICAHT_LATE_THRESHOLDS = (
    _th("late_start_day", 31, "day", C, "late T-ICAHT covers days 31-100", ">="),
    _th("late_end_day", 100, "day", C, "late T-ICAHT covers days 31-100", "<="),
    _th("g1_cut", 100, "10^9/L", C, "grade 1: platelets below", "<"),
    _th("g2_cut", 50, "10^9/L", C, "grade 2: platelets below (corrected Grade 2 column)", "<"),
    _th("deep_cut", 20, "10^9/L", C, "grades 3-4: platelets below", "<"),
    _th("g3_deep_days", 1, "days", C, "grade 3: days with platelets < 20", ">="),
    _th("g4_deep_days", 14, "days", C, "grade 4: days with platelets < 20", ">="),
    _th("min_values", 2, "results", C, "a late grade needs at least this many results", ">="),
    _th("recovery_days", 3, "days", C, "recovery = first of this many days >= 20", ">="),
    _th("transfusion_window_days", 7, "days", C,
        "no recovery within this many days after a platelet transfusion", "<="),
    _th("carry_forward_days", 1, "days", D, "a missing day takes the last value this long",
        "<="),
)


_TICAHT_LATE_CUTS = (("g1_cut", False), ("g2_cut", False), ("deep_cut", False))


def evaluate_ticaht_late(course: Course, t: Thresholds) -> Finding:
    return _ticaht_late(course, t, _cache(course, t, "ticaht_late"), current_day(course),
                        course.as_of_day)


def _ticaht_late(course: Course, t: Thresholds, cache: Cache, now: float,
                 as_of: float) -> Finding:
    rule_id, name = "ticaht_late", ANALYTES["platelets"].name
    start, last, extra = _late_window(t, "late_end_day", now, *_censor_at(course, as_of))
    if last < start:
        extra["window_opens_day"] = start
        return Finding(rule=rule_id, status=Status.NOT_EVALUABLE, extra=extra)
    w = _window(course, t, cache, "platelets", "late_start_day", _TICAHT_LATE_CUTS)
    s, i0 = w.s, w.i0
    i1 = max(i0, _window_end(s, last, as_of))
    need = int(t["min_values"])
    extra["results_in_window"] = i1 - i0
    grade, since_i = 0, None
    for g, key in ((1, "g1_cut"), (2, "g2_cut"), (3, "deep_cut")):
        hits = w.hits[key]
        if bisect.bisect_left(hits, i1) >= need:  # hits in the window
            grade = g
            since_i = hits[0] if since_i is None else since_i
    if grade == 3:
        # sparse late sampling: unknown days between results below 20 count in ("bridge")
        c = _counted(course, t, cache, "platelets", True, start, int(t["late_end_day"]),
                     int(last), as_of, (("deep_cut", False, True),), ("bridge",))
        days = c.counts["deep_cut", "bridge"][int(last) - start + 1]
        extra["days_deep_cut"] = days
        if days >= t["g4_deep_days"]:
            grade = 4
    if grade == 0 and i1 - i0 < need:
        return Finding(rule=rule_id, status=Status.NOT_EVALUABLE, extra=extra,
                       missing=[f"{'a repeat' if i1 > i0 else 'a'} {name} result after "
                                f"day {start - 1}"])
    if grade == 0:
        return Finding(rule=rule_id, status=Status.NOT_MET, grade=0, extra=extra,
                       evidence=[_evidence(cache, s, w.lowest[i1], "lowest after day 30")])
    key = {1: "g1_cut", 2: "g2_cut"}.get(grade, "deep_cut")
    ev = [_evidence(cache, s, i, f"< {t[key]:g} x 10^9/L after day 30")
          for i in w.hits[key][:need]]
    since = float(math.floor(s.day[since_i]))  # type: ignore[index]
    return Finding(rule=rule_id, status=Status.MET, grade=grade, since_day=since, evidence=ev,
                   extra=extra, episode_key=f"since-day-{int(since)}")


# ---------------------------------------------------------------------------------------------
# prolonged_cytopenia (§6.2, DESIGN)
# ---------------------------------------------------------------------------------------------

PROLONGED_THRESHOLDS = (
    _th("landmark_day", 30, "day", D,
        "results after this day count (28 = tisa-cel JULIET, 30 = ICAHT split)", ">"),
    _th("anc_below", 1.0, "10^9/L", C, "CTCAE grade >= 3 neutropenia", "<"),
    _th("platelets_below", 50, "10^9/L", C, "CTCAE grade >= 3 thrombocytopenia", "<"),
    _th("hemoglobin_below", 8.0, "g/dL", C, "CTCAE grade >= 3 anaemia", "<"),
    _th("min_values", 2, "results", D, "consecutive results below needed", ">="),
)
_LINEAGES = (("anc", "anc_below"), ("platelets", "platelets_below"),
             ("hemoglobin", "hemoglobin_below"))


@dataclass(frozen=True)
class _Lineage:
    """One lineage's results after the landmark day, built once per course: the results
    known at any instant are s[i0:i1] (`_window_end`)."""

    analyte: str
    s: Series  # every result of the analyte in the course
    i0: int  # index of the first result after the landmark day
    below: list[bool]  # whether each result is below the lineage's cut
    why: str  # evidence text of a result below the cut


def _lineages(course: Course, t: Thresholds, cache: Cache) -> list[_Lineage]:
    landmark = int(t["landmark_day"])

    def build() -> list[_Lineage]:
        out = []
        for analyte, key in _LINEAGES:
            s = _full(course, analyte)
            i0 = 0 if s.src is None else bisect.bisect_left(s.src.days, landmark + 1)
            out.append(_Lineage(analyte, s, i0, (s.value < t[key]).tolist(),
                                f"< {t[key]:g} {_unit(analyte)} after day {landmark}"))
        return out

    return _cached(cache, "lineages", build)


def evaluate_prolonged_cytopenia(course: Course, t: Thresholds) -> Finding:
    return _prolonged_cytopenia(course, t, _cache(course, t, "prolonged_cytopenia"),
                                current_day(course), course.as_of_day)


def _prolonged_cytopenia(course: Course, t: Thresholds, cache: Cache, now: float,
                         as_of: float) -> Finding:
    rule_id = "prolonged_cytopenia"
    landmark = int(t["landmark_day"])
    extra: dict[str, object] = {"landmark_day": landmark}
    if not math.isfinite(now) or math.floor(now) <= landmark:
        extra["window_opens_day"] = landmark + 1
        return Finding(rule=rule_id, status=Status.NOT_EVALUABLE, extra=extra)
    need = int(t["min_values"])
    last = math.floor(now)
    cens, cens_kind = _censor_at(course, as_of)
    if cens_kind is not None:
        extra["censored"] = {"event": cens_kind, "day": cens}
        last = min(last, math.floor(cens))
        if last <= landmark:  # censored before any result could count
            return Finding(rule=rule_id, status=Status.NOT_MET, extra=extra, evidence=[
                EvidenceItem(why=f"censored: {cens_kind.replace('_', ' ')} on day "
                                 f"{math.floor(cens)}, before the landmark day {landmark}",
                             analyte=cens_kind, day=cens)])
    met: dict[str, float] = {}
    evidence: list[EvidenceItem] = []
    missing: list[str] = []
    lineages: dict[str, str] = {}
    for ln in _lineages(course, t, cache):
        s, i0, analyte = ln.s, ln.i0, ln.analyte
        i1 = max(i0, _window_end(s, last, as_of))
        run = 0  # the window's trailing run of results below the cut
        while run < i1 - i0 and ln.below[i1 - 1 - run]:
            run += 1
        if run >= need:
            met[analyte] = float(math.floor(s.day[i1 - run]))
            lineages[analyte] = "met"
            evidence += [_evidence(cache, s, i, ln.why) for i in range(i1 - run, i1)]
        elif i1 > i0 and run == 0:
            lineages[analyte] = "not_met"
            evidence.append(_evidence(cache, s, i1 - 1,
                                      "latest result, not in the grade 3 range"))
        else:
            lineages[analyte] = "not_evaluable"
            what = "a repeat" if i1 > i0 else "a"
            missing.append(f"{what} {ANALYTES[analyte].name} result after day {landmark}")
    extra["lineages"] = lineages
    if met:
        since = min(met.values())
        return Finding(rule=rule_id, status=Status.MET, since_day=since, evidence=evidence,
                       missing=missing, extra=extra, episode_key=f"since-day-{int(since)}")
    if cens_kind is not None:  # the censored window is closed: nothing more to ask for
        missing = []
    status = Status.NOT_EVALUABLE if missing else Status.NOT_MET
    return Finding(rule=rule_id, status=status, evidence=evidence, missing=missing,
                   extra=extra)


# ---------------------------------------------------------------------------------------------
# car_hematotox (§7)
# ---------------------------------------------------------------------------------------------

HEMATOTOX_THRESHOLDS = (
    _th("platelets_1", 175, "10^9/L", U, "1 point at or below (175 itself: higher point)",
        "<="),
    _th("platelets_2", 75, "10^9/L", U, "2 points below (75 itself: 1 point, table 75-175)",
        "<"),
    _th("anc_1", 1.2, "10^9/L", U, "1 point at or below", "<="),
    _th("hemoglobin_1", 9.0, "g/dL", U, "1 point at or below", "<="),
    _th("crp_1", 30, "mg/L", U, "1 point at or above (3.0 mg/dL)", ">="),
    _th("ferritin_1", 650, "ng/mL", U, "1 point at or above", ">="),
    _th("ferritin_2", 2000, "ng/mL", U, "2 points at or above (2,000 itself: higher point)",
        ">="),
    _th("high_risk_score", 2, "points", C2, "high risk at or above", ">="),
    _th("fallback_baseline_day", -5, "day", D,
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


def evaluate_car_hematotox(course: Course, t: Thresholds) -> Finding:
    return _car_hematotox_as_of(course, t, _cache(course, t, "car_hematotox"),
                                current_day(course), course.as_of_day)


def _car_hematotox_as_of(course: Course, t: Thresholds, cache: Cache, now: float,
                         as_of: float) -> Finding:
    ld = course.patient.lymphodepletion_day
    cutoff = (ld if ld is not None else t["fallback_baseline_day"]) + 1  # day's start + 1
    if as_of < cutoff:
        return _car_hematotox(course, t, ld, cutoff, as_of)
    # every baseline result is known: the score no longer changes (computed once per course)
    f = _cached(cache, ("baseline", cutoff), lambda: _car_hematotox(course, t, ld, cutoff,
                                                                   as_of))
    return _copy(f)


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
        s = _full(course, analyte)
        k = _window_end(s, math.ceil(cutoff) - 1, as_of)  # floor(day) < cutoff
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


# ---------------------------------------------------------------------------------------------
# Declarations
# ---------------------------------------------------------------------------------------------

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

RULES: tuple[RuleSpec, ...] = (
    RuleSpec(Rule(
        id="icaht_early", title="Early ICAHT (neutrophils, days 0-30)", version=VERSION,
        citation=Citation(ICAHT_CITE[0], "N-ICAHT grading table; criteria.md §6.1",
                          ICAHT_CITE[1]),
        evidence=U, severity=Severity.WARNING, thresholds=ICAHT_EARLY_THRESHOLDS,
        inputs=("anc",), graded=True, escalates_at_grade=3,
        choices=EARLY_CHOICES + (
            "ANC <= 0.1 for 7-13 days = grade 3 (third-party code row, criteria §6.1/§14 #10).",
            "Grade 3 = 14-29 days <= 0.5, grade 4 = >= 30 days (window has 31 days).",
        ),
        description="Cumulative days with ANC <= 0.5 and <= 0.1 x 10^9/L in days 0-30.",
    ), evaluate_icaht_early, _replayer("icaht_early", _icaht_early)),
    RuleSpec(Rule(
        id="icaht_late", title="Late ICAHT (neutrophils, after day 30)", version=VERSION,
        citation=Citation(ICAHT_CITE[0], "N-ICAHT grading table; criteria.md §6.1",
                          ICAHT_CITE[1]),
        evidence=U, severity=Severity.WARNING, thresholds=ICAHT_LATE_THRESHOLDS,
        inputs=("anc",), graded=True, escalates_at_grade=3,
        choices=(
            "Grade = deepest level reached by at least min_values (2) results after day 30 "
            "(not necessarily consecutive); one result is not enough (not_evaluable).",
            "No end day for late N-ICAHT (the table gives none); results after a progression, "
            "next_therapy or death event are excluded.",
            "Alarm policy [DESIGN]: warning; severe from grade 3 (escalates_at_grade).",
        ),
        description="ANC nadir after day +30 confirmed by two or more results.",
    ), evaluate_icaht_late, _replayer("icaht_late", _icaht_late)),
    RuleSpec(Rule(
        id="ticaht_early", title="Early T-ICAHT (platelets, days 0-30)", version=VERSION,
        citation=Citation(TICAHT_CITE[0], "Table 1; criteria.md §6.3", TICAHT_CITE[1]),
        evidence=D, severity=Severity.WARNING, thresholds=TICAHT_EARLY_THRESHOLDS,
        inputs=("platelets", "platelet_transfusion", "transfusion"), graded=True,
        escalates_at_grade=3,
        choices=EARLY_CHOICES + (
            "Transfusion rule applies to the < 20 count only (recovery is defined as >= 20 "
            "without transfusion): a day >= 20 within 7 days after a platelet transfusion "
            "(treatment platelet_transfusion or observation transfusion=platelets, calendar "
            "days, transfusion day included) is never a recovery day and counts when the "
            "period goes on.",
        ),
        description="Cumulative days with platelets < 50 and < 20 x 10^9/L in days 0-30.",
    ), evaluate_ticaht_early, _replayer("ticaht_early", _ticaht_early)),
    RuleSpec(Rule(
        id="ticaht_late", title="Late T-ICAHT (platelets, days 31-100)", version=VERSION,
        citation=Citation(TICAHT_CITE[0], "Table 1 (late < 50 row in Grade 2); criteria.md "
                          "§6.3", TICAHT_CITE[1]),
        evidence=D, severity=Severity.WARNING, thresholds=TICAHT_LATE_THRESHOLDS,
        inputs=("platelets", "platelet_transfusion", "transfusion"), graded=True,
        escalates_at_grade=3,
        choices=(
            "Each late row needs at least min_values (2) results below it (late counting rule "
            "of §6.1, stated to mirror T-ICAHT).",
            "Grade 4 (>= 14 days < 20): daily count with 1-day carry forward, unknown days "
            "between results < 20 counted in (sparse late sampling), transfusion rule as early.",
            "Late < 50 row sits in Grade 2 (corrected, criteria §6.3 note).",
            "Alarm policy [DESIGN]: warning; severe from grade 3 (escalates_at_grade).",
        ),
        description="Platelet depth (and days < 20) in days 31-100.",
    ), evaluate_ticaht_late, _replayer("ticaht_late", _ticaht_late)),
    RuleSpec(Rule(
        id="prolonged_cytopenia", title="Prolonged grade >= 3 cytopenia past the landmark day",
        version=VERSION,
        citation=Citation("Dashboard rule after ICAHT/JULIET definitions",
                          "criteria.md §6.2 (recommended dashboard rule) and §8"),
        evidence=D, severity=Severity.WARNING, thresholds=PROLONGED_THRESHOLDS,
        inputs=("anc", "platelets", "hemoglobin"),
        choices=(
            "Default landmark day 30 (ICAHT split); 28 for tisa-cel style reporting via "
            "site config.",
            "'After the landmark' = calendar day > landmark_day.",
            "Met while the latest min_values (2) consecutive results of a lineage are below "
            "its cut (ongoing); a result above clears it, so a return starts a new episode.",
            "Transfusions are not taken into account for Hb and platelets.",
            "Censoring as the ICAHT counting rules (§6.1): results after the day of the first "
            "progression, next_therapy or death event are not counted (that day included); "
            "the status is the one reached by the censoring day, with extra 'censored'.",
        ),
        description="ANC < 1.0, platelets < 50 or Hb < 8.0 on >= 2 consecutive results "
                    "after the landmark day.",
    ), evaluate_prolonged_cytopenia, _replayer("prolonged_cytopenia", _prolonged_cytopenia)),
    RuleSpec(Rule(
        id="car_hematotox", title="CAR-HEMATOTOX score (baseline, before lymphodepletion)",
        version=VERSION,
        citation=Citation(HT_CITE[0], "score items and risk groups; criteria.md §7",
                          HT_CITE[1]),
        evidence=U, severity=Severity.INFO, thresholds=HEMATOTOX_THRESHOLDS,
        inputs=("platelets", "anc", "hemoglobin", "crp", "ferritin"), scored=True,
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
    ), evaluate_car_hematotox, _replayer("car_hematotox", _car_hematotox_as_of)),
)

EVALUATORS: dict[str, Callable[[Course, Thresholds], Finding]] = {
    r.rule.id: r.evaluate for r in RULES
}
