"""What the haematotoxicity rules share: declaration constants, the daily grid and the
counting machine (criteria §6.1/§6.3), censoring and platelet transfusion days.
"""

from __future__ import annotations

import math

import numpy as np

from core.rules.base import Threshold
from core.rules.ctcae import Series
from core.rules.reading import course_index
from core.vocabulary.course import Course
from core.vocabulary.units import Evidence

VERSION = "1.0"
C, C2, U, D = Evidence.C, Evidence.C2, Evidence.UNCONFIRMED, Evidence.DESIGN
CENSOR_EVENTS = ("progression", "next_therapy", "death")


def th(key: str, value: float, unit: str, ev: Evidence, description: str,
       op: str = "") -> Threshold:
    return Threshold(key=key, value=value, unit=unit, evidence=ev, description=description,
                     op=op)


GAP_THRESHOLDS: tuple[Threshold, ...] = (
    th("bridge_days", 7, "days", D,
       "gaps of up to this many unmeasured days are bridged (interpolated; last value carried)"
       " [public grader's maxgap]", "<="),
    th("count_longest_run", 0, "count", C,
       "0 = cumulative days of every period (criteria §6.1, T-ICAHT footnote [C]); 1 = the "
       "longest period only (public grader)", "<="),
)
"""How the early ICAHT rules (neutrophil and platelet) read sparse counts: one declaration."""


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


def count_prefixes(states: np.ndarray, recovery_days: int, unknown: str,
                   longest: bool = False) -> tuple[list[int], list[int | None]]:
    """count_days of every prefix states[:n], n = 0..len(states), in one pass.

    The machine only looks back, so a prefix's result is the running count plus the days an
    unfinished period would add at that point (its supported days before a trailing run
    above). A replay reads day n's count at index n instead of re-walking the window.
    longest: the longest single period (interruptions shorter than recovery_days counted
    in) instead of the cumulative days of every period.
    """
    as_unknown = {"above": ABOVE, "below": BELOW}.get(unknown, SUPPORTED)
    counts: list[int] = [0]
    firsts: list[int | None] = [None]
    count, first = 0, None
    period, best = 0, 0  # days of the current period so far; longest finished period
    in_period, pending, a_run = False, 0, 0
    for d, st in enumerate(states.tolist()):
        if st == UNKNOWN:
            st = as_unknown
        if st == BELOW:
            if not in_period:
                in_period, period = True, 0
                first = d if first is None else first
            count += pending + 1
            period += pending + 1
            pending, a_run = 0, 0
        elif in_period:
            pending += 1
            if st == ABOVE:
                a_run += 1
                if a_run >= recovery_days:
                    count += pending - a_run
                    best = max(best, period + pending - a_run)
                    in_period, pending, a_run = False, 0, 0
            else:
                a_run = 0
        # supported days before an unfinished trailing recovery count in
        open_days = pending - a_run if in_period else 0
        if longest:
            counts.append(max(best, period + open_days if in_period else 0))
        else:
            counts.append(count + open_days)
        firsts.append(first)
    return counts, firsts


def bridge(vals: np.ndarray, limit: int) -> np.ndarray:
    """Daily values with gaps of at most `limit` unmeasured days filled: linearly between
    two measured days, with the nearest measured value before the first or after the last
    (the public grader's convention, criteria §6.1). Longer gaps stay nan (unknown)."""
    out = vals.copy()
    known = np.flatnonzero(~np.isnan(vals))
    if len(known) == 0 or limit <= 0:
        return out
    for a, b in zip(known[:-1].tolist(), known[1:].tolist(), strict=True):
        if 1 < b - a <= limit + 1:
            out[a + 1:b] = np.interp(np.arange(a + 1, b), [a, b], [vals[a], vals[b]])
    f, last = int(known[0]), int(known[-1])
    out[max(0, f - limit):f] = vals[f]
    out[last + 1:last + 1 + limit] = vals[last]
    return out


def count_days(states: np.ndarray, recovery_days: int, unknown: str,
               longest: bool = False) -> tuple[int, int | None]:
    """(days counted, first counted day index) of the period(s) below threshold.

    states: BELOW / ABOVE / SUPPORTED (above, but not a recovery day) / UNKNOWN per day.
    unknown: "above" or "below" (bounds), or "bridge" (counted only when the period goes on).
    longest: the longest period's days instead of every period's (see count_prefixes).
    """
    counts, firsts = count_prefixes(states, recovery_days, unknown, longest)
    return counts[-1], firsts[-1]


def censor_at(course: Course, as_of: float) -> tuple[float, str | None]:
    for kind, day in course_index(course).events:
        if day > as_of:
            break
        if kind in CENSOR_EVENTS:
            return float(day), kind
    return math.inf, None


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

